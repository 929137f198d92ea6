"""``report.md``: a short markdown summary of ``metrics.json`` that links the plots.

Links are relative to the report, so the output directory can be moved or zipped as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

IMAGE_TITLES = {
    'actions': 'Predicted vs recorded actions (horizon 1)',
    'routing': 'Routing weights over time (shaded: camera labels)',
    'latency': 'Inference latency',
}


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return f'{value:.{digits}g}'
    return str(value)


def _pct(value: Any) -> str:
    return 'n/a' if value is None else f'{100.0 * value:.1f} %'


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return lines + ['']


def _image(name: str, path: Path, root: Path) -> list[str]:
    rel = Path(os.path.relpath(path, root)).as_posix()
    return [f'![{IMAGE_TITLES.get(name, name)}]({rel})', '']


def action_table(errors: Mapping[str, Any]) -> list[str]:
    """Per joint MAE at each horizon, in robot units and normalised; the mean as last row."""
    keys = list(errors['robot_units'])  # e.g. h1, h10, chunk
    header = ['joint', *(f'{k} (robot)' for k in keys), *(f'{k} (norm.)' for k in keys)]
    first = errors['robot_units'][keys[0]]['per_joint']
    rows = []
    for joint in first:
        rows.append([joint, *(_num(errors[u][k]['per_joint'][joint])
                              for u in ('robot_units', 'normalized') for k in keys)])
    rows.append(['**mean**', *(_num(errors[u][k]['mean'])
                               for u in ('robot_units', 'normalized') for k in keys)])
    counts = ', '.join(f'{k}: {errors["robot_units"][k]["count"]}' for k in keys)
    return _table(header, rows) + [f'Rows averaged per joint: {counts}.', '']


def routing_lines(routing: Mapping[str, Any]) -> list[str]:
    if not routing.get('available'):
        return ['This checkpoint has no camera MoE, so there are no routing weights.', '']
    experts = routing['experts']
    frames = routing['frames']
    lines = [f'Accuracy **{_pct(routing["accuracy"])}** over {frames["labelled"]} labelled '
             f'frames ({frames["no_label"]} without a label, {frames["multi_label"]} with '
             'several, not counted).', '',
             'Confusion (rows: label, columns: predicted = arg-max weight):', '']
    lines += _table(['label \\ predicted', *experts, 'recall'],
                    [[a, *(str(routing['confusion'][a][b]) for b in experts),
                      _pct(routing['per_expert'][a]['recall'])] for a in experts])
    lines += ['Mean routing weight by label:', '']
    lines += _table(['label', *experts],
                    [[a, *(_num(routing['mean_weight'][a][b], 3) for b in experts)]
                     for a in [*experts, 'all']])
    return lines


def latency_lines(latency: Mapping[str, Any]) -> list[str]:
    lines = _table(['p50', 'p90', 'p99', 'max', 'mean', 'calls'],
                   [[*(_num(latency[k], 4) for k in ('p50', 'p90', 'p99', 'max', 'mean')),
                     str(latency['count'])]])
    stages = latency.get('stages_mean', {})
    if stages:
        lines += ['Mean per stage (ms): '
                  + ', '.join(f'{k} {_num(v, 3)}' for k, v in stages.items()) + '.', '']
    return lines


def write_report(path: str | Path, metrics: Mapping[str, Any], images: Mapping[str, Path]
                 ) -> Path:
    """Write ``report.md`` at ``path`` from ``metrics`` (``metrics.json``'s content) and
    ``images`` ({'actions'|'routing'|'latency': png path}); returns the path."""
    path = Path(path)
    root = path.parent
    setup = metrics['setup']
    lines = ['# Open-loop evaluation', '',
             f'- checkpoint: `{setup["checkpoint"]}`',
             f'- data: `{setup["data"]}`' + (' (converted from bags)'
                                              if setup.get('converted_from_bags') else ''),
             f'- frames: {setup["frames"]} from {setup["episodes"]} episode(s) '
             f'(stride {setup["stride"]}, max {setup["max_frames"] or "all"})',
             f'- device `{setup["device"]}`, {setup["num_steps"]} Euler steps, noise seed '
             f'{setup["noise_seed"]}',
             '- metrics: [metrics.json](metrics.json) (definitions inside), per-frame arrays: '
             '[predictions.npz](predictions.npz)', '',
             '## Action error (MAE)', '']
    lines += action_table(metrics['action_error'])
    lines += _image('actions', images['actions'], root)
    lines += ['## Routing', '']
    lines += routing_lines(metrics['routing'])
    lines += _image('routing', images['routing'], root)
    lines += ['## Latency (ms)', '']
    lines += latency_lines(metrics['latency_ms'])
    lines += _image('latency', images['latency'], root)
    path.write_text('\n'.join(lines).rstrip('\n') + '\n')
    return path
