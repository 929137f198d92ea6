"""sim-demos: scripted-expert episodes in the simulator -> bags -> a dataset with exact pairing."""

import numpy as np
import pytest

from pi05_moe_bringup.cli import main as cli
from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim_tools.record_demos import SimDemoConfig, record_demos
from pi05_moe_training.bags.reader import BagReader
from pi05_moe_training.dataset.convert import convert
from pi05_moe_training.dataset.episodes import EpisodeDataset


@pytest.fixture(scope='module')
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp('sim')
    sim = SimConfig(image_width=48, image_height=48, thermal_width=32, thermal_height=24)
    summaries = record_demos(root / 'bags', SimDemoConfig(episodes=2, hold_s=0.2), sim,
                             progress=False)
    report = convert([s.path for s in summaries], root / 'ds', progress=False)
    return summaries, report, root / 'ds'


def test_bags_hold_the_sim_topics_and_metadata(demos):
    summaries, _, _ = demos
    assert len(summaries) == 2
    for summary, task in zip(summaries, ['lift_red_cube', 'lift_hot_cube']):
        with BagReader(summary.path) as bag:
            info, meta = bag.info, bag.episode_meta()
        assert info.topics['/thermal/image_raw'] == 'sensor_msgs/msg/Image'
        assert info.topics['/arm_controller/commands'] == 'std_msgs/msg/Float64MultiArray'
        steps = info.counts['/joint_states']
        assert info.counts['/arm_controller/commands'] == steps
        assert info.counts['/wrist/image_raw'] == pytest.approx(steps * 30 / 50, abs=1)
        assert info.counts['/thermal/image_raw'] == pytest.approx(steps * 9 / 50, abs=1)
        assert (meta.task, meta.operator) == (task, 'scripted_expert')
        assert meta.success is True  # the expert lifts the cube for these seeds
        assert meta.camera_roles == {'base': 'wrist', 'experts': ['l515', 'thermal']}
        assert 'layout=wide' in meta.notes


def test_dataset_pairs_observation_k_with_command_k(demos):
    summaries, report, ds_root = demos
    assert not report.skipped
    assert [e['labels']['active'] for e in report.episodes] == [
        {'l515': 1, 'thermal': 0}, {'l515': 0, 'thermal': 1}]
    ds = EpisodeDataset(ds_root, horizon=4, load_images=False)
    for episode, summary in enumerate(summaries):
        with BagReader(summary.path) as bag:
            commands = np.stack([m.data for _, _, m in bag.messages(['/arm_controller/commands'])])
            states = np.stack([m.position for _, _, m in bag.messages(['/joint_states'])])
        arrays = ds.episode_arrays(episode)
        T = len(arrays['action'])
        assert T >= len(commands) - 10  # cut only by the last 9 Hz thermal frame
        np.testing.assert_allclose(arrays['action'], commands[:T], atol=1e-6)
        np.testing.assert_allclose(arrays['state'], states[:T], atol=1e-6)
    item = EpisodeDataset(ds_root, horizon=4)[10]
    assert item['images']['l515'].shape == (48, 48, 3)
    assert item['images']['thermal'].dtype == np.uint16


def test_cli_records_the_chosen_layout_and_rejects_an_unknown_one(tmp_path, capsys):
    assert cli(['sim-demos', '--out', str(tmp_path / 'bags'), '--episodes', '1', '--layout',
                'slots', '--no-depth', '--no-progress']) == 0
    (bag_path,) = sorted((tmp_path / 'bags').iterdir())
    with BagReader(bag_path) as bag:
        meta = bag.episode_meta()
    assert 'layout=slots' in meta.notes and meta.success is True
    assert cli(['sim-demos', '--out', str(tmp_path / 'more'), '--layout', 'grid']) == 2
    assert "layout='grid'" in capsys.readouterr().err
    assert not (tmp_path / 'more').exists()


def test_sim_bags_are_stamped_at_the_recording_date(demos):
    """Sim time starts at 0; sim-demos adds the wall-clock second each episode started, so
    `ros2 bag info` shows today's date, and the notes say the offset (issue #18 item 11)."""
    import re
    import time

    summaries, report, _ = demos
    for summary in summaries:
        with BagReader(summary.path) as bag:
            start_s, meta = bag.info.start_ns * 1e-9, bag.episode_meta()
            stamps = [m.header.stamp.sec for _, _, m in bag.messages(['/joint_states'])]
        offset = int(re.search(r'sim_time_offset_s=(\d+)', meta.notes)[1])
        assert abs(start_s - time.time()) < 3600 and abs(offset - start_s) < 60
        assert offset <= stamps[0] < offset + 60  # header stamps carry the same offset
    assert not report.skipped  # and the converter takes them as they are


def test_zstd_chunk_compression_is_smaller_and_reads_the_same(tmp_path, capsys):
    sim = SimConfig(image_width=48, image_height=48, thermal_width=32, thermal_height=24)
    bags = {}
    for compression in ('none', 'zstd'):
        cfg = SimDemoConfig(episodes=1, hold_s=0.0, compression=compression, wall_stamps=False)
        summary, = record_demos(tmp_path / compression, cfg, sim, progress=False)
        bags[compression] = summary.path
    sizes = {c: sum(f.stat().st_size for f in p.glob('*.mcap')) for c, p in bags.items()}
    assert sizes['zstd'] < 0.8 * sizes['none'], sizes
    assert b'zstd' in next(bags['zstd'].glob('*.mcap')).read_bytes()  # the chunks' compression
    messages = {}
    for compression, path in bags.items():
        with BagReader(path) as bag:
            messages[compression] = [(t, s, bytes(d)) for t, s, d in bag.raw_messages()]
    assert messages['zstd'] == messages['none'] and len(messages['none']) > 100
    assert cli(['sim-demos', '--out', str(tmp_path / 'bad'), '--episodes', '1',
                '--compression', 'zstd', '--storage', 'sqlite3']) == 2
    assert "storage='mcap'" in capsys.readouterr().err


def test_action_noise_perturbs_what_runs_and_records_the_clean_targets(tmp_path, capsys):
    """DART: the robot executes the expert's target plus a smooth offset; the bag's actions are
    the expert's clean targets, so the data labels off-path states with the way back."""
    sim = SimConfig(image_width=48, image_height=48, thermal_width=32, thermal_height=24)
    recorded = {}
    for noise in (0.0, 0.02):
        cfg = SimDemoConfig(episodes=1, hold_s=0.0, depth=False, action_noise_rad=noise,
                            wall_stamps=False)
        summary, = record_demos(tmp_path / str(noise), cfg, sim, progress=False)
        with BagReader(summary.path) as bag:
            commands = np.stack([m.data for _, _, m in bag.messages(['/arm_controller/commands'])])
            states = np.stack([m.position for _, _, m in bag.messages(['/joint_states'])])
            recorded[noise] = commands, states, bag.episode_meta()
    (clean_cmd, clean_state, clean_meta), (cmd, state, meta) = recorded[0.0], recorded[0.02]
    np.testing.assert_allclose(cmd, clean_cmd, atol=1e-9)  # the labels: the expert's targets
    arm_gap = np.abs(state[:, :6] - clean_state[:, :6]).max(axis=0)  # (6,) rad
    assert (arm_gap > 0.005).sum() >= 4, arm_gap  # what ran was perturbed, joint by joint
    np.testing.assert_allclose(state[:, 6], clean_state[:, 6], atol=0.05)  # not the gripper
    assert 'action_noise_rad=0.02' in meta.notes and 'action_noise' not in clean_meta.notes
    assert cli(['sim-demos', '--out', str(tmp_path / 'bad'), '--action-noise', '0.5']) == 2
    assert 'action_noise_rad=0.5' in capsys.readouterr().err


def test_ou_noise_has_the_stated_std_and_correlation_time():
    from pi05_moe_bringup.sim.action_noise import OUNoise

    noise = OUNoise(sigma=0.02, tau_s=0.3, dt=0.02, dims=6, seed=1)
    x = np.stack([noise.step() for _ in range(60000)])  # (60000, 6)
    assert x.std(axis=0) == pytest.approx(np.full(6, 0.02), rel=0.1)
    lag = int(0.3 / 0.02)  # one correlation time: autocorrelation exp(-1)
    corr = np.mean([np.corrcoef(x[:-lag, j], x[lag:, j])[0, 1] for j in range(6)])
    assert corr == pytest.approx(np.exp(-1), abs=0.05)
    assert np.array_equal(OUNoise(0.0, 0.3, 0.02, 6, 1).perturb(np.arange(7.0)), np.arange(7.0))
    with pytest.raises(ValueError, match='tau_s=0'):
        OUNoise(0.02, 0, 0.02, 6, 1)
