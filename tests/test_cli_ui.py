"""`tracking ui`: the `streamlit run` command it builds, its user mistakes, and a real start from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e import free_port
from tracking.cli import build_parser, main
from tracking.cli._ui import dashboard_command


def _command(*args: str) -> tuple[list[str], dict[str, str]]:
    return dashboard_command(build_parser().parse_args(["ui", *args]))


def test_ui_command_runs_the_checkouts_app_with_every_setting_of_its_config():
    argv, _ = _command()
    assert argv[:6] == [sys.executable, "-P", "-m", "streamlit", "run", str(ROOT / "app.py")]
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    for section, settings in config.items():
        for key, value in settings.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            assert f"--{section}.{key}={text}" in argv
    assert "--server.headless=true" in argv


def test_ui_command_passes_port_address_and_the_args_after_the_double_dash_last():
    argv, _ = _command("--port", "8599", "--address", "127.0.0.1", "--", "--theme.base", "dark")
    assert {"--server.port=8599", "--server.address=127.0.0.1"} <= set(argv)
    assert argv[-2:] == ["--theme.base", "dark"]  # after the config's settings: Streamlit keeps the last


def test_ui_command_gives_the_store_to_the_dashboard_through_its_environment():
    _, env = _command("--store", "sqlite:////tmp/elsewhere.db")
    assert env["TRACKING_STORE_URL"] == "sqlite:////tmp/elsewhere.db"
    _, env = _command()
    assert "TRACKING_STORE_URL" not in env


@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "http"], ["--headless"]])
def test_ui_rejects_a_bad_option_with_one_line(args, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["ui", *args])
    assert raised.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _health(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


@pytest.mark.slow
def test_ui_serves_the_dashboard_from_another_folder(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "tracking", "ui", "--port", str(port), "--address", "127.0.0.1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _health(f"http://127.0.0.1:{port}/_stcore/health") != "ok":
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the dashboard did not answer within 60 s"
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
    finally:
        server.terminate()  # the process is Streamlit itself (exec), so this stops the server
        server.wait(timeout=30)
