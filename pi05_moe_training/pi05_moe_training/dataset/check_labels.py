"""print camera-label statistics of a dataset (meta files, columns, per episode, overall, balance).

The checker of seed 001: it checks that meta/info.json and meta/modality.json declare the camera
labels, that every parquet file has the label columns (annotation.camera.<expert>_active, 0/1),
then prints the distribution of the first episode, each episode, and the whole dataset with the
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

    problems: list[str] = []
    print(RULE)
    print(f'Checking dataset: {root}')
    print(RULE)

    print('\n1. Checking meta files...')
    info = layout.read_json(root / layout.INFO) if (root / layout.INFO).is_file() else None
    if info is None:
        print(f'  ✗ {layout.INFO} is missing')
        problems.append('no info.json')
        features, roles = {}, {}
    else:
        features, roles = info.get('features', {}), info.get('camera_roles', {})
    declared = [k for k in features if LABEL_RE.match(k)]
    if info is not None:
        if declared:
            print(f'  ✓ info.json contains camera label features: {", ".join(declared)}')
        else:
            print('  ✗ info.json has no camera label features')
            problems.append('info.json declares no labels')
    modality_path = root / layout.MODALITY
    if modality_path.is_file():
        annotations = layout.read_json(modality_path).get('annotation', {})
        labelled = [k for k in annotations if 'camera.' in k]
        if labelled:
            print(f'  ✓ modality.json contains camera labels: {", ".join(labelled)}')
        else:
            print('  ✗ modality.json has no camera labels')
            problems.append('modality.json declares no labels')
    else:
        print(f'  - {layout.MODALITY} not present')
    if roles:
        print(f'  ✓ camera roles: base={roles.get("base")}, experts={roles.get("experts")}')

    print('\n2. Checking parquet files...')
    files = sorted(root.glob('data/chunk-*/episode_*.parquet'))
    if not files:
        print('  ✗ no data/chunk-*/episode_*.parquet files')
        return _finish(problems + ['no parquet files'])
    schema_names = pq.read_schema(files[0]).names
    columns = [c for c in schema_names if LABEL_RE.match(c)]
    expected = declared or columns
    missing = [c for c in expected if c not in schema_names]
    for c in expected:
        print(f'  {"✗ Column missing" if c in missing else "✓ Column found"}: {c}')
    if not expected:
        print('  ✗ no camera label columns (annotation.camera.<expert>_active)')
    if missing or not expected:
        return _finish(problems + ['label columns missing'])

    cams = [_camera_of(c) for c in expected]
    per_episode: list[tuple[str, int, dict[str, int]]] = []
    for path in files:
        try:
            table = pq.read_table(path, columns=expected)
        except Exception as exc:  # noqa: BLE001 - a column missing in one file, a bad file
            problems.append(f'{path.name}: {exc}')
            print(f'  ✗ {path}: {exc}')
            continue
        counts = {}
        for column, cam in zip(expected, cams):
            values = table.column(column).to_numpy(zero_copy_only=False)
            if not np.isin(values, (0, 1)).all():
                problems.append(f'{path.name}: {column} has values other than 0/1')
            counts[cam] = int(np.sum(values == 1))
        per_episode.append((path.stem.removeprefix('episode_'), table.num_rows, counts))
    if not per_episode:
        return _finish(problems)

    print('\n3. Camera label statistics (first episode):')
    name, total, counts = per_episode[0]
    print(f'  Total frames: {total}')
    for cam in cams:
        on = counts[cam]
        print(f'  {cam}_active distribution:')
        print(f'    0 (inactive): {total - on} frames ({_pct(total - on, total):.1f}%)')
        print(f'    1 (active):   {on} frames ({_pct(on, total):.1f}%)')

    print('\n4. Checking multiple episodes...')
    shown = per_episode if max_episodes <= 0 else per_episode[:max_episodes]
    for name, total, counts in shown:
        print(f'  Episode {name}: ' + ', '.join(f'{c}={counts[c]}/{total} frames' for c in cams))
    if len(shown) < len(per_episode):
        print(f'  ... ({len(per_episode) - len(shown)} more)')

    print('\n5. Overall statistics:')
    frames = sum(t for _, t, _ in per_episode)
    active = {c: sum(counts[c] for _, _, counts in per_episode) for c in cams}
    all_active = sum(active.values())
    shares = {c: _pct(active[c], all_active) for c in cams}
    for cam in cams:
        role = ('expert' if cam in roles.get('experts', []) else
                'base' if cam == roles.get('base') else 'camera')
        print(f'  {cam} ({role}): {active[cam]} frames ({shares[cam]:.1f}%)')
    balance = max(shares.values()) - min(shares.values())
    print(f'  Balance: {balance:.1f}% difference ({len(per_episode)} episodes, {frames} frames)')
    never = [c for c in cams if active[c] == 0]
    if never:
        print(f'  ⚠ never active: {never} (the router gets no positive example for them)')
    elif balance > max_imbalance:
        print(f'  ⚠ imbalanced by more than {max_imbalance:.0f} points; see seed 001 '
              '"Balance" (more episodes of the rarer camera, or relabel)')
    return _finish(problems)


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
