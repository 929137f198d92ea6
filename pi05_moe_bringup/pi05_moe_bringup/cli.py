"""``pi05-moe``: one command line for running, recording, training and evaluating pi05_moe.

Each subcommand lives in its own module that exposes ``add_arguments(parser)`` and
``main(args) -> int`` (its exit code); the module docstring's first line is the help summary.
Modules are imported only when their subcommand runs, so ``pi05-moe --help`` is instant and
``pi05-moe up`` does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help). Keep in the order a user meets them.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'up': ('pi05_moe_bringup.runner',
           'start a node graph from a params YAML (ros2 launch without launch)'),
    'record': ('pi05_moe_training.record.cli',
               'record topics into one rosbag2 MCAP bag per episode'),
    'sim-demos': ('pi05_moe_bringup.sim_tools.record_demos',
                  'record scripted-expert demonstrations from the simulated robot'),
    'convert': ('pi05_moe_training.dataset.convert',
                'convert bags into a LeRobot-style dataset with camera labels'),
    'check-labels': ('pi05_moe_training.dataset.check_labels',
                     'print camera-label statistics of a dataset'),
    'import': ('pi05_moe_training.pretrained.cli',
               'import a pretrained PI0.5/PI0 checkpoint (LeRobot or openpi) as a policy'),
    'train': ('pi05_moe_training.train.loop', 'train the camera-MoE policy on a dataset'),
    'export': ('pi05_moe_training.train.export',
               'copy a trained checkpoint for deployment (policy files only, fp16 option)'),
    'eval': ('pi05_moe_training.evaluate.offline',
             'open-loop evaluation of a checkpoint on bags or a dataset'),
    'sim-eval': ('pi05_moe_bringup.sim_tools.evaluate',
                 'closed-loop evaluation of a checkpoint in the simulator'),
    'replay': ('pi05_moe_training.replay.player',
               'publish a bag with its recorded timing and /clock'),
    'plot-routing': ('pi05_moe_training.evaluate.plot_routing',
                     'plot routing weights from a bag'),
    'demo': ('pi05_moe_bringup.sim_tools.demo',
             'run the sim graph with the shipped checkpoint, record it, plot the routing'),
}


def version() -> str:
    """The installed version of pi05_moe (the bringup package's, which matches the others')."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed('pi05_moe_bringup')
    except PackageNotFoundError:  # a source tree on PYTHONPATH without its egg-info
        return 'unknown (not installed)'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='pi05-moe',
        description='pi05_moe: PI0.5 camera-MoE policy on ROS 2. `pi05-moe <command> --help` '
                    'explains each command.',
    )
    parser.add_argument('--version', action='version', version=f'pi05-moe {version()}')
    sub = parser.add_subparsers(dest='command', metavar='<command>', required=True)
    for name, (_, summary) in SUBCOMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints help or the error, and exits
        return 2
    name = argv[0]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sub = argparse.ArgumentParser(
        prog=f'pi05-moe {name}',
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        print(f'pi05-moe {name}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
