"""The package's layers hold: no import circle among `media_assets` modules, and the Dagster-free modules
(everything outside `defs/`, `definitions.py` and `runner.py`) do not load dagster."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import media_assets

PACKAGE_DIR = Path(media_assets.__file__).resolve().parent
#: Alembic runs these itself: env.py configures a migration context when imported.
NOT_IMPORTABLE = ("media_assets.catalog.migrations",)
#: The modules allowed to load Dagster.
DAGSTER_MODULES = ("media_assets.defs", "media_assets.definitions", "media_assets.runner")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    return {name: path for name, path in sorted(found.items()) if not name.startswith(NOT_IMPORTABLE)}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules `name` imports anywhere (at the top or inside a function; not for type checking).
    A parent package imported implicitly before its module does not count."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import module` imports the module; the package is only its parent, like for any import
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(base)
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(ast.parse(path.read_text(), str(path)))
    return {module for module in found if module in modules and module != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_no_import_circle_among_the_packages_modules() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_circle_through_an_import_inside_a_function() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _import_in_fresh_interpreter(names: list[str]) -> list[str]:
    """Import `names` in a new interpreter; returns the dagster modules that got loaded."""
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "print('\\n'.join(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_dagster_free_modules_do_not_load_dagster() -> None:
    free = [name for name in _modules() if not _within(name, DAGSTER_MODULES)]
    assert "media_assets.operations" in free
    assert _import_in_fresh_interpreter(free) == []


def test_every_module_imports() -> None:
    assert "dagster" in _import_in_fresh_interpreter(list(_modules()))


def test_only_the_batch_lifecycle_writes_a_batch_status() -> None:
    writers = {name for name, path in _modules().items() if "set_batch_status(" in path.read_text()}
    assert writers == {"media_assets.batches", "media_assets.catalog.batches"}


def test_sql_is_sent_only_from_the_catalog() -> None:
    """Every statement lives in `catalog/`; elsewhere no module runs one on a connection or a cursor (a Dagster
    executor's `execute(plan_context, ...)` is no statement)."""
    senders = {name for name, path in _modules().items()
               if re.search(r"\.execute(many)?\((?!plan_context)", path.read_text())
               and not _within(name, ("media_assets.catalog",))}
    assert senders == set()


#: docs/ARCHITECTURE.md's layers, top first: a module imports only from its own row or the rows below it.
LAYERS = (
    ("media_assets.cli", "media_assets.ui"),
    ("media_assets.definitions",),
    ("media_assets.defs", "media_assets.runner"),
    ("media_assets.operations", "media_assets.integrity", "media_assets.automation", "media_assets.doctor",
     "media_assets.find"),
    ("media_assets.phases",),
    ("media_assets.selection", "media_assets.disk"),
    ("media_assets.sources", "media_assets.destinations", "media_assets.icloud", "media_assets.mirror",
     "media_assets.telegram"),
    ("media_assets.catalog", "media_assets.batches", "media_assets.reporting"),
    ("media_assets.media", "media_assets.storage", "media_assets.settings", "media_assets.faults",
     "media_assets.phases.workers"),
)


def _layer(name: str) -> int | None:
    """The row of the longest prefix that holds `name` (phases.workers, the process pool, sits at the bottom)."""
    matches = [(len(prefix), row) for row, prefixes in enumerate(LAYERS) for prefix in prefixes
               if _within(name, (prefix,))]
    return max(matches)[1] if matches else None


def test_modules_import_only_from_their_layer_or_below() -> None:
    modules = _modules()
    unplaced = {name for name in modules if name != "media_assets" and _layer(name) is None}
    assert unplaced == set(), "add new top-level modules to LAYERS and docs/ARCHITECTURE.md"
    upward = sorted((name, imported) for name, path in modules.items() if name != "media_assets"
                    for imported in _imports(name, path, set(modules))
                    if imported != "media_assets" and (_layer(imported) or 0) < (_layer(name) or 0))
    assert upward == []
    # Dagster loads the one Definitions; the runner executes batches with the domains' (defs/domains.py).
    importers = {name for name, path in modules.items()
                 if "media_assets.definitions" in _imports(name, path, set(modules))}
    assert importers == set()
