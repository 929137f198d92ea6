"""`pi05-moe plot-routing`: routing weights from real bags to a PNG and a summary (no rclpy)."""

import argparse

import numpy as np
import pytest
from matplotlib.image import imread

from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.bags.writer import BagWriter
from pi05_moe_training.evaluate import plot_routing
from pi05_moe_training.evaluate.routing_series import MSGTYPE, collect, summarize

S = 1_000_000_000
T0 = 2_000 * S
STORE = make_typestore()


def routing_msg(names, weights, present=(), base='wrist'):
    header = STORE.types['std_msgs/msg/Header'](
        stamp=STORE.types['builtin_interfaces/msg/Time'](sec=0, nanosec=0), frame_id='')
    return STORE.types[MSGTYPE](header=header, expert_names=list(names),
                                weights=np.asarray(weights, np.float32),
                                present=np.asarray(present, np.uint8), base_camera=base,
                                chunk_id=0)


def weights_at(i: int) -> list[float]:
    """l515 rises 0 -> 1 over the bag, thermal falls; they sum to 1."""
    w = i / 39
    return [w, 1.0 - w]


def write_bag(path, storage='mcap', topics=('/pi05_moe/routing',), n=40):
    writer = BagWriter(path, make_typestore(), storage=storage)
    writer.add_topic('/joint_states', 'sensor_msgs/msg/JointState')
    for topic in topics:
        writer.add_topic(topic, MSGTYPE)
        for i in range(n):  # 10 Hz; the thermal frame is missing in every 4th message
            msg = routing_msg(['l515', 'thermal'], weights_at(i), [1, int(i % 4 != 0)])
            writer.write(topic, T0 + i * S // 10, msg, block=True)
    writer.write('/joint_states', T0, STORE.types['sensor_msgs/msg/JointState'](
        header=routing_msg([], []).header, name=[], position=np.zeros(0),
        velocity=np.zeros(0), effort=np.zeros(0)), block=True)
    writer.close()
    return path


def run(bag, capsys, **kwargs):
    parser = argparse.ArgumentParser()
    plot_routing.add_arguments(parser)
    argv = [str(bag)] + [x for k, v in kwargs.items() for x in (f'--{k}', str(v))]
    code = plot_routing.main(parser.parse_args(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_collect_aligns_changing_expert_sets_and_summarizes():
    msgs = [(T0, routing_msg(['l515', 'thermal'], [0.2, 0.8], [1, 1])),
            (T0 + S, routing_msg(['thermal', 'l515'], [0.4, 0.6], [0, 1])),
            (T0 + 2 * S, routing_msg(['l515', 'depth', 'thermal'], [0.1, 0.7, 0.2], []))]
    series = collect(msgs, T0)
    assert series.experts == ['l515', 'thermal', 'depth']
    np.testing.assert_allclose(series.times, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(series.weights, [[0.2, 0.8, np.nan], [0.6, 0.4, np.nan],
                                                [0.1, 0.2, 0.7]], rtol=1e-6)
    assert np.isnan(series.present[2]).all()  # presence not reported there
    by_name = {s.name: s for s in summarize(series)}
    assert by_name['l515'].mean == pytest.approx(np.mean([0.2, 0.6, 0.1]), rel=1e-6)
    assert by_name['depth'].count == 1 and by_name['depth'].mean == pytest.approx(0.7)
    assert [by_name[n].top_share for n in ('l515', 'thermal', 'depth')] == \
        pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert by_name['thermal'].present_share == pytest.approx(0.5)  # 1 of the 2 that report
    with pytest.raises(ValueError, match='2 expert_names but 1 weights'):
        collect([(T0, routing_msg(['a', 'b'], [1.0]))], T0)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_plots_one_line_per_expert_and_prints_means(tmp_path, capsys, storage):
    bag = write_bag(tmp_path / 'episode', storage)
    code, out, err = run(bag, capsys)
    assert code == 0, err
    png = tmp_path / 'episode_routing.png'
    assert imread(png).shape[:2] == (400, 1000)  # 10 x 4 in at 100 dpi
    expected = np.mean([weights_at(i) for i in range(40)], axis=0)
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert float(lines['l515'][1]) == pytest.approx(expected[0], abs=1e-3)
    assert float(lines['thermal'][1]) == pytest.approx(expected[1], abs=1e-3)
    assert float(lines['thermal'][4]) == pytest.approx(75.0)  # present %
    assert '/pi05_moe/routing: 40 messages over 3.90 s, base camera wrist' in out


def test_figure_holds_the_series(tmp_path):
    bag = write_bag(tmp_path / 'episode')
    from pi05_moe_training.bags.reader import BagReader

    with BagReader(bag) as reader:
        series = collect([(t, m) for _, t, m in reader.messages(['/pi05_moe/routing'])],
                         reader.info.start_ns)
    fig = plot_routing.draw(series, 'title')
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ['l515', 'thermal']
    np.testing.assert_allclose(lines[0].get_xdata(), np.arange(40) / 10)
    np.testing.assert_allclose(lines[1].get_ydata(), [weights_at(i)[1] for i in range(40)],
                               rtol=1e-6)


def test_topic_choice_by_type_and_errors(tmp_path, capsys):
    two = write_bag(tmp_path / 'two', topics=('/a/routing', '/b/routing'), n=5)
    code, _, err = run(two, capsys)
    assert code == 2 and 'several' in err and '/a/routing, /b/routing' in err
    code, out, err = run(two, capsys, topic='/b/routing', output=tmp_path / 'b.png')
    assert code == 0 and (tmp_path / 'b.png').is_file() and out.startswith('/b/routing: 5 ')
    code, _, err = run(two, capsys, topic='/joint_states')
    assert code == 2 and 'is sensor_msgs/msg/JointState, not' in err
    none = write_bag(tmp_path / 'none', topics=())
    code, _, err = run(none, capsys)
    assert code == 2 and f'no {MSGTYPE} topic' in err and '/joint_states' in err
