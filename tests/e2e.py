"""Helpers for browser tests: a real `streamlit run app.py` server and Debian's Chromium via Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.polling import wait_until

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# ms: the longest a page waits for one thing (an element, a rerun). A bound against hangs, not a pause: on a
# machine whose cores are shared many times over, a rerun that scores models took over a minute.
SLOW = 120_000
# One element per chart shown and drawn: a Plotly chart, a Vega-Lite (Altair) chart once its marks are drawn.
CHARTS = '.js-plotly-plot:visible, [data-testid="stVegaLiteChart"]:has(svg.marks):visible'
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(proc: subprocess.Popen, url: str, name: str, timeout: float, every: float) -> None:
    """Wait until `url` answers, failing at once with the end of `proc`'s output if the process `name` exits."""

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} did not start: {proc.stdout.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return True
        except OSError:
            return False

    wait_until(answers, timeout=timeout, what=f"{name} to answer {url}", every=every)


@contextmanager
def streamlit_server(
    env: dict[str, str] | None = None, args: Sequence[str] = (), port: int | None = None
) -> Iterator[str]:
    """Start the dashboard the way users do (plus `args`, e.g. `--secrets.files`) and yield its base URL; stop it
    afterwards."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *args],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{url}/_stcore/health", "streamlit", timeout=SLOW / 1000, every=0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium browser (Debian's package, driven by Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_app(owner: object, url: str, **options: object) -> object:
    """A new page of `owner` (a browser or a context) at `url`, the app's frame drawn, its script runs followed.

    Open every page of the dashboard with this: `rerun` learns of a finished script run from the messages the
    server sends over the page's websocket, which a page opened otherwise does not keep track of."""
    page = owner.new_page(**options)
    page.set_default_timeout(SLOW)  # a click or fill waits this long for its element
    page.on("websocket", lambda socket: _SOCKETS.__setitem__(page, socket))  # a reload opens a new one
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]', timeout=SLOW)
    return page


_SOCKETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # page -> the app's current websocket


def _run_finished(payload: bytes | str) -> bool:
    """Whether a websocket frame from the server says a whole script run finished (not a fragment, not cut short)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    if isinstance(payload, str):
        return False
    message = ForwardMsg.FromString(payload)
    return (
        message.WhichOneof("type") == "script_finished"
        and message.script_finished == ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
    )


def rerun(page: object, change: Callable[[], object], timeout: float = SLOW) -> None:
    """Make `change` (a widget value committed: Enter, Tab) on an idle app, and wait until the rerun it causes has
    finished on the server and the page has drawn its output.

    The server's own "script finished" message is the signal: the page's `data-test-script-state` attribute can
    skip `running` altogether when a busy browser handles a whole run's messages before it next renders (a
    wait for that transition then never ends)."""
    socket = _SOCKETS.get(page)
    if socket is None:
        raise AssertionError("rerun() follows the app's websocket: open the page with open_app()")
    with socket.expect_event("framereceived", predicate=_run_finished, timeout=timeout):
        change()
    idle(page, timeout)


def idle(page: object, timeout: float = SLOW) -> None:
    """Wait until the app's script is not running and a frame was painted since (after output of the current run
    was seen)."""
    finished = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    finished.wait_for(state="attached", timeout=timeout)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def controls_ready(page: object, *controls: object, timeout: float = SLOW) -> None:
    """Wait until these controls (one of each kind on the page) are drawn, the app idle and a frame painted.

    Streamlit loads some controls' code on first use and registers a control's value in the browser only
    once it is drawn; a change sent before that leaves the other controls' values out, and the page's rerun
    resets them (a sort order seeded from the address comes back as the default)."""
    for control in controls:
        control.wait_for(timeout=timeout)
    idle(page, timeout)


def sign_in(page: object, name: str, password: str) -> None:
    """Sign in through the dashboard's form (every new browser session starts signed out), and wait till drawn."""
    page.get_by_role("button", name="Sign in").wait_for(timeout=SLOW)
    page.get_by_label("Account name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=SLOW)
    # The page signed in to has finished its run: a click on another page before that can race with the
    # end of this run, which then drops the new page's widget values (its first rerun resets them).
    idle(page)


@contextmanager
def tracking_server(store: Any) -> Iterator[str]:
    """A real tracking server (uvicorn) on a free port, in a thread of this process; its URL."""
    from tracking.server import create_app

    with asgi_server(create_app(store)) as url:
        yield url


@contextmanager
def asgi_server(app: Any) -> Iterator[str]:
    """An ASGI app (the tracking server, the model server) in a real uvicorn server on a free port, in a thread
    of this process; its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
