"""The package's shape: the layer contract, the dashboard's use of public names only, a library that runs
without Streamlit and imports light, and a wheel that carries everything `pip install .` promises."""

from __future__ import annotations

import ast
import configparser
import importlib
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

HEAVY = ("streamlit", "pandas", "sklearn", "optuna", "plotly", "altair", "fastapi", "dask", "distributed")


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_lint_imports_keeps_every_contract():
    out = _python(
        "from importlinter.cli import lint_imports_command; lint_imports_command()", "--no-cache", "--no-logo"
    )
    assert out.returncode == 0, f"lint-imports found broken contracts:\n{out.stdout}{out.stderr}"


def _private_tracking_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tracking" and any(part.startswith("_") for part in parts[1:]):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return found


DASHBOARD = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]


def test_dashboard_imports_only_public_tracking_names():
    found = [hit for path in DASHBOARD for hit in _private_tracking_imports(path)]
    assert not found, "the dashboard reaches into private modules of tracking:\n" + "\n".join(found)


def test_dashboard_imports_only_names_tracking_has():
    missing = []
    for path in DASHBOARD:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tracking":
                module = importlib.import_module(node.module)
                missing += [f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)]  # fmt: skip
    assert not missing, "the dashboard imports names tracking does not have:\n" + "\n".join(missing)


def test_pages_have_no_expression_statement_streamlit_magic_would_draw():
    """A statement that is an expression but not a call (`a() if x else b()`, a bare name) is drawn by Streamlit's
    magic: a version page's unwritten model card once showed the help of the DeltaGenerator it returned."""
    drawn = []
    for path in DASHBOARD:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call | ast.Constant | ast.Await):
                drawn.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)[:80]}")
    assert not drawn, "expressions Streamlit would draw:\n" + "\n".join(drawn)


# In a fresh interpreter where `streamlit` cannot be imported (a finder first on the meta path refuses it and
# its submodules), import every module pkgutil finds under tracking/, run the CLI's `--help` as
# `python -m tracking` does, and migrate a new store (Alembic runs env.py and every migration file).
_WITHOUT_STREAMLIT = """
import contextlib, importlib, importlib.abc, io, json, pkgutil, runpy, sys, tempfile, traceback

class NoStreamlit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "streamlit":
            raise ImportError(f"{name} is blocked: tracking must run without Streamlit")
        return None

sys.meta_path.insert(0, NoStreamlit())
failed, imported = {}, []

def record(name):
    failed[name] = traceback.format_exc(limit=-4)

import tracking
imported.append("tracking")
for module in pkgutil.walk_packages(tracking.__path__, "tracking.", onerror=record):
    try:
        if module.name == "tracking.__main__":  # runs the CLI when imported: run it as `python -m tracking --help`
            sys.argv = ["tracking", "--help"]
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
                runpy.run_module(module.name, run_name="__main__")
        else:
            importlib.import_module(module.name)
        imported.append(module.name)
    except BaseException:
        record(module.name)
try:
    from tracking.store import open_store
    with tempfile.TemporaryDirectory() as home:
        open_store(f"sqlite:///{home}/tracking.db", home=home).dispose()
    imported.append("migrations")
except BaseException:
    record("migrations")
print(json.dumps({"imported": imported, "failed": failed, "streamlit loaded": "streamlit" in sys.modules}))
"""


def _tracking_modules() -> set[str]:
    """Every module under tracking/ by its file (the migrations, run by Alembic from their folder, as one)."""
    names = {"migrations"}
    for path in (ROOT / "tracking").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" not in parts:
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_tracking_modules_import_without_streamlit():
    out = _python(_WITHOUT_STREAMLIT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    failed = result["failed"]
    assert not failed, "modules of tracking that need Streamlit:\n" + "\n".join(f"{k}:\n{v}" for k, v in failed.items())
    assert set(result["imported"]) == _tracking_modules()  # every module was tried: none was left out of the walk
    assert {"tracking.serving", "tracking.cli", "tracking.cli._ui", "tracking.store._db"} <= set(result["imported"])
    assert not result["streamlit loaded"]


def test_tracking_import_loads_no_heavy_package():
    out = _python(f"import json, sys, tracking; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [], "`import tracking` loads these; import them inside the functions that use them"


def _requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_pyproject_dependencies_are_the_pinned_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = dict(dependency.lower().split(">=") for dependency in project["dependencies"])
    assert bounds == _requirement_pins(ROOT / "requirements.txt")


def _copy_checkout(target: Path) -> Path:
    """The project's files as a fresh clone has them (no build/, no virtualenv, no caches)."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "tracking-home")  # fmt: skip
    return Path(shutil.copytree(ROOT, target / "src", ignore=ignore))


@pytest.mark.slow
def test_wheel_carries_migrations_data_dashboard_and_the_command(tmp_path):
    source = _copy_checkout(tmp_path)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "--disable-pip-version-check", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (tmp_path / "dist").glob("tracking-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = configparser.ConfigParser()
        entry_points.read_string(
            archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        )
    expected = {
        "tracking/store/migrations/env.py",
        "tracking/store/migrations/script.py.mako",
        *(f"tracking/store/migrations/versions/{p.name}" for p in (ROOT / "tracking/store/migrations/versions").glob("*.py")),
        *(f"tracking/{p.relative_to(ROOT / 'tracking')}" for p in (ROOT / "tracking/data").glob("*.csv")),
        *(f"tracking/_dashboard/{p.relative_to(ROOT)}" for p in [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]),
        "tracking/_dashboard/.streamlit/config.toml",
        "tracking/_dashboard/ui/static/icon.png",  # the favicon, served by the dashboard itself
    }  # fmt: skip
    assert expected - names == set()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert {name.split("/")[0] for name in names} == {"tracking", f"tracking-{version}.dist-info"}  # no top-level ui/
    assert dict(entry_points["console_scripts"]) == {"tracking": "tracking.cli:main"}
