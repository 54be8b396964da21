"""The package's import graph: no circle anywhere in ``depthlab/``, and nothing below the command layer
(``depthlab.cli``, ``depthlab.parser``, ``depthlab.commands``) imports it.

Read from the source with :mod:`ast` (every ``import`` statement, function-level ones included), so a
lazy import inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import depthlab

PACKAGE = Path(depthlab.__file__).resolve().parent
COMMAND_LAYER = ("depthlab.cli", "depthlab.parser", "depthlab.commands")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The depthlab module that ``import name`` loads (``name`` may be a package attribute)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The depthlab modules ``module`` imports (any line of it). Importing ``a.b.c`` also runs the
    package ``a.b``'s ``__init__``; that implicit step is not an edge here (a package's ``__init__``
    re-exporting its submodules is the package's own business)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                prefix = f"{base}.{node.module}" if node.module else base
            else:
                prefix = node.module or ""
            # `from a.b import c`: module a.b.c if there is one, else attribute c of module a.b
            names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix
                     for alias in node.names]
        for name in names:
            if name == "depthlab" or name.startswith("depthlab."):
                target = _resolve(name, modules)
                if target and target != module:
                    found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def _in_command_layer(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in COMMAND_LAYER)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_checker_sees_function_level_and_relative_imports_and_circles(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("import os\n"
                      "from . import errors\n"
                      "from depthlab.data import check\n"
                      "def f():\n"
                      "    from depthlab.cli import main\n"
                      "    import depthlab.parser as p\n")
    modules = {**_modules(), "depthlab.eval.x": source}
    assert imports_of("depthlab.eval.x", source, modules) == {
        "depthlab.eval.errors" if "depthlab.eval.errors" in modules else "depthlab.eval",
        "depthlab.data.check", "depthlab.cli", "depthlab.parser"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_nothing_below_the_command_layer_imports_it():
    upward = sorted(f"{module} imports {target}" for module, targets in import_graph().items()
                    if not _in_command_layer(module) for target in targets if _in_command_layer(target))
    assert not upward, "imports of the command layer from below it:\n" + "\n".join(upward)


@pytest.mark.slow
def test_the_cli_and_a_listing_command_start_without_lightning():
    """`depthlab losses` lists the plugins without importing Lightning (about 4 s of start-up here)."""
    import subprocess
    import sys

    code = ("import sys\nfrom depthlab.cli import main\n"
            "assert 'lightning' not in sys.modules, 'importing depthlab.cli loaded lightning'\n"
            "assert main(['losses']) == 0\n"
            "assert 'lightning' not in sys.modules, 'depthlab losses loaded lightning'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "silog" in result.stdout
