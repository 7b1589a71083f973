"""The package's structural rules, checked by reading its source (the ``ast`` of each module).

The module headers state rules ("Rules of this module"); those that are about
structure are checked here, so that a header cannot drift from the code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "shutdownbus"


def _module_name(path: Path) -> str:
    """``_stop`` for shutdownbus/_stop.py, ``_platform._exits`` for a module of a
    subpackage, ``_platform`` for its ``__init__``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or "__init__"


MODULES = {_module_name(path): ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}
#: The modules that are packages (their relative imports start from themselves).
PACKAGES = {_module_name(path) for path in PACKAGE.rglob("__init__.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node``, but not in ``if TYPE_CHECKING:`` blocks (not run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def imported_modules(tree: ast.AST, module: str = "") -> set[str]:
    """The absolute names of what a module of the package imports (at import time or later).

    Args:
        tree: The module's syntax tree.
        module: Its name in `MODULES` (relative imports start from its package).
    """
    here = ["shutdownbus", *[p for p in module.split(".") if p and p != "__init__"]]
    package = here if module in PACKAGES else here[:-1]
    names: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from ._x import y / from .. import z
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                names |= {base} if node.module else {f"{base}.{alias.name}" for alias in node.names}
            elif node.module:
                names.add(node.module)
    return names


def package_imports() -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (by their names in `MODULES`)."""
    graph = {}
    for name, tree in MODULES.items():
        ours = [m for m in imported_modules(tree, name) if m.startswith("shutdownbus.")]
        imported = {m.removeprefix("shutdownbus.") for m in ours}
        graph[name] = {m for m in imported if m in MODULES and m != name}
    return graph


def test_imports_run_one_way() -> None:
    """No import circle, at module level or inside functions (a local import
    that only breaks a circle is still the circle)."""
    graph = package_imports()
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


DOWNWARDS = [
    ("_child", "_stop"),
    ("_child", "_member"),
    ("_stop", "_bus"),
    ("_member", "_bus"),
    ("_bus", "_protocol"),
]


@pytest.mark.parametrize(("importer", "imported"), DOWNWARDS)
def test_the_stopping_machinery_imports_downwards(importer: str, imported: str) -> None:
    """``_child -> _stop -> _bus -> _protocol`` and ``_child -> _member -> _bus`` (`_child` wires the two)."""
    graph = package_imports()
    assert imported in graph[importer]
    assert importer not in graph[imported]


def _names_used(tree: ast.AST) -> set[str]:
    """Every name a module loads at run time (not in ``if TYPE_CHECKING:`` blocks)."""
    return {n.id for n in _walk(tree) if isinstance(n, ast.Name)}


def test_stopping_children_never_calls_back_into_the_member() -> None:
    """_stop: "It knows nothing of `_member`": what it needs is handed to it (a
    `Relay`), and `_member` reaches `_stop` only through the hooks `_child`
    installs.  So calls run one way, as the imports do: neither module names
    the other at run time (a call through a module attribute, or a hook
    installed from the far side, would)."""
    assert "_member" not in _names_used(MODULES["_stop"]) and "_member" not in package_imports()["_stop"]
    assert "_stop" not in _names_used(MODULES["_member"]) and "_stop" not in package_imports()["_member"]


def _reads_sys_platform(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "platform"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        for node in _walk(tree)
    )


def test_only_platform_tells_the_operating_systems_apart() -> None:
    """_platform: "Callers never test sys.platform themselves" (its `_os` sets the flags)."""
    offenders = [name for name, tree in MODULES.items() if name != "_platform._os" and _reads_sys_platform(tree)]
    assert offenders == []


#: Where psutil may be imported: the process layer (one process, the trees,
#: escalation, the admin's endpoint check), ``shutdownbus tree``'s live view,
#: the test harness helpers (whose public functions hand out psutil.Process objects) and the conformance runner.
PSUTIL_MAY_BE_IMPORTED_IN = {
    "_processes", "_tree", "_escalation", "_endpoint_owner", "_cli", "testing", "pytest_plugin",
    "conformance._runner",  # a test tool: it checks the member's descendants and kills what a case left
}


def test_psutil_is_imported_where_the_rule_says() -> None:
    """_processes.py: "psutil is imported by the functions", in the process layer only."""
    offenders = sorted(name for name, tree in MODULES.items() if "psutil" in imported_modules(tree))
    assert set(offenders) <= PSUTIL_MAY_BE_IMPORTED_IN, offenders


def _function(module: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(MODULES[module]) if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.parametrize(("module", "function"), [("_member", "_at_exit"), ("_stop", "at_exit"), ("_stop", "stop_all")])
def test_the_exit_path_holds_no_import_statement(module: str, function: str) -> None:
    """_member._at_exit: "It imports nothing" (tests/test_real_programs.py also
    records every module loaded while it runs)."""
    body = _function(module, function)
    assert not [n for n in ast.walk(body) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_cpython_internals_are_used_in_cpython_only() -> None:
    """Private attributes of the standard library are read in _cpython only."""
    private = {"_sigint_wait_secs", "_interrupt_count", "_threads_wakeups", "_current_exceptions", "executor_reference"}
    offenders = {
        name: sorted({n.attr for n in _walk(tree) if isinstance(n, ast.Attribute) and n.attr in private})
        for name, tree in MODULES.items()
        if name != "_cpython"
    }
    assert {name: attrs for name, attrs in offenders.items() if attrs} == {}


def _names_for_type_checkers(tree: ast.AST) -> set[str]:
    """Names bound in ``if TYPE_CHECKING:`` blocks (imports, classes, type variables)."""
    names: set[str] = set()
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and _is_type_checking(block):
            for node in (n for stmt in block.body for n in ast.walk(stmt)):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ClassDef):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _run_time_uses(node: ast.AST, names: set[str], bound: frozenset[str] = frozenset()) -> Iterator[ast.Name]:
    """Loads of ``names`` below ``node`` that run (not annotations, which ``from
    __future__ import annotations`` leaves unevaluated), unless a function binds them itself."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            continue
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            own = {a.arg for a in [*child.args.posonlyargs, *child.args.args, *child.args.kwonlyargs]}
            imports = [i for i in ast.walk(child) if isinstance(i, (ast.Import, ast.ImportFrom))]
            own |= {alias.asname or alias.name.split(".")[0] for i in imports for alias in i.names}
            for evaluated in [*child.decorator_list, *child.args.defaults]:
                yield from _run_time_uses(ast.Expr(evaluated), names, bound)
            yield from _run_time_uses(ast.Module(child.body, []), names, bound | own)
        elif isinstance(child, ast.AnnAssign):
            if child.value is not None:
                yield from _run_time_uses(ast.Expr(child.value), names, bound)
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id in names - bound:
            yield child
        else:
            yield from _run_time_uses(child, names, bound)


def test_what_is_imported_for_type_checkers_is_used_in_annotations_only() -> None:
    """``TYPE_CHECKING = False`` (see the package's ``__init__``): what such a
    block imports does not exist when the code runs, and no linter says so."""
    offenders = {
        f"{name}:{use.lineno} {use.id}"
        for name, tree in MODULES.items()
        for use in _run_time_uses(tree, _names_for_type_checkers(tree))
    }
    assert offenders == set()


#: Modules that may load typing and dataclasses when they run: the asyncio
#: and test helpers.
TYPING_MAY_BE_IMPORTED_IN = {"aio", "testing", "pytest_plugin"}


def test_typing_and_dataclasses_are_imported_for_type_checkers_only() -> None:
    """_values.py: "Not dataclasses"; the package's ``__init__``: typing costs
    every command line a few milliseconds (tests/test_cli.py checks what each
    command line loads, this check says which line of which module brought it)."""
    offenders = {
        name: sorted(imported_modules(tree) & {"typing", "dataclasses"})
        for name, tree in MODULES.items()
        if name not in TYPING_MAY_BE_IMPORTED_IN
    }
    assert {name: found for name, found in offenders.items() if found} == {}


ARCHITECTURE = Path(__file__).parent.parent / "docs" / "architecture.md"


def _documented_layers() -> dict[str, int]:
    """Module -> its layer, from the table of docs/architecture.md."""
    import re

    text = ARCHITECTURE.read_text()
    table = text[text.index("<!-- layers:") : text.index("<!-- end of layers -->")]
    layers: dict[str, int] = {}
    for row in table.splitlines():
        found = re.match(r"\| (\d+)\. [^|]+\| ([^|]+)\|", row)
        if found:
            for module in re.findall(r"`([\w.]+)`", found.group(2)):
                assert module not in layers, f"{module} is in two layers of docs/architecture.md"
                layers[module] = int(found.group(1))
    return layers


def _layer_of(module: str, layers: dict[str, int]) -> int:
    """A module's layer; a subpackage's modules are in their package's."""
    top = module.split(".")[0]
    return layers[module] if module in layers else layers[top]


def test_the_layers_of_docs_architecture_are_the_imports() -> None:
    """docs/architecture.md: "Each module imports only from its own layer or
    the layers below it".  Every module is in the table once, and no import
    (at import time or inside a function) goes up a layer: a function put
    in the wrong module, that needs what a layer above it has, fails here."""
    layers = _documented_layers()
    missing = sorted(m for m in MODULES if m not in layers and m.split(".")[0] not in layers)
    assert missing == [], f"modules missing from docs/architecture.md: {missing}"
    gone = sorted(m for m in layers if m not in MODULES)
    assert gone == [], f"docs/architecture.md names modules that do not exist: {gone}"
    upwards = sorted(
        f"{importer} (layer {_layer_of(importer, layers)}) imports {imported} (layer {_layer_of(imported, layers)})"
        for importer, imports in package_imports().items()
        for imported in imports
        if _layer_of(imported, layers) < _layer_of(importer, layers)
    )
    assert upwards == []


def test_every_lazy_public_name_is_in_all() -> None:
    """The package's ``_LAZY`` (where each public name is loaded from) and
    ``__all__`` (what type checkers and ``import *`` see) name the same
    things: ``__all__`` stays a literal list, which type checkers need."""
    import shutdownbus

    lazy = {name for name, module in shutdownbus._LAZY.items() if module}  # "": a submodule, not a name
    eager = {name for name in shutdownbus.__all__ if name in vars(shutdownbus)}
    assert set(shutdownbus.__all__) == lazy | eager
