"""The node graph as plain data, read from one params YAML file (no rclpy, no launch).

A bringup config (``config/*.yaml``) is an ordinary ROS 2 params file, one
``node_name: ros__parameters: {...}`` block per node, plus ONE extra top-level section,
``pi05_moe_graph:``, that says which processes to start::

    pi05_moe_graph:
      description: Simulated robot + policy + executor.   # one line, shown by `up --dry-run`
      use_sim_time: true          # default of every ROS node's use_sim_time (overridable)
      arguments:                  # `ros2 launch ... name:=value` / `pi05-moe up --arg name=value`
        l515_driver: {default: own, choices: [own, realsense], help: which L515 driver runs}
        bag: {help: the bag to replay}            # no default: the argument is required
        checkpoint: {default: 'preset:tiny'}
      nodes:                      # start order
        policy_node:              # the node name (`-r __node:=policy_node`)
          package: pi05_moe_policy        # required: ament package ...
          executable: policy_node         # ... and its executable in lib/<package>/
          remap: {/from: /to}             # ROS remapping rules, applied in this order
          arguments: [replay, '${bag}']   # argv before --ros-args
          env: {MUJOCO_GL: egl}           # extra environment variables
          use_sim_time: false             # this node's override of the graph default
          enabled: true                   # false: the entry is kept but never started
          when: {l515_driver: own}        # started only when every argument has this value
          on_exit: fail                   # fail | shutdown | respawn (see below)
          respawn_delay_s: 2.0            # with on_exit: respawn
          ros_args: true                  # false: a plain process (a CLI), given no ROS args

    policy_node:
      ros__parameters:
        checkpoint: ${checkpoint}                 # the value of a graph argument
        cameras: {l515: /l515/color/image_raw}    # nested maps are dotted names: cameras.l515

``${name}`` is replaced by the value of graph argument ``name`` in ``arguments``, ``env`` values
and string parameters.

``on_exit`` says what the exit of a process means, the same for ``pi05-moe up`` and
``ros2 launch``:

- ``fail`` (default): any exit stops the whole graph, as an error;
- ``shutdown``: exit code 0 ends the graph normally (a bag replay that reached its end);
- ``respawn``: restart the process after ``respawn_delay_s`` (a USB camera that dropped out).

Each process gets only its own parameters (the runner writes one params file per node; the
launch file hands launch_ros one dict per node), so ROS never sees ``pi05_moe_graph``. Typos do
not pass silently: unknown keys, parameter blocks without a node entry, undeclared arguments and
values outside ``choices`` raise :class:`GraphError` naming the file and the key.

Two things are generated from a :class:`GraphSpec`: the launch description
(:func:`to_launch_description`, used by ``launch/*.launch.py``) and the process list of
``pi05-moe up`` (:mod:`pi05_moe_bringup.runner`, via :func:`ros_arguments`).
"""

from __future__ import annotations

import re
import signal
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from ament_index_python.packages import (
    PackageNotFoundError,
    get_package_prefix,
    get_package_share_directory,
)

from pi05_moe_policy.params import ros_params_document

PACKAGE = 'pi05_moe_bringup'
GRAPH_KEY = 'pi05_moe_graph'
ON_EXIT = ('fail', 'shutdown', 'respawn')
_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_SUBST = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)\}')
_SCALARS = (bool, int, float, str)


class GraphError(ValueError):
    """A bringup config that cannot describe a graph; the message names the file and key."""


@dataclass(frozen=True)
class Argument:
    """A graph argument: a launch argument, or ``pi05-moe up --arg name=value``."""

    name: str
    default: str | None  # None: required
    help: str = ''
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """One process of the graph; see the module docstring for the meaning of each field."""

    name: str
    package: str
    executable: str
    params: dict[str, Any] = field(default_factory=dict)  # flat, dotted names
    remaps: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    use_sim_time: bool | None = None  # None: the graph's default
    enabled: bool = True
    when: dict[str, str] = field(default_factory=dict)
    on_exit: str = 'fail'
    respawn_delay_s: float = 2.0
    ros_args: bool = True


@dataclass(frozen=True)
class GraphSpec:
    """A whole node graph: its arguments and its nodes in start order."""

    path: Path
    description: str
    use_sim_time: bool
    arguments: dict[str, Argument]
    nodes: tuple[NodeSpec, ...]

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``; ``KeyError`` lists the known names."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f'{self.path.name}: no node {name!r}; nodes: '
                       f'{", ".join(n.name for n in self.nodes)}')


# ---------------------------------------------------------------------------------- loading

def share_config(name: str) -> Path:
    """``share/pi05_moe_bringup/config/<name>`` of the install tree (``.yaml`` may be left off)."""
    file = name if name.endswith(('.yaml', '.yml')) else f'{name}.yaml'
    return Path(get_package_share_directory(PACKAGE)) / 'config' / file


def load_graph(path: str | Path) -> GraphSpec:
    """Read a bringup config; raises :class:`GraphError` for anything it cannot use."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GraphError(f'{path}: not valid YAML: {exc}') from None
    return parse_graph(data, path)


def parse_graph(data: Any, path: Path) -> GraphSpec:
    """Build a :class:`GraphSpec` from the YAML document ``data`` read from ``path``."""
    where = str(path)
    _expect(isinstance(data, dict), where, 'a mapping of node names (and pi05_moe_graph)')
    data = dict(data)
    graph = data.pop(GRAPH_KEY, None)
    _expect(isinstance(graph, dict), where, f'a top-level {GRAPH_KEY!r} section')
    _keys(graph, {'description', 'use_sim_time', 'arguments', 'nodes'}, f'{where}: {GRAPH_KEY}')
    use_sim_time = graph.get('use_sim_time', False)
    _expect(isinstance(use_sim_time, bool), f'{where}: {GRAPH_KEY}.use_sim_time', 'true/false')

    arguments = {name: _argument(name, spec, f'{where}: {GRAPH_KEY}.arguments.{name}')
                 for name, spec in (graph.get('arguments') or {}).items()}
    entries = graph.get('nodes')
    _expect(isinstance(entries, dict) and entries, f'{where}: {GRAPH_KEY}.nodes',
            'a mapping of node name -> {package, executable, ...}')

    for name in data:
        _expect(name in entries, f'{where}: {name}',
                f'a node listed under {GRAPH_KEY}.nodes (parameters for no process)')
    nodes = tuple(_node(name, entry, data.get(name), arguments, where)
                  for name, entry in entries.items())
    return GraphSpec(path, str(graph.get('description', '')), use_sim_time, arguments, nodes)


def _expect(ok: bool, where: str, expected: str) -> None:
    if not ok:
        raise GraphError(f'{where}: expected {expected}')


def _keys(mapping: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise GraphError(f'{where}: unknown key(s) {unknown}; known: {sorted(known)}')


def _argument(name: str, spec: Any, where: str) -> Argument:
    _expect(bool(_NAME.match(str(name))) and name != 'use_sim_time', where,
            'an argument name like l515_driver (use_sim_time is built in)')
    spec = {} if spec is None else spec
    _expect(isinstance(spec, dict), where, 'a mapping {default, help, choices}')
    _keys(spec, {'default', 'help', 'choices'}, where)
    default = spec.get('default')
    choices = tuple(str(c) for c in spec.get('choices') or ())
    if default is not None:
        default = _yaml_str(default)
        _expect(not choices or default in choices, f'{where}.default={default!r}',
                f'one of {list(choices)}')
    return Argument(name, default, str(spec.get('help', '')), choices)


def _yaml_str(value: Any) -> str:
    """A YAML scalar as launch would spell it (``true``, not ``True``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _node(name: str, entry: Any, block: Any, arguments: dict[str, Argument],
          file: str) -> NodeSpec:
    where = f'{file}: {GRAPH_KEY}.nodes.{name}'
    _expect(bool(_NAME.match(str(name))), where, 'a ROS node name (letters, digits, _)')
    _expect(isinstance(entry, dict), where, 'a mapping {package, executable, ...}')
    _keys(entry, {'package', 'executable', 'remap', 'arguments', 'env', 'use_sim_time',
                  'enabled', 'when', 'on_exit', 'respawn_delay_s', 'ros_args'}, where)
    for key in ('package', 'executable'):
        _expect(isinstance(entry.get(key), str) and entry[key], f'{where}.{key}', 'a name')
    remap = entry.get('remap') or {}
    env = entry.get('env') or {}
    when = entry.get('when') or {}
    args = entry.get('arguments') or []
    _expect(isinstance(remap, dict), f'{where}.remap', 'a mapping {from: to}')
    _expect(isinstance(env, dict), f'{where}.env', 'a mapping {NAME: value}')
    _expect(isinstance(when, dict), f'{where}.when', 'a mapping {argument: value}')
    _expect(isinstance(args, list), f'{where}.arguments', 'a list of strings')
    for arg, value in when.items():
        _expect(arg in arguments, f'{where}.when.{arg}', f'a declared argument of {GRAPH_KEY}')
        choices = arguments[arg].choices
        _expect(not choices or _yaml_str(value) in choices, f'{where}.when.{arg}={value!r}',
                f'one of {list(choices)}')
    on_exit = entry.get('on_exit', 'fail')
    _expect(on_exit in ON_EXIT, f'{where}.on_exit={on_exit!r}', f'one of {list(ON_EXIT)}')
    delay = entry.get('respawn_delay_s', 2.0)
    _expect(isinstance(delay, (int, float)) and delay >= 0, f'{where}.respawn_delay_s',
            'a number >= 0')
    flags = {k: entry.get(k, d) for k, d in
             (('enabled', True), ('ros_args', True), ('use_sim_time', None))}
    for key, value in flags.items():
        _expect((value is None and key == 'use_sim_time') or isinstance(value, bool),
                f'{where}.{key}', 'true/false')
    params = _params(block, f'{file}: {name}')
    texts = [*map(str, args), *map(str, env.values()),
             *(v for v in params.values() if isinstance(v, str))]
    for ref in (ref for text in texts for ref in _SUBST.findall(text)):
        _expect(ref in arguments, f'{where}: ${{{ref}}}', f'a declared argument of {GRAPH_KEY}')
    _expect(flags['ros_args'] or not (params or remap), where,
            'no parameters or remaps with ros_args: false (a plain process gets no ROS args)')
    return NodeSpec(
        name=name, package=entry['package'], executable=entry['executable'], params=params,
        remaps=tuple((str(k), str(v)) for k, v in remap.items()),
        arguments=tuple(map(str, args)), env={str(k): str(v) for k, v in env.items()},
        use_sim_time=flags['use_sim_time'], enabled=flags['enabled'],
        when={str(k): _yaml_str(v) for k, v in when.items()}, on_exit=on_exit,
        respawn_delay_s=float(delay), ros_args=flags['ros_args'])


def _params(block: Any, where: str) -> dict[str, Any]:
    """The flat ``{dotted.name: value}`` parameters of a ``node: ros__parameters:`` block."""
    if block is None:
        return {}
    _expect(isinstance(block, dict) and set(block) == {'ros__parameters'}, where,
            'exactly one key, ros__parameters')
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f'{prefix}{key}.', sub)
            return
        name = prefix[:-1]
        ok = isinstance(value, _SCALARS) or (
            isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value)
            and len({type(v) for v in value}) <= 1)
        _expect(ok, f'{where}.{name}={value!r}', 'a ROS parameter: a scalar or a list of one '
                'scalar type')
        flat[name] = value

    walk('', block['ros__parameters'] or {})
    return flat


# ---------------------------------------------------------------------------------- selection

def resolve_arguments(graph: GraphSpec, given: dict[str, str]) -> dict[str, str]:
    """Every argument's value: ``given`` over the defaults; raises for unknown/missing/bad."""
    unknown = sorted(set(given) - set(graph.arguments))
    if unknown:
        raise GraphError(f'{graph.path.name}: unknown argument(s) {unknown}; arguments: '
                         f'{sorted(graph.arguments) or "none"}')
    values = {}
    for name, arg in graph.arguments.items():
        value = given.get(name, arg.default)
        if value is None:
            raise GraphError(f'{graph.path.name}: argument {name!r} is required ({arg.help})')
        if arg.choices and value not in arg.choices:
            raise GraphError(f'{graph.path.name}: argument {name}={value!r}: expected one of '
                             f'{list(arg.choices)}')
        values[name] = value
    return values


def substitute(node: NodeSpec, values: dict[str, str]) -> NodeSpec:
    """``node`` with ``${arg}`` replaced by ``values`` in its arguments, env and string params."""
    def sub(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return _SUBST.sub(lambda m: values[m.group(1)], value)

    return replace(node, arguments=tuple(map(sub, node.arguments)),
                   env={k: sub(v) for k, v in node.env.items()},
                   params={k: sub(v) for k, v in node.params.items()})


def select(graph: GraphSpec, values: dict[str, str]) -> list[NodeSpec]:
    """The nodes that run with argument ``values`` (see :func:`resolve_arguments`), in start
    order, substituted (:func:`substitute`)."""
    return [substitute(node, values) for node in graph.nodes
            if node.enabled and all(values[k] == v for k, v in node.when.items())]


def uses_sim_time(graph: GraphSpec, node: NodeSpec, default: bool | None = None) -> bool:
    """Whether ``node`` runs on /clock: its own setting, else ``default``, else the graph's."""
    if node.use_sim_time is not None:
        return node.use_sim_time
    return graph.use_sim_time if default is None else default


def params_document(node: NodeSpec) -> dict[str, Any]:
    """``{name: {ros__parameters: {...}}}`` with nested maps: the node's own params file."""
    return ros_params_document(node.name, node.params)


def params_yaml(node: NodeSpec) -> str:
    """The node's own params file: :func:`params_document` as YAML, short lists on one line."""
    return yaml.safe_dump(params_document(node), sort_keys=False, default_flow_style=None,
                          width=99)


def write_params_file(node: NodeSpec, directory: Path) -> Path:
    """Write :func:`params_yaml` to ``directory/<node>.params.yaml`` and return the path."""
    path = Path(directory) / f'{node.name}.params.yaml'
    path.write_text(params_yaml(node))
    return path


def ros_arguments(node: NodeSpec, params_file: str | Path | None,
                  use_sim_time: bool) -> list[str]:
    """The ``--ros-args ...`` part of a node's command line (empty for a plain process)."""
    if not node.ros_args:
        return []
    out = ['--ros-args', '-r', f'__node:={node.name}']
    if params_file is not None:
        out += ['--params-file', str(params_file)]
    for src, dst in node.remaps:
        out += ['-r', f'{src}:={dst}']
    if use_sim_time:
        out += ['-p', 'use_sim_time:=true']
    return out


def executable_path(node: NodeSpec) -> Path:
    """``<prefix of package>/lib/<package>/<executable>``; ``FileNotFoundError`` names both."""
    try:
        prefix = Path(get_package_prefix(node.package))
    except PackageNotFoundError:
        raise FileNotFoundError(
            f'{node.name}: package {node.package!r} is not installed (not found on '
            'AMENT_PREFIX_PATH: for pi05_moe_* run `bash scripts/setup.sh` and `source env.sh`; '
            'install and source any other package)') from None
    path = prefix / 'lib' / node.package / node.executable
    if not path.is_file():
        raise FileNotFoundError(f'{node.name}: package {node.package!r} has no executable '
                                f'{node.executable!r} ({path} is missing)')
    return path


# ---------------------------------------------------------------------------------- exits

def resolve_executables(nodes: list[NodeSpec]) -> dict[str, Path]:
    """Every node's executable (:func:`executable_path`), all resolved before anything starts.

    ``FileNotFoundError`` names every node whose package or executable is missing, on one line,
    so that a launch never starts half a graph (drivers holding /dev/video* without a policy).
    """
    found, missing = {}, []
    for node in nodes:
        try:
            found[node.name] = executable_path(node)
        except FileNotFoundError as exc:
            missing.append(str(exc))
    if missing:
        raise FileNotFoundError('; '.join(missing) + '; nothing was started')
    return found


def exit_outcome(node: NodeSpec, code: int) -> str:
    """What a process's exit with ``code`` does to the graph (``pi05-moe up`` and launch alike).

    ``'respawn'``: restart it; ``'finished'``: the graph ends normally (exit code 0);
    ``'failed'``: the graph stops with exit code 1.
    """
    if node.on_exit == 'respawn':
        return 'respawn'
    if node.on_exit == 'shutdown' and code == 0:
        return 'finished'
    return 'failed'


def describe_exit(code: int) -> str:
    """``exited with code 3`` / ``was killed by SIGKILL`` (a negative code is a signal)."""
    if code >= 0:
        return f'exited with code {code}'
    try:
        return f'was killed by {signal.Signals(-code).name}'
    except ValueError:
        return f'was killed by signal {-code}'


class GraphFailedError(RuntimeError):
    """A node whose ``on_exit`` is ``fail`` ended: the launch stops with a failure status."""


# ---------------------------------------------------------------------------------- launch

def to_launch_description(graph: GraphSpec):
    """A ``launch.LaunchDescription`` running ``graph`` (imports launch/launch_ros lazily).

    Declares one launch argument per graph argument plus ``use_sim_time`` (the same names as
    ``pi05-moe up --arg`` and ``--use-sim-time``); the nodes are chosen at launch time by
    :func:`select`, the same function the runner uses, and every executable is resolved
    (:func:`resolve_executables`) before the first process starts. A node that fails
    (:func:`exit_outcome`) raises :class:`GraphFailedError`, which launch reports on one line
    (``Caught exception in launch ...``) before it stops the graph and exits 1, as
    ``pi05-moe up`` does; plain ``Shutdown`` actions would end the launch with 0.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    declared = [
        DeclareLaunchArgument(
            arg.name, description=arg.help,
            **({} if arg.default is None else {'default_value': arg.default}),
            **({'choices': list(arg.choices)} if arg.choices else {}))
        for arg in graph.arguments.values()]
    declared.append(DeclareLaunchArgument(
        'use_sim_time', default_value=_yaml_str(graph.use_sim_time),
        description='use /clock for every ROS node that does not set use_sim_time itself'))

    def actions(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in graph.arguments}
        sim = LaunchConfiguration('use_sim_time').perform(context).lower() in ('true', '1')
        nodes = select(graph, resolve_arguments(graph, values))
        exes = resolve_executables(nodes)  # all of them, before any process starts
        # The same params files as the runner's (launch_ros would re-parse string values of a
        # dict as YAML: '' and 'true' would change type). Left behind, as launch_ros does.
        tmp = Path(tempfile.mkdtemp(prefix=f'pi05_moe_{graph.path.stem}_'))
        return [_launch_action(node, exes[node.name], tmp, uses_sim_time(graph, node, sim))
                for node in nodes]

    return LaunchDescription([*declared, OpaqueFunction(function=actions)])


def _on_exit(node: NodeSpec):
    """The launch action run when ``node``'s process ends (``on_exit`` fail or shutdown)."""
    from launch.actions import OpaqueFunction, Shutdown

    def handle(context):
        if context.is_shutdown:  # Ctrl-C or another node's exit: the graph is stopping anyway
            return None
        code = context.locals.event.returncode
        if exit_outcome(node, code) == 'finished':
            return [Shutdown(reason=f'{node.name} finished')]
        raise GraphFailedError(f'{node.name} {describe_exit(code)} (on_exit: {node.on_exit}); '
                          'stopping the graph')

    return OpaqueFunction(function=handle)


def _launch_action(node: NodeSpec, exe: Path, tmp: Path, use_sim_time: bool):
    """One launch_ros ``Node`` (or ``ExecuteProcess`` for a plain process)."""
    from launch.actions import ExecuteProcess
    from launch_ros.actions import Node

    common = dict(output='screen', additional_env=dict(node.env) or None,
                  respawn=node.on_exit == 'respawn', respawn_delay=node.respawn_delay_s)
    if node.on_exit != 'respawn':
        common['on_exit'] = [_on_exit(node)]
    if not node.ros_args:
        return ExecuteProcess(cmd=[str(exe), *node.arguments], name=node.name, **common)
    return Node(package=node.package, executable=node.executable, name=node.name,
                parameters=[str(write_params_file(node, tmp)), {'use_sim_time': use_sim_time}],
                remappings=list(node.remaps), arguments=list(node.arguments), **common)
