"""Served-model traffic for monitoring tests: a template store with `loan` v1 in production, copied per
test, and requests logged the way the model server logs them (real rows, real predictions)."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.governance import good_and_bad, make_accounts
from tracking.governance._access import UserRecord
from tracking.ml._objective import split
from tracking.production._inference import InferenceEntry, record_labels, write_batch
from tracking.registry._models import (
    VersionRecord,
    effective_policy,
    load_version_model,
    register_version,
    set_policy,
)
from tracking.registry._promotions import approve_promotion, request_promotion
from tracking.runs._datasets import load_task
from tracking.runs._queries import get_run
from tracking.store._db import Store, _stores, open_store
from tracking.store._tables import utcnow

NUMERIC = ["age", "income", "loan_amount", "credit_score", "years_employed", "existing_debt"]


# ---- a store with `loan` v1 in production, copied for every test --------------------------------


@dataclass(frozen=True)
class Template:
    home: Path
    users: dict[str, UserRecord]


_TEMPLATE: list[Template] = []


def production_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A store (built once per session) where a well-fitting logistic regression is `loan` v1 in production."""
    if not _TEMPLATE:
        home = tmp_path_factory.mktemp("monitoring") / "home"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TRACKING_HOME", str(home))
            store = open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
            users = make_accounts(store)
            good, _ = good_and_bad(store, users["data_scientist"])
            version = register_version(store, good.id, "loan", actor=users["data_scientist"])
            request = request_promotion(store, version.id, "Fits well", actor=users["data_scientist"])
            approve_promotion(store, request.id, "Go", actor=users["product_owner"])
            for key in [k for k, s in _stores.items() if s is store]:
                _stores.pop(key)
            store.dispose()  # the last connection closes: the WAL is folded into the database file
        _TEMPLATE.append(Template(home, users))
    return _TEMPLATE[0]


def copy_template(template: Template, home: Path) -> Store:
    """A store of its own at `home` (the test's TRACKING_HOME) with the template's contents."""
    shutil.copytree(template.home, home)
    return open_store(f"sqlite:///{home / 'tracking.db'}", home=home)


def rows(store: Store, version: VersionRecord, part: str) -> tuple[object, object]:
    """(X, y) of the version's training rows (`train`) or of its held-out rows (`test`): a fresh sample."""
    run = get_run(store, version.run_id)
    parts = split(load_task("loan_approval"), run.seed or 0)
    return (parts.X_train, parts.y_train) if part == "train" else (parts.X_test, parts.y_test)


def shifted(X: object) -> object:
    """The same rows, moved: numeric columns * 1.5 plus a standard deviation, `home` and `car` loans renamed."""
    out = X.copy()
    for column in NUMERIC:
        out[column] = out[column] * 1.5 + out[column].std()
    out["purpose"] = out["purpose"].replace({"home": "business", "car": "travel"})
    return out


def serve(
    store: Store, version: VersionRecord, X: object, y: object | None = None, batch: int = 25, keyed: bool = True
) -> list[str]:
    """Log requests as the model server does: the production model predicts each batch of rows, the
    sampled requests are written whole, and the labels (when given) come back afterwards. The server
    answers probabilities keyed by class (`keyed`); a plain list per row in class order is read too."""
    model = load_version_model(store, version)
    entries, ids = [], []
    for start in range(0, len(X), batch):
        part = X.iloc[start : start + batch]
        began = time.perf_counter()
        proba = model.predict_proba(part)
        latency = (time.perf_counter() - began) * 1000
        request_id = uuid.uuid4().hex
        ids.append(request_id)
        classes = model.classes_.tolist()
        outputs = {  # as the server answers: probabilities keyed by class
            "predictions": model.classes_[np.argmax(proba, axis=1)].tolist(),
            "probabilities": [
                dict(zip(map(str, classes), row, strict=True)) if keyed else row for row in proba.tolist()
            ],
            "classes": classes,
        }
        inputs = json.loads(part.to_json(orient="records"))  # what arrives as JSON
        entries.append(
            InferenceEntry(
                request_id, version.model_id, version.id, utcnow(), latency, len(part), inputs, outputs, True
            )
        )
    write_batch(store, entries)
    if y is not None:
        for start, request_id in zip(range(0, len(X), batch), ids, strict=True):
            record_labels(store, request_id, y.iloc[start : start + batch].tolist())
    return ids


def set_monitoring(store: Store, users: dict[str, UserRecord], **settings: object) -> None:
    """Keep the model's gates, set its monitoring thresholds (as an admin)."""
    policy = {**effective_policy(store, "loan"), "monitoring": settings}
    set_policy(store, "loan", policy, actor=users["admin"])
