"""rqt/routing.perspective: a valid rqt_plot perspective plotting what policy_node publishes."""

import ast
import json
import re
from pathlib import Path

from ament_index_python.packages import get_package_share_directory

from pi05_moe_bringup.description import load_graph
from pi05_moe_msgs.msg import RoutingWeights
from pi05_moe_policy.nodes.config import PolicyNodeConfig
from pi05_moe_policy.transforms.data_config import DataConfig

ROOT = Path(__file__).resolve().parents[2]
PERSPECTIVE = ROOT / 'pi05_moe_bringup' / 'rqt' / 'routing.perspective'
PLOT = 'plugin__rqt_plot__Plot__1'
FIELD = re.compile(r'^(?P<topic>/.+)/(?P<field>\w+)\[(?P<index>\d+)\]$')


def keys(group: dict) -> dict:
    """A perspective group's settings, decoded (rqt stores each value as a Python repr)."""
    assert all(v['type'] == 'repr' for v in group['keys'].values())
    return {name: ast.literal_eval(v['repr']) for name, v in group['keys'].items()}


def load() -> dict:
    return json.loads(PERSPECTIVE.read_text())


def test_perspective_runs_exactly_one_rqt_plot():
    data = load()
    assert set(data) == {'keys', 'groups'}
    manager = data['groups']['pluginmanager']
    assert keys(manager) == {'running-plugins': {'rqt_plot/Plot': [1]}}
    assert set(manager['groups']) == {PLOT}
    assert set(manager['groups'][PLOT]['groups']) == {'dock_widget__DataPlotWidget', 'plugin'}


def test_plot_settings_are_rqt_plot_keys_with_sane_values():
    plot = keys(load()['groups']['pluginmanager']['groups'][PLOT]['groups']['plugin'])
    assert set(plot) == {'autoscroll', 'plot_type', 'topics', 'x_limits', 'y_limits'}
    assert plot['autoscroll'] is True
    assert plot['plot_type'] in (0, 1, 2)  # PyQtGraph, MatPlot, QwtPlot
    lo, hi = plot['y_limits']
    assert lo < 0.0 and hi > 1.0 and hi - lo < 1.5  # weights live in [0, 1]
    assert plot['x_limits'][1] > plot['x_limits'][0]


def test_topics_are_the_routing_weights_of_every_expert_camera():
    plot = keys(load()['groups']['pluginmanager']['groups'][PLOT]['groups']['plugin'])
    parsed = [FIELD.match(t) for t in plot['topics']]
    assert all(parsed), plot['topics']
    # The topic policy_node publishes RoutingWeights on, and the message's weight array.
    assert {m['topic'] for m in parsed} == {PolicyNodeConfig().routing_topic}
    assert {m['field'] for m in parsed} == {'weights'}
    assert RoutingWeights.get_fields_and_field_types()['weights'] == 'sequence<float>'
    # One curve per expert camera, in router order (index i is expert_cameras[i]).
    experts = DataConfig().expert_cameras
    assert [int(m['index']) for m in parsed] == list(range(len(experts)))
    title = keys(load()['groups']['pluginmanager']['groups'][PLOT]['groups'][
        'dock_widget__DataPlotWidget'])['dock_widget_title']
    assert all(f'[{i}] {name}' in title for i, name in enumerate(experts)), title


def test_no_config_moves_the_routing_topic_away_from_the_plot():
    for path in sorted((ROOT / 'pi05_moe_bringup' / 'config').glob('*.yaml')):
        for node in load_graph(path).nodes:
            if node.executable == 'policy_node':
                assert node.params.get('routing_topic', '/pi05_moe/routing') == \
                    '/pi05_moe/routing', path


def test_perspective_is_installed():
    share = Path(get_package_share_directory('pi05_moe_bringup'))
    assert (share / 'rqt' / 'routing.perspective').read_text() == PERSPECTIVE.read_text()
