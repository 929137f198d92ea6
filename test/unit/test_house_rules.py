"""House rules of issue 14, checked on the source with ``ast`` (nothing is imported):

- no function or method longer than ``MAX_FUNCTION_LINES`` in the three Python packages, unless
  it is listed below with a reason;
- no node module (a file named ``*_node.py``) longer than ``MAX_NODE_LINES``: a node translates
  messages and parameters, the work lives in the ROS-free core (STYLE.md).

A function's length runs from its ``def`` line to its last line, docstring and comments included
(decorators not).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ('pi05_moe_policy', 'pi05_moe_training', 'pi05_moe_bringup')
MAX_FUNCTION_LINES = 80
MAX_NODE_LINES = 200

# 'path/inside/the/repo.py:qualified.name' -> why it may be longer. Keep this short.
LONG_FUNCTIONS: dict[str, str] = {}


def _sources() -> list[Path]:
    return [path for pkg in PACKAGES for path in sorted((ROOT / pkg / pkg).rglob('*.py'))]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def function_lengths(source: str) -> dict[str, int]:
    """``{qualified name: lines}`` of every function and method in ``source`` (nested ones as
    ``outer.inner``, methods as ``Class.method``)."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                lengths[name] = child.end_lineno - child.lineno + 1
                visit(child, name + '.')
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + '.')
            else:
                visit(child, prefix)

    visit(ast.parse(source), '')
    return lengths


def test_function_lengths_are_measured_def_to_last_line():
    source = ('@decorator\n'
              'def f():\n'
              '    """Doc."""\n'
              '    def inner():\n'
              '        return 1\n'
              '    return inner\n'
              '\n'
              'class C:\n'
              '    def m(self):\n'
              '        pass\n')
    assert function_lengths(source) == {'f': 5, 'f.inner': 2, 'C.m': 2}


def test_no_function_over_the_limit_without_a_reason():
    allowed = LONG_FUNCTIONS
    too_long = []
    for path in _sources():
        for name, lines in function_lengths(path.read_text()).items():
            key = f'{_rel(path)}:{name}'
            if lines > MAX_FUNCTION_LINES and key not in allowed:
                too_long.append(f'{key} ({lines} lines)')
    assert not too_long, (f'functions over {MAX_FUNCTION_LINES} lines (split them into pure '
                          f'helpers, or list them in LONG_FUNCTIONS with a reason): {too_long}')


def test_no_node_module_over_the_limit():
    nodes = [path for path in _sources() if path.name.endswith('_node.py')]
    assert len(nodes) >= 7, [_rel(p) for p in nodes]  # policy, executor, sim, recorder, cameras
    too_long = [f'{_rel(p)} ({n} lines)' for p in nodes
                if (n := len(p.read_text().splitlines())) > MAX_NODE_LINES]
    assert not too_long, (f'node modules over {MAX_NODE_LINES} lines (move the logic into the '
                          f'ROS-free core): {too_long}')


def test_every_listed_function_exists():
    """An allowance for a function that was renamed or removed is stale: delete it."""
    for key in LONG_FUNCTIONS:
        path, _, name = key.partition(':')
        assert name in function_lengths((ROOT / path).read_text()), key


def test_every_function_with_a_reason_is_still_long_and_says_why():
    for key, reason in LONG_FUNCTIONS.items():
        path, _, name = key.partition(':')
        assert function_lengths((ROOT / path).read_text())[name] > MAX_FUNCTION_LINES, \
            f'{key} is within the limit now: remove it from LONG_FUNCTIONS'
        assert len(reason) > 10, f'{key}: give a reason'
