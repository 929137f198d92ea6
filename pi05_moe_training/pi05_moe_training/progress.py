"""tqdm progress bars that suit logs: a live bar on a terminal, plain periodic lines elsewhere.

A bar redrawn with carriage returns piles up as frames in a log file, a CI log or `pi05-moe up`'s
prefixed output. When the bar's stream is not a terminal, :func:`progress` prints one plain line
(no bar characters) at most every ``interval_s`` seconds, plus the final one. No rclpy.
"""

from __future__ import annotations

import sys
from typing import IO, Any

LOG_FORMAT = ('{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} {unit} '
              '[{elapsed}<{remaining}, {rate_fmt}]{postfix}')
LOG_FORMAT_NO_TOTAL = '{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}]{postfix}'


class _Lines:
    """A file-like that turns tqdm's ``\\r``-redrawn status into one line per refresh."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.replace('\r', '\n').split('\n'):
            part = part.rstrip()
            if part:
                self.stream.write(part + '\n')

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(iterable: Any = None, *, interval_s: float = 10.0, **kwargs: Any):
    """``tqdm(iterable, **kwargs)``; off a terminal, plain lines every ``interval_s`` seconds."""
    from tqdm import tqdm

    stream = kwargs.pop('file', None) or sys.stderr
    if is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    if 'disable' in kwargs and kwargs['disable'] is None:  # tqdm's "only on a terminal"
        return tqdm(iterable, file=stream, disable=True)
    total = kwargs.get('total', len(iterable) if hasattr(iterable, '__len__') else None)
    kwargs.pop('dynamic_ncols', None)
    kwargs.update(mininterval=interval_s, maxinterval=max(interval_s, 10.0),
                  bar_format=LOG_FORMAT if total else LOG_FORMAT_NO_TOTAL)
    kwargs.setdefault('unit', 'it')
    return tqdm(iterable, file=_Lines(stream), ncols=None, **kwargs)
