"""Plot the camera router's weights from a bag: one line per expert camera over bag time.

Reads any rosbag2 bag (MCAP or sqlite3) that holds pi05_moe_msgs/msg/RoutingWeights, e.g. one
recorded while the policy ran (`pi05-moe record`, `ros2 bag record /pi05_moe/routing ...`). The
topic is found by its type (/pi05_moe/routing is preferred when several topics carry it); --topic
picks one. The x axis is the time each message was recorded, in seconds since the bag's start.

Writes a PNG (matplotlib, Agg backend: no display needed) and prints a summary: per expert its
mean and std weight, the share of messages where it has the largest weight, and the share of
messages in which its camera frame was present. Exit status: 0 on success, 1 when the bag breaks
part-way (what was read is still plotted), 2 when there is nothing to plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pi05_moe_training.evaluate.routing_series import (
    MSGTYPE,
    TOPIC,
    RoutingSeries,
    collect,
    format_summary,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', type=Path, help='rosbag2 bag directory (MCAP or sqlite3)')
    parser.add_argument('--topic', help=f'RoutingWeights topic (default: found by type, '
                                        f'{TOPIC} first)')
    parser.add_argument('-o', '--output', type=Path,
                        help='PNG to write (default: <bag>_routing.png next to the bag)')


def pick_topic(topics: dict[str, str], wanted: str | None) -> str:
    """The RoutingWeights topic to plot among ``topics`` (name -> type); ValueError says why
    none fits."""
    routing = sorted(t for t, msgtype in topics.items() if msgtype == MSGTYPE)
    if wanted is not None:
        if wanted not in topics:
            raise ValueError(f'--topic {wanted}: not in the bag (its topics: '
                             f'{", ".join(sorted(topics))})')
        if topics[wanted] != MSGTYPE:
            raise ValueError(f'--topic {wanted}: is {topics[wanted]}, not {MSGTYPE}')
        return wanted
    if not routing:
        raise ValueError(f'no {MSGTYPE} topic in the bag (its topics: '
                         f'{", ".join(f"{t} [{m}]" for t, m in sorted(topics.items()))})')
    if TOPIC in routing or len(routing) == 1:
        return TOPIC if TOPIC in routing else routing[0]
    raise ValueError(f'several {MSGTYPE} topics: {", ".join(routing)}; choose one with --topic')


def draw(series: RoutingSeries, title: str):
    """The figure: one line per expert (weight vs time), y in [0, 1]. A bare ``Figure`` (no
    pyplot): it renders to PNG with the Agg canvas and never touches a display."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100, layout='constrained')
    ax = fig.add_subplot()
    for j, name in enumerate(series.experts):
        ax.plot(series.times, series.weights[:, j], label=name, linewidth=1.2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel('bag time (s since the start of the bag)')
    ax.set_ylabel('routing weight')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper right')
    return fig


def main(args: argparse.Namespace) -> int:
    from pi05_moe_training.bags.reader import BagError, BagReader

    output = args.output or args.bag.parent / f'{args.bag.name}_routing.png'
    samples, problem = [], None
    try:
        with BagReader(args.bag) as reader:
            info = reader.info
            topic = pick_topic(info.topics, args.topic)
            try:
                samples.extend((t, msg) for _, t, msg in reader.messages([topic]))
            except BagError as exc:
                problem = exc
    except (BagError, ValueError) as exc:
        print(f'pi05-moe plot-routing: {exc}', file=sys.stderr)
        return 2
    if not samples:
        print(f'pi05-moe plot-routing: {topic}: no messages'
              + (f' ({problem})' if problem else ''), file=sys.stderr)
        return 2
    try:
        series = collect(samples, info.start_ns)
    except ValueError as exc:
        print(f'pi05-moe plot-routing: {topic}: {exc}', file=sys.stderr)
        return 2
    fig = draw(series, f'{args.bag.name}: {topic}')
    fig.savefig(output)
    print(format_summary(series, topic))
    print(f'wrote {output}')
    if problem is not None:
        print(f'pi05-moe plot-routing: the bag breaks part-way, plotted what was read: {problem}',
              file=sys.stderr)
        return 1
    return 0
