"""Sweeps on a Dask cluster: a sweep's workers run as tasks on an existing `dask.distributed` cluster.

Each task is a remote worker (`run_remote_worker`): it needs only the tracking server's address and a token
scoped to the sweep, both passed as the task's arguments, so the cluster's machines hold neither the
database's credentials nor a shared folder. The server owns the study, so everything a local worker does
holds here too: exactly N trials, a cancel after the current trial (the server refuses the next claim), a
cancel "at once" through the heartbeat (the task's thread is interrupted, its run ends `killed`), and the
trial of a worker process that died is ended `killed` by the server while Dask runs the task again elsewhere.

Dask is imported inside the functions: `import tracking` stays light, and only a launch needs it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tracking._errors import ValidationError
from tracking._settings import setting
from tracking.governance import Action, UserRecord, create_sweep_token, require
from tracking.store import bump_change_counter
from tracking.sweeps._sweeps import get_sweep, launch_workers, remember_workers_at

EXECUTORS = ("local", "dask")
CONNECT_SECONDS = 10.0  # how long a launch waits for the scheduler to answer
# How long a launch watches its tasks for a refusal: a scheduler that cannot unpickle them (it lacks this package)
# fails them within a second, and otherwise only says so in its own log.
ACCEPT_SECONDS = 3.0
_REFUSED = "Error during deserialization of the task graph"  # distributed's RuntimeError for a graph it cannot load


@dataclass
class DaskLaunch:
    """The tasks a launch submitted: their keys and, while the launcher watches them, its client and futures."""

    keys: list[str]
    client: Any = None
    futures: list[Any] = field(default_factory=list)

    def ended(self) -> bool:
        """Whether every task has ended (finished or failed); False when not watched."""
        return bool(self.futures) and all(f.done() for f in self.futures)

    def failures(self) -> list[str]:
        """One line per task that failed (the error it raised), once it has ended."""
        return [f"{f.key}: {f.exception()!r}" for f in self.futures if f.status == "error"]

    def close(self) -> None:
        """Stop watching; the tasks go on (fire and forget)."""
        if self.client is not None:
            self.client.close()
            self.client, self.futures = None, []


def launch_dask_workers(
    store: Any,
    sweep_id: int,
    count: int,
    scheduler: str | None = None,
    server_url: str | None = None,
    actor: UserRecord | None = None,
    connect_seconds: float = CONNECT_SECONDS,
    watch: bool = False,
    accept_seconds: float = ACCEPT_SECONDS,
) -> DaskLaunch:
    """Start `count` workers of a sweep as tasks on the Dask cluster whose scheduler is at `scheduler`
    (default `TRACKING_DASK_SCHEDULER`); they log through the tracking server at `server_url` (default
    `TRACKING_SERVER_URL`) with a token scoped to the sweep. The tasks outlive this call (fire and forget).
    With `watch` the launch keeps its client so that the caller can see the tasks end or fail (`close()` it).

    Raises:
        NotFoundError, PermissionDenied (the actor may not launch sweeps),
        ValidationError: no or a bad server URL, no scheduler address, a scheduler that does not answer or that
            refused the tasks (the sweep stays pending and can be resumed).
    """
    require(store, actor, Action.sweep_launch)
    if count < 1:
        raise ValidationError("The number of workers must be at least 1.")
    address, url = check_dask_target(scheduler, server_url)
    get_sweep(store, sweep_id)
    client = _connect(address, connect_seconds)
    try:
        import distributed

        token = create_sweep_token(store, actor, sweep_id)
        keys = [f"tracking-sweep-{sweep_id}-{uuid.uuid4().hex[:8]}-worker-{k}" for k in range(count)]
        futures = [client.submit(dask_worker_task, url, token, sweep_id, key=key, pure=False) for key in keys]
        distributed.fire_and_forget(futures)  # the scheduler runs them after this client has gone
        _check_accepted(futures, address, accept_seconds)
        with store.connect(write=True) as conn:
            remember_workers_at(conn, sweep_id, {"executor": "dask", "scheduler": address, "server_url": url})
            bump_change_counter(conn)
    except BaseException:
        client.close()
        raise
    if watch:
        return DaskLaunch(keys, client, futures)
    client.close()
    return DaskLaunch(keys)


def _check_accepted(futures: list[Any], address: str, seconds: float) -> None:
    """Raise one sentence when the scheduler fails the tasks at once (it could not unpickle them)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not any(f.done() for f in futures):
        time.sleep(0.1)  # the futures' states arrive on the client's own thread
    # A task that ran and failed (a wrong server URL) is the watcher's to report; only the scheduler's refusal of
    # the graph is raised here, in Dask's own words.
    refused = [f for f in futures if f.status == "error" and str(f.exception()).startswith(_REFUSED)]
    if refused:
        raise ValidationError(
            f"The Dask scheduler at {address!r} could not unpickle the sweep's worker tasks: the scheduler and its "
            "workers need this package installed, in the same version as here; the sweep waits and can be resumed."
        )


def check_dask_target(scheduler: str | None = None, server_url: str | None = None) -> tuple[str, str]:
    """The scheduler address and the tracking server URL a Dask launch uses (the arguments, else
    `TRACKING_DASK_SCHEDULER` and `TRACKING_SERVER_URL`), checked without connecting.

    Raises:
        ValidationError: either is missing, or the URL is not http(s).
    """
    url = (server_url or setting("TRACKING_SERVER_URL") or "").strip()
    if not url:
        raise ValidationError(
            "Workers on a Dask cluster log through a tracking server: give its address (--server, or set "
            "TRACKING_SERVER_URL), e.g. http://tracking.internal:8765."
        )
    if not url.startswith(("http://", "https://")):
        raise ValidationError(f"The tracking server URL must start with http:// or https://, not {url!r}.")
    address = (scheduler or setting("TRACKING_DASK_SCHEDULER") or "").strip()
    if not address:
        raise ValidationError(
            "Give the Dask scheduler's address (--scheduler, or set TRACKING_DASK_SCHEDULER), e.g. "
            "tcp://dask.internal:8786."
        )
    return address, url


def _connect(address: str, timeout: float) -> Any:
    """A client of the scheduler at `address`, or one sentence saying it could not be reached."""
    try:
        import distributed
    except ImportError:
        raise ValidationError(
            "Running workers on a Dask cluster needs the `distributed` package: pip install 'dask[distributed]'."
        ) from None
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        raise ValidationError(
            f"Could not reach the Dask scheduler at {address!r} within {timeout:g} s ({type(err).__name__}); "
            "check the address and that the scheduler is running."
        ) from None


def start_workers(
    store: Any,
    sweep_id: int,
    count: int,
    actor: UserRecord | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    server_url: str | None = None,
) -> list[Any]:
    """Start a sweep's workers where the launch asks: `local` processes on this machine (the default), or
    tasks on a `dask` cluster. Returns the local processes started (none for Dask).

    Raises:
        as `launch_workers` and `launch_dask_workers`; ValidationError for an unknown executor.
    """
    if executor == "local":
        return launch_workers(store, sweep_id, count, actor=actor)
    if executor == "dask":
        launch_dask_workers(store, sweep_id, count, scheduler, server_url, actor=actor)
        return []
    raise ValidationError(f"Run workers as {' or '.join(EXECUTORS)}, not {executor!r}.")


# --- the task, on a Dask worker ---


def dask_worker_task(server_url: str, token: str | None, sweep_id: int, max_trials: int | None = None) -> int:
    """One sweep worker, run as a Dask task: the remote worker loop with only the server's address and the
    token, in a temporary empty home folder (removed afterwards). Returns how many trials it ran."""
    from tracking.remote import ServerClient
    from tracking.sweeps._remote import run_remote_worker

    thread = threading.get_ident()

    def interrupt() -> None:  # a cancel "at once": this task's thread, not the Dask worker's main thread
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(KeyboardInterrupt))

    with _empty_home():
        client = ServerClient(server_url, token)
        try:
            return run_remote_worker(client, sweep_id, max_trials, on_stop_now=interrupt)
        except KeyboardInterrupt:  # an interrupt that landed after the worker had ended its trial
            return 0
        finally:
            client.close()  # the Dask worker process lives on: no connection left behind per task


@contextlib.contextmanager
def _empty_home() -> Iterator[str]:
    """`TRACKING_HOME` is an empty temporary folder while the task runs: nothing of the Dask worker's own
    home (a store, artifacts) is read or written."""
    home = tempfile.mkdtemp(prefix="tracking-dask-")
    saved = {k: v for k, v in os.environ.items() if k == "TRACKING_HOME"}  # put back as it was, not read
    os.environ.update(TRACKING_HOME=home)
    try:
        yield home
    finally:
        os.environ.pop("TRACKING_HOME", None)
        os.environ.update(saved)
        shutil.rmtree(home, ignore_errors=True)
