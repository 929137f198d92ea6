"""policy_node's prompt over DDS (#18 item 7): every publisher durability, the parameter, the
latched echo.

- a transient-local publisher that published before the node started is used (late joiner);
- a volatile reliable publisher (Jazzy's default ``ros2 topic pub``) is used too, with no
  incompatible-QoS warning;
- ``~/set_parameters`` with ``prompt`` sets it (an empty prompt is refused, the old one kept);
- the prompt in use is latched on ``/policy_node/prompt`` for a subscriber that joins later.
"""

from __future__ import annotations

import pytest
from policy_probe import PolicyProbe, start_policy_node
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from std_msgs.msg import String

from pi05_moe_policy.nodes import qos


@pytest.fixture(scope='module')
def policy(ros, spawn, tmp_path_factory):
    probe = PolicyProbe(ros, 'prompt_probe')  # its latched prompt goes out before the node runs
    proc = start_policy_node(spawn, tmp_path_factory.mktemp('prompt') / 'policy.yaml',
                             prompt='the default prompt')
    yield proc, probe
    ros.remove(probe.node)
    assert proc.stop() == 0


def _chunk_prompt(probe, wait_until, proc, text, what):
    def seen():
        return any(c.prompt == text for c in probe.chunks_since(0)[-3:])
    wait_until(seen, 60, what, process=proc)


def _set_prompt(ros, node, text):
    client = node.create_client(SetParameters, '/policy_node/set_parameters')
    value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=text)
    response = ros.call(client, SetParameters.Request(
        parameters=[Parameter(name='prompt', value=value)]))
    return response.results[0]


def _get_prompt(ros, node):
    client = node.create_client(GetParameters, '/policy_node/get_parameters')
    return ros.call(client, GetParameters.Request(names=['prompt'])).values[0].string_value


@pytest.mark.timeout(120)
def test_a_latched_prompt_sent_before_the_node_started_is_used(policy, wait_until):
    proc, probe = policy
    _chunk_prompt(probe, wait_until, proc, 'lift the red cube',
                  "chunks with the latched prompt 'lift the red cube'")


@pytest.mark.timeout(120)
def test_a_volatile_publisher_sets_the_prompt_and_the_node_latches_it(policy, ros,
                                                                      wait_until):
    proc, probe = policy
    node = ros.node('volatile_prompter')
    pub = node.create_publisher(String, '/pi05_moe/prompt', qos.PROMPT_VOLATILE)
    wait_until(lambda: pub.get_subscription_count() >= 1, 20, 'a volatile-compatible prompt '
               'subscription', process=proc)
    # Volatile: only a matched subscriber gets it; publish until it is taken (as ros2 topic pub
    # does at 1 Hz).
    node.create_timer(0.5, lambda: pub.publish(String(data='lift the hot cube')))
    _chunk_prompt(probe, wait_until, proc, 'lift the hot cube',
                  "chunks with the volatile publisher's prompt")
    assert not proc.matching('incompatible QoS'), proc.matching('incompatible QoS')
    ros.remove(node)
    assert _get_prompt(ros, probe.node) == 'lift the hot cube'
    late: list[str] = []
    probe.node.create_subscription(String, '/policy_node/prompt', lambda m: late.append(m.data),
                                   qos.PROMPT)
    wait_until(lambda: late, 20, 'the latched prompt on /policy_node/prompt')
    assert late == ['lift the hot cube']


@pytest.mark.timeout(120)
def test_the_parameter_service_sets_the_prompt(policy, ros, wait_until):
    proc, probe = policy
    result = _set_prompt(ros, probe.node, '   ')
    assert not result.successful and 'empty prompt' in result.reason
    result = _set_prompt(ros, probe.node, 'stack_the  cubes')
    assert result.successful, result.reason
    _chunk_prompt(probe, wait_until, proc, 'stack the cubes', 'chunks with the service prompt')
    proc.wait_for(r"\[policy_node\]: prompt \(parameter prompt\): 'stack the cubes'")
