"""print camera-label statistics of a dataset (meta files, columns, per episode, overall, balance).

The checker of seed 001: it checks that meta/info.json and meta/modality.json declare the camera
labels, that every parquet file has the label columns (annotation.camera.<expert>_active, 0/1),
then prints the distribution (per episode, by the episode_index column: a LeRobot v3.0 file holds
several episodes) of the first episode, each episode, and the whole dataset with the
balance between experts. Exit status: 0 when the labels are present (imbalance only warns),
1 when they (or the dataset's files) are missing or malformed, 2 when DIR does not exist.

GR00T-style columns (annotation.human.camera.<cam>_activate) are recognised too.

Example:
  pi05-moe check-labels datasets/hot_cube
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from pi05_moe_training.dataset import layout

RULE = '=' * 80
LABEL_RE = re.compile(r'^annotation\.(?:human\.)?camera\.(?P<cam>.+?)_activ(?:e|ate)$')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('dataset', help='dataset directory (from pi05-moe convert)')
    parser.add_argument('--max-episodes', type=int, default=20,
                        help='episodes listed in step 4 (default 20; 0 = all)')
    parser.add_argument('--max-imbalance', type=float, default=50.0,
                        help='warn when the experts\' shares differ by more (percentage points)')


def _camera_of(column: str) -> str:
    match = LABEL_RE.match(column)
    return match['cam'] if match else column


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def check(root: Path, max_episodes: int = 20, max_imbalance: float = 50.0) -> int:
    """Print the report for dataset ``root``; return the exit status."""
    import pyarrow.parquet as pq

    print(RULE)
    print(f'Checking dataset: {root}')
    print(RULE)

    print('\n1. Checking meta files...')
    lines, problems, declared, roles = _meta_report(root)
    _print(lines)

    print('\n2. Checking parquet files...')
    files = sorted(root.glob('data/chunk-*/*.parquet'))
    if not files:
        print('  ✗ no data/chunk-*/*.parquet files')
        return _finish(problems + ['no parquet files'])
    lines, expected = _columns_report(pq.read_schema(files[0]).names, declared)
    _print(lines)
    if expected is None:
        return _finish(problems + ['label columns missing'])

    cams = [_camera_of(c) for c in expected]
    per_episode: list[tuple[str, int, dict[str, int]]] = []
    for path in files:
        try:
            table = pq.read_table(path, columns=[*expected, 'episode_index'])
        except Exception as exc:  # noqa: BLE001 - a column missing in one file, a bad file
            problems.append(f'{path.name}: {exc}')
            print(f'  ✗ {path}: {exc}')
            continue
        episode = table.column('episode_index').to_numpy()  # (N,) several episodes a file
        for index in np.unique(episode):
            rows = episode == index
            columns = {c: table.column(c).to_numpy(zero_copy_only=False)[rows] for c in expected}
            counts, bad = _label_counts(columns, cams)
            problems += [f'episode {index}: {c} has values other than 0/1' for c in bad]
            per_episode.append((f'{int(index):06d}', int(rows.sum()), counts))
    if not per_episode:
        return _finish(problems)

    print('\n3. Camera label statistics (first episode):')
    _print(_first_episode_lines(per_episode[0], cams))
    print('\n4. Checking multiple episodes...')
    _print(_episode_lines(per_episode, cams, max_episodes))
    print('\n5. Overall statistics:')
    _print(_overall_lines(per_episode, cams, roles, max_imbalance))
    return _finish(problems)


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)


def _meta_report(root: Path) -> tuple[list[str], list[str], list[str], dict]:
    """Step 1: (report lines, problems, declared label features, camera roles)."""
    lines: list[str] = []
    problems: list[str] = []
    info = layout.read_json(root / layout.INFO) if (root / layout.INFO).is_file() else None
    if info is None:
        lines.append(f'  ✗ {layout.INFO} is missing')
        problems.append('no info.json')
        features, roles = {}, {}
    else:
        features, roles = info.get('features', {}), info.get('camera_roles', {})
    declared = [k for k in features if LABEL_RE.match(k)]
    if info is not None:
        if declared:
            lines.append(f'  ✓ info.json contains camera label features: {", ".join(declared)}')
        else:
            lines.append('  ✗ info.json has no camera label features')
            problems.append('info.json declares no labels')
    modality_path = root / layout.MODALITY
    if modality_path.is_file():
        annotations = layout.read_json(modality_path).get('annotation', {})
        labelled = [k for k in annotations if 'camera.' in k]
        if labelled:
            lines.append(f'  ✓ modality.json contains camera labels: {", ".join(labelled)}')
        else:
            lines.append('  ✗ modality.json has no camera labels')
            problems.append('modality.json declares no labels')
    else:
        lines.append(f'  - {layout.MODALITY} not present')
    if roles:
        lines.append(f'  ✓ camera roles: base={roles.get("base")}, '
                     f'experts={roles.get("experts")}')
    return lines, problems, declared, roles


def _columns_report(schema_names: list[str],
                    declared: list[str]) -> tuple[list[str], list[str] | None]:
    """Step 2: (report lines, the label columns to read), or None for them when any declared
    column is missing from the parquet schema or there are none at all."""
    columns = [c for c in schema_names if LABEL_RE.match(c)]
    expected = declared or columns
    missing = [c for c in expected if c not in schema_names]
    lines = [f'  {"✗ Column missing" if c in missing else "✓ Column found"}: {c}'
             for c in expected]
    if not expected:
        lines.append('  ✗ no camera label columns (annotation.camera.<expert>_active)')
    return lines, None if missing or not expected else expected


def _label_counts(columns: dict[str, np.ndarray],
                  cams: list[str]) -> tuple[dict[str, int], list[str]]:
    """Active frames per camera of one episode (``columns``: label column -> (T,) values),
    and the columns holding values other than 0/1."""
    counts: dict[str, int] = {}
    bad: list[str] = []
    for (column, values), cam in zip(columns.items(), cams):
        if not np.isin(values, (0, 1)).all():
            bad.append(column)
        counts[cam] = int(np.sum(values == 1))
    return counts, bad


def _first_episode_lines(episode: tuple[str, int, dict[str, int]], cams: list[str]) -> list[str]:
    """Step 3: the 0/1 distribution of each camera label in one episode."""
    _, total, counts = episode
    lines = [f'  Total frames: {total}']
    for cam in cams:
        on = counts[cam]
        lines += [f'  {cam}_active distribution:',
                  f'    0 (inactive): {total - on} frames ({_pct(total - on, total):.1f}%)',
                  f'    1 (active):   {on} frames ({_pct(on, total):.1f}%)']
    return lines


def _episode_lines(per_episode: list[tuple[str, int, dict[str, int]]], cams: list[str],
                   max_episodes: int) -> list[str]:
    """Step 4: one line per episode, the first ``max_episodes`` of them (0 = all)."""
    shown = per_episode if max_episodes <= 0 else per_episode[:max_episodes]
    lines = [f'  Episode {name}: ' + ', '.join(f'{c}={counts[c]}/{total} frames' for c in cams)
             for name, total, counts in shown]
    if len(shown) < len(per_episode):
        lines.append(f'  ... ({len(per_episode) - len(shown)} more)')
    return lines


def _overall_lines(per_episode: list[tuple[str, int, dict[str, int]]], cams: list[str],
                   roles: dict, max_imbalance: float) -> list[str]:
    """Step 5: active frames and share per camera over the dataset, the balance, warnings."""
    frames = sum(t for _, t, _ in per_episode)
    active = {c: sum(counts[c] for _, _, counts in per_episode) for c in cams}
    all_active = sum(active.values())
    shares = {c: _pct(active[c], all_active) for c in cams}
    lines = []
    for cam in cams:
        role = ('expert' if cam in roles.get('experts', []) else
                'base' if cam == roles.get('base') else 'camera')
        lines.append(f'  {cam} ({role}): {active[cam]} frames ({shares[cam]:.1f}%)')
    balance = max(shares.values()) - min(shares.values())
    lines.append(f'  Balance: {balance:.1f}% difference ({len(per_episode)} episodes, '
                 f'{frames} frames)')
    never = [c for c in cams if active[c] == 0]
    if never:
        lines.append(f'  ⚠ never active: {never} (the router gets no positive example for them)')
    elif balance > max_imbalance:
        lines.append(f'  ⚠ imbalanced by more than {max_imbalance:.0f} points; see seed 001 '
                     '"Balance" (more episodes of the rarer camera, or relabel)')
    return lines


def _finish(problems: list[str]) -> int:
    if problems:
        print('\n✗ Checks failed:')
        for p in problems:
            print(f'  - {p}')
        print(RULE)
        return 1
    print('\n✓ All checks passed!')
    print(RULE)
    return 0


def main(args: argparse.Namespace) -> int:
    root = Path(args.dataset)
    if not root.is_dir():
        print(f'pi05-moe check-labels: {root}: no such directory', file=sys.stderr)
        return 2
    return check(root, args.max_episodes, args.max_imbalance)
