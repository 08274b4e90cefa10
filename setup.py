"""Build hook: the wheel carries the dashboard (app.py, pages/, ui/, .streamlit/) under tracking/_dashboard/.

Everything else is declared in pyproject.toml. The dashboard's files stay at the repository root, where
`streamlit run app.py` starts them in a checkout; `tracking ui` needs them after a plain `pip install .`
too. They are copied as data, not listed as packages, so an install adds no top-level `ui`, `pages` or
`app` modules to site-packages (Streamlit puts app.py's own folder on sys.path, so `import ui` inside
the dashboard still finds the copy beside it). Do not run this file by hand: `pip install .` or
`pip wheel .` call it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# also listed in MANIFEST.in
DASHBOARD_FILES = ("app.py", "pages/*.py", "ui/*.py", "ui/static/*", ".streamlit/config.toml")
DASHBOARD_DIR = Path("tracking", "_dashboard")


class BuildWithDashboard(build_py):
    """build_py, plus a copy of the dashboard's files into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install runs the checkout, where `tracking ui` finds the root's files
            return
        target = Path(self.build_lib) / DASHBOARD_DIR
        shutil.rmtree(target, ignore_errors=True)  # build/ is reused between builds: no page deleted since survives
        for pattern in DASHBOARD_FILES:
            sources = sorted(ROOT.glob(pattern))
            if not sources:
                raise FileNotFoundError(f"the dashboard's {pattern} is missing from {ROOT}")
            for source in sources:
                destination = target / source.relative_to(ROOT)
                self.mkpath(str(destination.parent))
                self.copy_file(str(source), str(destination))


setup(cmdclass={"build_py": BuildWithDashboard})
