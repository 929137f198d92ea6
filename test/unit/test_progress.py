"""progress(): a tqdm bar on a terminal, plain periodic lines in a log (issue 18)."""

import io

from pi05_moe_training.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_plain_lines_not_frames():
    log = io.StringIO()
    for _ in progress(range(1000), desc='eval', unit='frame', file=log, interval_s=3600):
        pass
    text = log.getvalue()
    assert '\r' not in text and '\x1b' not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3, lines  # the start, (maybe) one refresh, the end
    assert lines[-1].startswith('eval: 100% 1000/1000 frame [')
    assert '|' not in lines[-1] and '█' not in text  # no bar characters


def test_a_terminal_gets_the_live_bar():
    tty = Terminal()
    for _ in progress(range(50), desc='eval', file=tty, mininterval=0):
        pass
    assert '\r' in tty.getvalue() and '50/50' in tty.getvalue()


def test_disable_none_keeps_tqdm_meaning_only_on_a_terminal():
    log = io.StringIO()
    bar = progress(total=10, file=log, disable=None)
    bar.update(10)
    bar.close()
    assert log.getvalue() == ''
