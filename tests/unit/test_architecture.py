"""The house rules that keep the layers apart, checked two ways: statically by import-linter
(every contract in pyproject.toml) and at run time by importing every module a layer has, found
on disk rather than listed by hand, so a new module is checked the day it is added."""
from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]

# What each layer must never load, even indirectly or through importlib with a string.
FORBIDDEN_AT_RUN_TIME = {
    "engine": {"scenarios", "results", "gpubench", "tui", "textual", "asyncssh", "kubernetes"},
    "results": {"scenarios", "gpubench", "tui", "textual", "asyncssh", "kubernetes"},
    "scenarios": {"gpubench", "tui", "textual"},
}


def modules_of(package: str) -> list[str]:
    """Every importable module of a top-level package, found on disk (entry points excluded:
    importing a __main__ runs it)."""
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        if not info.name.endswith("__main__"):
            found.append(info.name)
    return sorted(found)


def test_every_import_linter_contract_is_kept():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    count = len(contracts["contracts"])
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Contracts: {count} kept, 0 broken." in proc.stdout


@pytest.mark.parametrize("package", sorted(FORBIDDEN_AT_RUN_TIME))
def test_importing_every_module_of_a_layer_loads_nothing_forbidden(package):
    names = modules_of(package)
    assert len(names) > 3, names                # the walk found the package's modules
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout)
    assert set(names) <= set(loaded)
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_AT_RUN_TIME[package])
    assert bad == []


def test_the_app_imports_at_most_the_engines_version():
    """The views never depend on the engine: its events, arguments and version reach them
    through gpubench, scenarios and results (the import-linter contract says the same; this
    also catches an import import-linter would not see, such as one under TYPE_CHECKING)."""
    found = []
    for path in sorted((ROOT / "tui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(path.name, a.name) for a in node.names
                          if a.name.split(".")[0] == "engine"]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] == "engine":
                found += [(path.name, f"{node.module}.{a.name}") for a in node.names]
    assert {name for _, name in found} <= {"engine.__version__"}, found


# Calls that load code by module name or by file path rather than by an import statement.
LOADERS = {"spec_from_file_location", "import_module", "run_path", "run_module",
           "SourceFileLoader", "load_source", "__import__"}


def benchmark_imports(tree: ast.AST) -> list[int]:
    """Lines of `tree` that import benchmarks/: an import statement, or a loader call
    (importlib, runpy) with "benchmarks" anywhere in its arguments (a name or a path)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(a.name.split(".")[0] == "benchmarks" for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] == "benchmarks":
                lines.append(node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in LOADERS and any(
                    isinstance(c, ast.Constant) and isinstance(c.value, str) and "benchmarks" in c.value
                    for arg in [*node.args, *(k.value for k in node.keywords)]
                    for c in ast.walk(arg)):
                lines.append(node.lineno)
    return lines


def test_benchmark_import_scan_sees_every_way_in():
    caught = ("import benchmarks.tui_load\n"
              "from benchmarks import fleet_scale\n"
              "spec = importlib.util.spec_from_file_location('b', ROOT / 'benchmarks' / 'x.py')\n"
              "runpy.run_path(str(ROOT / 'benchmarks/x.py'))\n"
              "importlib.import_module('benchmarks.store_scale')\n")
    allowed = ("subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'x.py')])\n"
               "from .benchmarks import helper\n")
    assert benchmark_imports(ast.parse(caught)) == [1, 2, 3, 4, 5]
    assert benchmark_imports(ast.parse(allowed)) == []


def test_nothing_under_tests_imports_benchmarks():
    files = sorted((ROOT / "tests").rglob("*.py"))
    assert len(files) > 20, files               # the walk found the test files
    found = [f"{path.relative_to(ROOT)}:{line}" for path in files
             for line in benchmark_imports(ast.parse(path.read_text(), str(path)))]
    assert found == [], "tests import benchmarks/ (running them as a subprocess is fine): " \
                        + ", ".join(found)


def test_the_command_line_starts_without_heavy_dependencies():
    """`gpubench --version`, `list`, `show` start in a fraction of a second because the modules
    every start imports (the CLI registers all its commands) load no NumPy, SSH, Kubernetes,
    rich or Textual: those come in with the command that uses them."""
    code = ("import json, sys\nimport gpubench.cli\n"
            "print(json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    heavy = {"numpy", "asyncssh", "kubernetes", "urllib3", "rich", "textual", "cupy"}
    # the work of the commands that need it, loaded when one of them runs
    work = {"gpubench.runner", "gpubench.fleet", "gpubench.selftest.experiment",
            "gpubench.checks.suite", "scenarios.local", "scenarios.ssh.launcher"}
    loaded = json.loads(proc.stdout)
    assert "gpubench.cli.entry" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in heavy or m in work) == []
