"""The README documents every command, option, setting, task and model family."""

from __future__ import annotations

import argparse
import re

import pytest

from tests.conftest import ROOT
from tracking._settings import SETTINGS, settings_markdown
from tracking.cli import COMMANDS, build_parser
from tracking.ml._families import FAMILIES
from tracking.runs._datasets import BUILTIN_TASKS
from tracking.sweeps._samplers import PRUNERS, SAMPLERS

README = (ROOT / "README.md").read_text()


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, str]]:
    """(command path, option) for a parser and every subcommand below it (`registry approve --override`)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += [(f"{path} {name}", ""), *_options(child, f"{path} {name}")]
        found += [(path, o) for o in action.option_strings if o.startswith("--") and o != "--help"]
    return found


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_docs_readme_names_every_command_and_its_options(command):
    assert f"`{command}" in README
    for path, option in _options(_subparsers()[command], command):
        if option:
            assert option in README, f"{path} {option} is not in the README"
        else:
            assert f"`{path}" in README, f"the command `{path}` is not in the README"


def test_docs_readme_configuration_table_is_the_declared_settings():
    assert settings_markdown() in README


def test_docs_every_setting_the_code_names_is_declared_and_read_through_settings():
    code = {p: p.read_text() for p in (ROOT / "tracking").rglob("*.py")}
    named = set(re.findall(r"TRACKING_[A-Z0-9_]+", "".join(code.values())))
    assert named >= {"TRACKING_HOME", "TRACKING_STORE_URL"}
    assert named <= {s.name for s in SETTINGS}
    reads = re.compile(r"(environ\.get\(|getenv\(|environ\[)\s*[\"']TRACKING_")
    readers = [p.name for p, text in code.items() if reads.search(text)]
    assert readers == []  # every read goes through `tracking._settings.setting(name)`, which checks the name


def test_docs_readme_names_every_task_family_sampler_and_pruner():
    for name in [*BUILTIN_TASKS, *FAMILIES, *SAMPLERS, *PRUNERS]:
        assert f"`{name}`" in README, name


def test_docs_readme_has_the_two_quickstart_commands_and_ci_runs_the_test_one():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", quickstart)
    assert len(commands) == 2
    assert "streamlit run app.py" in commands[0]
    assert commands[1].endswith("python -m pytest")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
