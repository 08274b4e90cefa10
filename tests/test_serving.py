"""The model server: predictions like the model's own, one-sentence 422s for bad input, the access token,
the hot switch between production versions under load, the inference log, feedback, and the CLI commands.

Every server here is a real uvicorn server on a free port (a background thread) in front of real trained
models in a real store: a copy, per test, of one store built once for the module."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn

import tracking
from tests.governance import PASSWORD, good_and_bad, make_accounts
from tests.polling import wait_until
from tracking.cli._serving import COMMANDS, add_parsers
from tracking.governance._access import UserRecord, authenticate, list_users
from tracking.production._inference import InferenceEntry, get_inference, recent_inferences, serving_series, write_batch
from tracking.registry._models import VersionRecord, find_version, load_version_model, register_version
from tracking.registry._promotions import RequestRecord, approve_promotion, list_requests, request_promotion
from tracking.runs._artifacts import artifact_file
from tracking.runs._datasets import load_task
from tracking.serving import MAX_ROWS, _app, create_app
from tracking.store._db import Store, _stores, open_store
from tracking.store._tables import utcnow

ROWS = json.loads(load_task(task="loan_approval").X.head(5).to_json(orient="records"))
ROW = ROWS[0]
COLUMNS = {name: [row[name] for row in ROWS] for name in ROW}


@dataclass(frozen=True)
class World:
    store: Store
    users: dict[str, UserRecord]
    v1: VersionRecord  # in production (C=10)
    v2: VersionRecord  # registered, with a pending promotion request (C=0.0005)
    request: RequestRecord


@pytest.fixture(scope="module")
def serving_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store home built once: accounts, `loan` v1 in production, v2 with a pending request, `loan-lite` v1."""
    home = tmp_path_factory.mktemp("serving") / "home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRACKING_HOME", str(home))
        env.delenv("TRACKING_STORE_URL", raising=False)
        store = open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
        users = make_accounts(store)
        good, bad = good_and_bad(store, users["data_scientist"])
        v1 = register_version(store, good.id, "loan", actor=users["data_scientist"])
        first = request_promotion(store, v1.id, "first model", actor=users["data_scientist"])
        approve_promotion(store, first.id, "fits well", actor=users["product_owner"])
        v2 = register_version(store, bad.id, "loan", actor=users["engineer"])
        request_promotion(store, v2.id, "smaller", actor=users["engineer"])
        register_version(store, bad.id, "loan-lite", actor=users["engineer"])
        for key in [key for key, value in _stores.items() if value is store]:
            _stores.pop(key)
        store.dispose()
    return home


def _world(store: Store) -> World:
    users = {user.name: authenticate(store, user.name, PASSWORD) for user in list_users(store)}  # signed in
    pending = list_requests(store, status="pending")[0]
    return World(store, users, find_version(store, "loan", 1), find_version(store, "loan", 2), pending)


@pytest.fixture
def loans(serving_template: Path, tmp_path: Path) -> World:
    """This test's own copy of the serving template store (in its TRACKING_HOME): the World of loan models."""
    home = tmp_path / "home"
    shutil.copytree(serving_template, home, dirs_exist_ok=True)
    return _world(open_store(f"sqlite:///{home / 'tracking.db'}", home=home))


@contextmanager
def running(app: Any) -> Iterator[httpx.Client]:
    """The app in a real uvicorn server on a free port (a background thread), and a client of it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="the server to start")
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def shared(serving_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, httpx.Client]]:
    """One server for the tests that only read (its own copy of the serving template store, left out of `_stores`)."""
    home = tmp_path_factory.mktemp("serving-shared") / "home"
    shutil.copytree(serving_template, home)
    store = Store(f"sqlite:///{home / 'tracking.db'}", home / "artifacts")
    with running(create_app(store, "loan")) as client:
        yield store, client
    store.dispose()


def _one_sentence(detail: Any) -> bool:
    return isinstance(detail, str) and detail.endswith(".") and "\n" not in detail and "Traceback" not in detail


# --- predictions ---


def test_serving_predicts_rows_like_the_model_itself(shared):
    store, client = shared
    answer = client.post("/predict", json={"rows": ROWS}).json()
    model = load_version_model(store, find_version(store, "loan", 1))
    assert answer["model"] == "loan" and answer["version"] == 1 and answer["classes"] == [0, 1]
    assert answer["predictions"] == model.predict(pd.DataFrame(ROWS)).tolist()
    for row, expected in zip(answer["probabilities"], model.predict_proba(pd.DataFrame(ROWS)), strict=True):
        assert sum(row.values()) == pytest.approx(1.0)
        assert [row["0"], row["1"]] == pytest.approx(expected.tolist())


def test_serving_predicts_columns_like_rows(shared):
    _, client = shared
    by_rows = client.post("/predict", json={"rows": ROWS}).json()
    by_columns = client.post("/predict", json={"columns": COLUMNS}).json()
    assert by_columns["predictions"] == by_rows["predictions"]
    assert by_columns["probabilities"] == by_rows["probabilities"]
    assert by_columns["request_id"] != by_rows["request_id"]


def test_serving_accepts_null_for_the_pipeline_to_impute(shared):
    _, client = shared
    response = client.post("/predict", json={"rows": [{**ROW, "income": None, "purpose": None}]})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


_BAD = [
    ("empty body", b"", "The request body is empty"),
    ("malformed JSON", b'{"rows": [', "not valid JSON"),
    ("NaN", b'{"rows": [{"age": NaN}]}', "NaN is not a number"),
    ("not an object", [ROW], "The request body is a list"),
    ("empty object", {}, "The request body is {}"),
    ("unknown field", {"row": [ROW]}, 'unknown field "row"'),
    ("rows and columns", {"rows": [ROW], "columns": COLUMNS}, 'both "rows" and "columns"'),
    ("no rows", {"rows": []}, "no rows"),
    ("rows not a list", {"rows": ROW}, '"rows" is an object'),
    ("row not an object", {"rows": [ROW, [1, 2]]}, "rows[1] is a list"),
    ("missing column", {"rows": [ROW, {k: v for k, v in ROW.items() if k != "income"}]}, 'rows[1] lacks the column(s) "income"'),
    ("unknown column", {"rows": [{**ROW, "colour": "red"}]}, 'rows[0] has the unknown column "colour"'),
    ("target column", {"rows": [{**ROW, "approved": 1}]}, '"approved", the target'),
    ("text in a numeric column", {"rows": [ROW, {**ROW, "income": "lots"}]}, 'rows[1]["income"] is the text "lots"'),
    ("boolean in a numeric column", {"rows": [{**ROW, "age": True}]}, 'rows[0]["age"] is true'),
    ("number in a text column", {"rows": [{**ROW, "purpose": 3}]}, 'rows[0]["purpose"] is the number 3'),
    ("non-scalar", {"rows": [{**ROW, "purpose": {"a": 1}}]}, 'rows[0]["purpose"] is an object'),
    ("too large a number", json.dumps({"rows": [{**ROW, "age": 0}]}).replace('"age": 0', '"age": 1e400').encode(), "too large"),
    ("columns not lists", {"columns": {**COLUMNS, "age": 30}}, 'columns["age"] is the number 30'),
    ("columns of different lengths", {"columns": {**COLUMNS, "income": [1.0]}}, 'but columns["income"] has 1;'),
    ("wrong type in a column", {"columns": {**COLUMNS, "income": [1.0, 2.0, "x", 4.0, 5.0]}}, 'columns["income"][2]'),
    ("too many rows", {"rows": [ROW] * (MAX_ROWS + 1)}, "10,001 rows"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "fragment"), [case[1:] for case in _BAD], ids=[case[0] for case in _BAD])
def test_serving_refuses_bad_input_with_one_sentence(shared, body, fragment):
    _, client = shared
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert _one_sentence(detail) and fragment in detail, detail


def test_serving_refuses_a_missing_column_in_columns_form(shared):
    _, client = shared
    response = client.post("/predict", json={"columns": {k: v for k, v in COLUMNS.items() if k != "purpose"}})
    assert response.status_code == 422 and '"columns" lacks the column(s) "purpose"' in response.json()["detail"]


def test_serving_model_describes_the_version_schema_and_classes(shared):
    store, client = shared
    described = client.get("/model").json()
    v1 = find_version(store, "loan", 1)
    assert (described["name"], described["version"], described["sha256"]) == ("loan", 1, v1.artifact_sha256)
    assert described["dataset"]["name"] == "loan_approval" and len(described["dataset"]["sha256"]) == 64
    assert described["task_type"] == "classification" and described["classes"] == [0, 1]
    assert described["features"] == {"age": "int64", "income": "float64", "loan_amount": "float64",
                                     "credit_score": "int64", "years_employed": "float64",
                                     "existing_debt": "float64", "purpose": "str"}  # fmt: skip
    assert client.get("/health").json() | {"log_queued": 0} == {
        "status": "ok", "model": "loan", "version": 1, "version_id": v1.id, "log_queued": 0, "log_dropped": 0
    }  # fmt: skip


def test_serving_token_is_required_when_set(loans):
    with running(create_app(loans.store, "loan", token="t0ken-for-tests")) as client:
        assert client.get("/health").status_code == 200
        calls = [("POST", "/predict", {"rows": [ROW]}), ("GET", "/model", None),
                 ("POST", "/feedback", {"request_id": "x", "labels": [1]})]  # fmt: skip
        for method, path, body in calls:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "t0ken-for-tests"}):
                response = client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401 and _one_sentence(response.json()["detail"])
        good = {"Authorization": "Bearer t0ken-for-tests"}
        assert client.post("/predict", json={"rows": [ROW]}, headers=good).status_code == 200
        assert client.get("/model", headers=good).status_code == 200


# --- refusing to start ---


def test_serving_refuses_a_model_file_that_no_longer_verifies(loans):
    path = artifact_file(loans.store, loans.v1.artifact_sha256)
    path.write_bytes(path.read_bytes() + b"changed")
    with pytest.raises(tracking.IntegrityError, match="no longer matches"):
        create_app(loans.store, "loan")


def test_serving_refuses_an_unknown_model_or_one_without_production(loans):
    with pytest.raises(tracking.NotFoundError, match="no registered model named 'nope'"):
        create_app(loans.store, "nope")
    with pytest.raises(tracking.ValidationError, match="'loan-lite' has no version in production"):
        create_app(loans.store, "loan-lite")


# --- the hot switch ---


def test_serving_switches_version_under_load_without_a_failed_request(loans):
    answers: list[tuple[int, float, int, int | None]] = []  # (client, when, status, version)
    stop = threading.Event()

    def hammer(client_number: int, base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/predict", json={"rows": ROWS[:2]})
                    ok = response.status_code == 200
                    answers.append((client_number, time.monotonic(), response.status_code,
                                    response.json()["version"] if ok else None))  # fmt: skip
                except httpx.HTTPError:
                    answers.append((client_number, time.monotonic(), 0, None))

    with running(create_app(loans.store, "loan", poll_seconds=0.1, flush_seconds=0.2)) as client:
        clients = [threading.Thread(target=hammer, args=(n, str(client.base_url))) for n in range(4)]
        for thread in clients:
            thread.start()
        wait_until(lambda: len(answers) > 20, what="answers from version 1")
        approve_promotion(loans.store, loans.request.id, "smaller wins", actor=loans.users["admin"],
                          override_justification="testing the hot switch")  # fmt: skip
        approved = time.monotonic()
        wait_until(lambda: sum(a[3] == 2 for a in answers) > 20, what="answers from version 2")
        stop.set()
        for thread in clients:
            thread.join(30)
    assert [a for a in answers if a[2] != 200] == []
    for number in range(4):  # each client saw version 1, then version 2, never back
        versions = [a[3] for a in answers if a[0] == number]
        assert versions == sorted(versions) and versions[0] == 1
    first_v2 = min(a[1] for a in answers if a[3] == 2)
    assert first_v2 - approved < 2.0  # within a few polls (0.1 s) plus loading the new model


def test_serving_keeps_the_old_version_while_the_new_file_does_not_verify(loans, caplog, monkeypatch):
    path = artifact_file(loans.store, loans.v2.artifact_sha256)
    original = path.read_bytes()
    path.write_bytes(original + b"changed")
    polls = []  # each look of the registry watcher at the production version
    looked_up = _app.production_version
    monkeypatch.setattr(_app, "production_version", lambda *args: polls.append(1) or looked_up(*args))
    with running(create_app(loans.store, "loan", poll_seconds=0.05)) as client:
        approve_promotion(loans.store, loans.request.id, "smaller wins", actor=loans.users["admin"],
                          override_justification="testing a bad file")  # fmt: skip
        wait_until(lambda: "not switching from loan v1" in caplog.text, what="the warning")
        seen = len(polls)
        wait_until(lambda: len(polls) >= seen + 3, what="three more polls of the registry")
        assert client.post("/predict", json={"rows": [ROW]}).json()["version"] == 1
        path.write_bytes(original)  # repaired: the next poll switches
        wait_until(lambda: client.get("/health").json()["version"] == 2, what="the switch to version 2")
        assert client.post("/predict", json={"rows": [ROW]}).json()["version"] == 2


# --- the inference log and feedback ---


def test_serving_logs_sampled_requests_and_counts_every_minute(loans):
    with running(create_app(loans.store, "loan", flush_seconds=60)) as client:  # written at shutdown
        by_rows = client.post("/predict", json={"rows": ROWS[:2]}).json()
        by_columns = client.post("/predict", json={"columns": COLUMNS}).json()
        assert client.post("/predict", content=b"{").status_code == 422
    logged = get_inference(loans.store, by_rows["request_id"])
    assert logged.version_id == loans.v1.id and logged.n_rows == 2 and logged.inputs == ROWS[:2]
    assert logged.outputs["predictions"] == by_rows["predictions"]
    assert get_inference(loans.store, by_columns["request_id"]).inputs == ROWS
    assert len(recent_inferences(loans.store, loans.v1.model_id)) == 2  # the refused one is only counted
    minutes = serving_series(loans.store, loans.v1.model_id, since=utcnow() - timedelta(minutes=5))
    assert sum(m.requests for m in minutes) == 3 and sum(m.errors for m in minutes) == 1
    assert sum(m.rows for m in minutes) == 2 + len(ROWS)


def test_serving_sample_rate_zero_keeps_counts_only(loans):
    with running(create_app(loans.store, "loan", sample_rate=0.0)) as client:
        for _ in range(3):
            assert client.post("/predict", json={"rows": [ROW]}).status_code == 200
    assert recent_inferences(loans.store, loans.v1.model_id) == []
    minutes = serving_series(loans.store, loans.v1.model_id)
    assert sum(m.requests for m in minutes) == 3 and sum(m.rows for m in minutes) == 3


def test_serving_keeps_log_entries_while_the_store_refuses_them(loans, caplog):
    with loans.store.connect(write=True) as conn:
        conn.exec_driver_sql("ALTER TABLE inference_log RENAME TO inference_log_away")
    with running(create_app(loans.store, "loan", flush_seconds=0.05)) as client:
        for _ in range(3):
            assert client.post("/predict", json={"rows": [ROW]}).status_code == 200
        wait_until(lambda: "keeping them for the next try" in caplog.text, what="the failed write")
        assert client.post("/predict", json={"rows": [ROW]}).status_code == 200
        with loans.store.connect(write=True) as conn:
            conn.exec_driver_sql("ALTER TABLE inference_log_away RENAME TO inference_log")
        wait_until(lambda: len(recent_inferences(loans.store, loans.v1.model_id)) == 4, what="the kept entries")
        wait_until(lambda: "the inference log is written again" in caplog.text, what="the recovery")
    assert sum(m.requests for m in serving_series(loans.store, loans.v1.model_id)) == 4


def test_serving_feedback_attaches_labels(loans):
    with running(create_app(loans.store, "loan", flush_seconds=0.05)) as client:
        request_id = client.post("/predict", json={"rows": ROWS[:2]}).json()["request_id"]
        wait_until(lambda: recent_inferences(loans.store, loans.v1.model_id), what="the log write")
        response = client.post("/feedback", json={"request_id": request_id, "labels": [1, 0]})
        assert response.status_code == 200 and response.json() == {"request_id": request_id, "labels": 2}
        assert get_inference(loans.store, request_id).labels == [1, 0]
        unknown = client.post("/feedback", json={"request_id": "nope", "labels": [1]})
        assert unknown.status_code == 404 and "'nope'" in unknown.json()["detail"]
        wrong = client.post("/feedback", json={"request_id": request_id, "labels": [1]})
        assert wrong.status_code == 422 and "had 2 row(s), but 1 label(s) came" in wrong.json()["detail"]
        for body, fragment in ((b"{", "not valid JSON"), (b'{"labels": [1]}', '"request_id"'), (b"", "not a JSON")):
            bad = client.post("/feedback", content=body, headers={"content-type": "application/json"})
            assert bad.status_code == 422 and _one_sentence(bad.json()["detail"]) and fragment in bad.json()["detail"]


# --- the CLI ---


def _cli(*argv: str) -> tuple[Callable[[], int], argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m tracking")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store")
    add_parsers(parser.add_subparsers(dest="command", required=True), store)
    args = parser.parse_args(argv)
    return lambda: COMMANDS[args.command](args), args


def _logged(store: Store, version: VersionRecord, rows: dict[str, int]) -> None:
    write_batch(store, [
        InferenceEntry(request_id, version.model_id, version.id, utcnow(), 1.0, n, [ROW] * n, {"predictions": [1] * n},
                       sampled=True)
        for request_id, n in rows.items()
    ])  # fmt: skip


def test_serving_cli_feedback_imports_both_csv_forms(loans, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRACKING_USER", "engineer")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    _logged(loans.store, loans.v1, {"a": 2, "b": 1, "c": 2})
    per_row = tmp_path / "per_row.csv"
    per_row.write_text("request_id,label\na,1\nb,yes\na,0\n")
    run, _ = _cli("feedback", "--file", str(per_row))
    assert run() == 0 and "labelled 2 request(s) (3 row(s))" in capsys.readouterr().out
    assert (get_inference(loans.store, "a").labels, get_inference(loans.store, "b").labels) == ([1, 0], ["yes"])
    as_lists = tmp_path / "lists.csv"
    as_lists.write_text('request_id,labels\nc,"[0, 1]"\nnope,[1]\n')
    run, _ = _cli("feedback", "--file", str(as_lists))
    assert run() == 1
    out, err = capsys.readouterr()
    assert "labelled 1 request(s) (2 row(s))" in out and "1 not labelled" in out and err.startswith("line 3: ")
    assert get_inference(loans.store, "c").labels == [0, 1]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id,label\na,1\n", "needs a header with request_id"),
        ("request_id,labels\na,[1\n", "Line 2 of"),
        ("request_id,labels\na,[1]\na,[0]\n", "Line 3 of .* repeats request 'a' \\(first on line 2\\)"),
        ("request_id,label\na,1\n,0\n", "Line 3 of .* has no request_id"),
        ("request_id,label\n", "has no labels"),
    ],
)
def test_serving_cli_feedback_names_the_bad_line(loans, tmp_path, monkeypatch, text, fragment):
    monkeypatch.setenv("TRACKING_USER", "engineer")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    path = tmp_path / "feedback.csv"
    path.write_text(text)
    run, _ = _cli("feedback", "--file", str(path))
    with pytest.raises(tracking.ValidationError, match=fragment):
        run()


def test_serving_cli_commands_check_the_role_first(loans, monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKING_USER", "viewer")
    monkeypatch.setenv("TRACKING_PASSWORD", PASSWORD)
    (tmp_path / "f.csv").write_text("request_id,label\na,1\n")
    for argv in (("serve", "--model", "loan", "--port", "1"), ("feedback", "--file", str(tmp_path / "f.csv"))):
        run, _ = _cli(*argv)
        with pytest.raises(tracking.PermissionDenied, match=r"Your role \(viewer\) may not"):
            run()


def test_serving_cli_serve_options(monkeypatch):
    _, args = _cli("serve", "--model", "loan")
    assert (args.stage, args.host, args.port, args.sample) == ("production", "127.0.0.1", 8000, None)
    for bad in (("--stage", "staging"), ("--sample", "1.5"), ("--port", "0")):
        with pytest.raises(SystemExit):
            _cli("serve", "--model", "loan", *bad)


_HUGE = "9" * 5000
_ODD_NUMBERS = [
    ("5,000 digits", json.dumps({"rows": [{**ROW, "age": 0}]}).replace('"age": 0', f'"age": {_HUGE}'), "thousands of digits"),
    ("5,000 digits and a fraction", json.dumps({"rows": [{**ROW, "age": 0}]}).replace('"age": 0', f'"age": {_HUGE}.5'), "too large"),
    ("Infinity", json.dumps({"rows": [{**ROW, "age": 0}]}).replace('"age": 0', '"age": Infinity'), "Infinity is not a number"),
    ("-Infinity", json.dumps({"rows": [{**ROW, "age": 0}]}).replace('"age": 0', '"age": -Infinity'), "-Infinity is not a number"),
    ("a string", json.dumps({"rows": [{**ROW, "age": "NaN"}]}), 'rows[0]["age"] is the text "NaN"'),
    ("a huge count of rows", json.dumps({"rows": _HUGE}), '"rows" is the text'),
]  # fmt: skip


@pytest.mark.parametrize(("body", "fragment"), [case[1:] for case in _ODD_NUMBERS], ids=[c[0] for c in _ODD_NUMBERS])
def test_serving_odd_numbers_get_a_4xx_sentence_not_a_500(shared, body, fragment):
    _, client = shared
    response = client.post("/predict", content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert _one_sentence(response.json()["detail"]) and fragment in response.json()["detail"], response.json()


@pytest.mark.parametrize("labels", [f"[{_HUGE}]", "[NaN]", "[Infinity]", '"1"', "[1e400]"])
def test_serving_feedback_with_odd_numbers_gets_a_4xx_sentence(loans, labels):
    with running(create_app(loans.store, "loan", flush_seconds=0.05)) as client:
        request_id = client.post("/predict", json={"rows": ROWS[:1]}).json()["request_id"]
        wait_until(lambda: recent_inferences(loans.store, loans.v1.model_id), what="the log write")
        body = f'{{"request_id": "{request_id}", "labels": {labels}}}'.encode()
        response = client.post("/feedback", content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        assert _one_sentence(response.json()["detail"]), response.json()
