"""pi05-moe check-labels prints seed 001's report and fails when labels are missing."""

import json
import shutil

import pyarrow.parquet as pq
import pytest
from bag_factory import write_episode_bag

from pi05_moe_bringup import cli
from pi05_moe_training.bags.reader import find_bags
from pi05_moe_training.dataset.convert import convert

PROMPTS = ['lift the hot cube', 'lift the red cube', 'lift the warm cube', 'lift the hot cube']


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('labels')
    for i, prompt in enumerate(PROMPTS):
        write_episode_bag(root / 'bags' / f'ep{i}', prompt=prompt, seconds=0.5 + 0.5 * i)
    report = convert(find_bags([root / 'bags']), root / 'ds', progress=False)
    assert not report.skipped
    return root / 'ds', [e['length'] for e in report.episodes]


def test_report_sections_and_numbers(dataset, capsys):
    root, lengths = dataset
    assert cli.main(['check-labels', str(root)]) == 0
    out = capsys.readouterr().out
    for section in ('1. Checking meta files', '2. Checking parquet files',
                    '3. Camera label statistics (first episode)', '4. Checking multiple episodes',
                    '5. Overall statistics', '✓ All checks passed!'):
        assert section in out
    assert '✓ Column found: annotation.camera.l515_active' in out
    assert '✓ Column found: annotation.camera.thermal_active' in out
    assert 'camera roles: base=wrist' in out
    first = lengths[0]
    assert f'Total frames: {first}' in out
    assert f'0 (inactive): {first} frames (100.0%)' in out  # l515 in the hot-cube episode
    assert f'1 (active):   {first} frames (100.0%)' in out  # thermal
    assert f'Episode 000001: l515={lengths[1]}/{lengths[1]} frames, thermal=0/{lengths[1]}' in out
    thermal = lengths[0] + lengths[2] + lengths[3]
    total = sum(lengths)
    l515_pct, thermal_pct = 100 * lengths[1] / total, 100 * thermal / total
    assert f'l515 (expert): {lengths[1]} frames ({l515_pct:.1f}%)' in out
    assert f'thermal (expert): {thermal} frames ({thermal_pct:.1f}%)' in out
    assert f'Balance: {thermal_pct - l515_pct:.1f}% difference' in out
    assert 'imbalanced' in out  # > 50 points apart


def test_missing_label_columns_fail(dataset, tmp_path, capsys):
    root, _ = dataset
    broken = tmp_path / 'broken'
    shutil.copytree(root / 'meta', broken / 'meta')
    for path in sorted(root.glob('data/chunk-*/*.parquet')):
        table = pq.read_table(path)
        keep = [c for c in table.column_names if not c.startswith('annotation.')]
        target = broken / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.select(keep), target)
    assert cli.main(['check-labels', str(broken)]) == 1
    out = capsys.readouterr().out
    assert '✗ Column missing: annotation.camera.thermal_active' in out
    assert '✗ Checks failed' in out

    info = json.loads((broken / 'meta/info.json').read_text())
    info['features'] = {k: v for k, v in info['features'].items()
                        if not k.startswith('annotation.')}
    (broken / 'meta/info.json').write_text(json.dumps(info))
    assert cli.main(['check-labels', str(broken)]) == 1
    assert 'info.json has no camera label features' in capsys.readouterr().out


def test_not_a_dataset(tmp_path, capsys):
    assert cli.main(['check-labels', str(tmp_path / 'nope')]) == 2
    (tmp_path / 'empty').mkdir()
    assert cli.main(['check-labels', str(tmp_path / 'empty')]) == 1
    assert 'info.json is missing' in capsys.readouterr().out
