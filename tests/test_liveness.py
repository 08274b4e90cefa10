"""Which workers of a sweep count as alive: the heartbeat for other machines, the process for this one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

import tracking
from tracking.runs import live_workers
from tracking.store import Worker, utcnow
from tracking.sweeps import SweepSpec


@pytest.mark.file_backends
def test_live_workers_count_a_starting_local_worker_and_fresh_remote_ones(store):
    sweep = tracking.create_sweep(store, SweepSpec(objective="tests.objectives:quadratic", metrics=["value:min"],
                                  space={"x": {"type": "float", "low": -1, "high": 1}}, n_trials=1))  # fmt: skip
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here, silent = socket.gethostname(), utcnow() - timedelta(seconds=30)  # ten heartbeats missed (1 s in tests)
    rows = [
        Worker(sweep_id=sweep.id, host=here, pid=os.getpid(), last_seen=silent),  # still importing: alive
        Worker(sweep_id=sweep.id, host=here, pid=gone.pid, last_seen=utcnow()),  # its process is gone: dead
        Worker(sweep_id=sweep.id, host="elsewhere", pid=1, last_seen=silent),  # another machine, silent: dead
        Worker(sweep_id=sweep.id, host="elsewhere", pid=1, last_seen=utcnow()),  # another machine, beating: alive
        Worker(sweep_id=sweep.id, host=here, pid=os.getpid(), last_seen=utcnow() - timedelta(hours=1)),  # too long
    ]
    with store.session_scope(write=True) as session:
        session.add_all(rows)
    with store.connect() as conn:
        assert live_workers(conn, [sweep.id]) == {sweep.id: 2}
