"""The package's shape: no import circles, no upward imports, a light start before torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seglib"

# Layers, lowest first: a module may import its own layer and the layers below it only.
LAYERS = {
    "base": 0,  # top-level modules: errors, environ, store, runtime, models, losses, metrics
    "data": 1,
    "augment": 1,
    "engine": 2,
    "infer": 2,
    "report": 3,
    "robustness": 3,
    "figures": 4,
    "bench": 5,
    "cli": 6,
    "__main__": 7,
    "reference": 7,  # the generated reference pages: reads the cli and the public API
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The seglib modules ``path`` imports anywhere in it (lazy imports in functions too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "seglib"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            if base.split(".")[0] != "seglib":
                continue
            for a in node.names:  # "from seglib.x import y": y may be a module
                sub = f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
    return found - {name}


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] in LAYERS:
        return LAYERS[parts[1]]
    return 0  # a top-level module


def test_the_package_is_found():
    assert len(MODULES) >= 30 and "seglib.cli" in MODULES


def test_every_import_names_a_real_module():
    unknown = {(m, t) for m, ts in GRAPH.items() for t in ts if t not in MODULES}
    assert not unknown


def test_no_import_circles():
    """Every module-level and lazy import counted: the graph sorts topologically."""
    try:
        list(TopologicalSorter({m: ts - {"seglib"} for m, ts in GRAPH.items()}).static_order())
    except CycleError as e:
        pytest.fail(f"import circle: {' -> '.join(e.args[1])}")


def test_the_graph_check_sees_a_circle():
    """The check itself: a made-up circle a -> b -> a is reported."""
    with pytest.raises(CycleError):
        list(TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


def test_no_upward_imports():
    upward = sorted(
        f"{m} imports {t}"
        for m, ts in GRAPH.items()
        for t in ts
        if t != "seglib" and layer(t) > layer(m)
    )
    assert not upward


def test_a_dozen_modules_at_most_on_top_and_none_over_400_lines():
    top = [p for p in PACKAGE.glob("*.py")]
    assert len(top) <= 12, sorted(p.name for p in top)
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}  # fmt: skip
    assert not long


FUNCTION_LINES = 60


def test_no_function_over_60_lines():
    """Every function and method, its signature and docstring included, fits on a screen."""
    long = sorted(
        f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name} ({n} lines)"
        for p in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        if (n := node.end_lineno - node.lineno + 1) > FUNCTION_LINES
    )
    assert not long


FUNCTION_PARAMETERS = 8


def _parameters(args: ast.arguments) -> int:
    """Positional-only, ordinary and keyword-only parameters; ``*args`` and ``**kwargs`` one each."""
    named = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
    return named + (args.vararg is not None) + (args.kwarg is not None)


def test_no_function_over_8_parameters():
    """Options that travel together are one small frozen dataclass, not a long signature."""
    wide = sorted(
        f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name} ({n} parameters)"
        for p in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        if (n := _parameters(node.args)) > FUNCTION_PARAMETERS
    )
    assert not wide


def test_no_private_names_imported_across_modules():
    private = sorted(
        f"{p.relative_to(PACKAGE)}: {node.module}.{a.name}"
        for p in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seglib")
        for a in node.names
        if a.name.startswith("_")
    )
    assert not private


@pytest.mark.parametrize(
    "code",
    [
        "from seglib import cli; cli.parser().parse_args(['run', '--preset', 'smoke'])",
        "import seglib.engine.worker",
        "import seglib.environ",
    ],
)
def test_cli_and_worker_start_without_torch(code):
    """``python -m seglib --help`` and a grid worker must apply the OpenMP setting before torch
    starts: importing them (and parsing a command line) loads no torch."""
    probe = f"import sys; {code}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


SUBPACKAGES = ("augment", "data", "engine", "figures", "infer", "report", "robustness")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_names_its_public_api(name):
    """``__all__`` lists names that resolve, each function or class documented and defined in a
    module of that sub-package (or :mod:`seglib.errors`), none shadowed by a submodule of the
    same name; an unknown name is an AttributeError."""
    import importlib
    import inspect
    import pkgutil

    package = importlib.import_module(f"seglib.{name}")
    for sub in pkgutil.iter_modules(package.__path__):  # a submodule, once imported, shadows
        importlib.import_module(f"seglib.{name}.{sub.name}")
    assert package.__all__ and len(set(package.__all__)) == len(package.__all__)
    for attr in package.__all__:
        obj = getattr(package, attr)
        assert not inspect.ismodule(obj), f"seglib.{name}.{attr} is a module"
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue  # a constant
        assert inspect.getdoc(obj), f"seglib.{name}.{attr} has no docstring"
        home = getattr(obj, "__module__", "")
        assert home.startswith(f"seglib.{name}.") or home == "seglib.errors", (attr, home)
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_importing_a_subpackage_loads_no_torch():
    probe = "import sys, seglib.engine, seglib.infer, seglib.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
