"""Artifacts: safe names, content-addressed files inside the root, verified skops models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.preprocessing import FunctionTransformer

import tracking
from tracking.ml._families import FAMILIES, make_pipeline
from tracking.runs._artifacts import (
    TRUSTED_TYPES,
    artifact_file,
    list_artifacts,
    load_model,
    put_bytes,
    read_verified,
    safe_name,
)
from tracking.runs._runs import start_run
from tracking.store._db import _stores, open_store

MODEL_PARAMS = {"knn": {}, "random_forest": {"n_estimators": 10, "max_depth": 4}}
_restored_states: list[dict] = []


def _double(x):
    return 2 * x


class _Recorder:
    """A class no model needs; loading an instance would call __setstate__."""

    def __init__(self) -> None:
        self.payload = 1

    def __setstate__(self, state: dict) -> None:
        _restored_states.append(state)
        self.__dict__.update(state)


@pytest.fixture(scope="module")
def iris():
    """The iris features and labels as pandas objects."""
    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture(scope="module")
def fitted(iris):
    """A fitted pipeline of the knn and random forest families, by family name."""
    X, y = iris
    return {
        name: make_pipeline(FAMILIES[name], params, 0, "classification", X).fit(X, y)
        for name, params in MODEL_PARAMS.items()
    }


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """A store whose artifact folder stays empty, for checks of digests alone."""
    home = tmp_path_factory.mktemp("home")
    store = open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
    yield store
    for key in [k for k in _stores if k[0] == store.url]:
        _stores.pop(key)
    store.dispose()


def _stored_files(store) -> list[Path]:
    return sorted(p for p in store.artifact_root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "name",
    ["../x", "a/../../b", "/etc/passwd", "a\\b", "", "   ", "a\x00b", "a\nb", ".", "a/./b", "a//b", "x" * 201],
    ids=lambda name: repr(name)[:20],
)
def test_safe_name_refuses_escaping_or_odd_names(name):
    with pytest.raises(tracking.ValidationError, match="is not allowed"):
        safe_name(name)


@pytest.mark.parametrize("name", ["model", "plots/roc.png", "reports/2026/summary.md", "x" * 200])
def test_safe_name_accepts_relative_names(name):
    assert safe_name(name) == name


@pytest.mark.parametrize(
    "digest",
    ["../../etc/passwd", "abc", "g" * 64, "A" * 64, "a" * 63, "a" * 65, "../" + "a" * 61, "a" * 64 + "\n"],
    ids=["traversal", "short", "non-hex", "upper-case", "63-chars", "65-chars", "dotted", "trailing-newline"],
)
def test_artifact_file_refuses_non_digest(empty_store, digest):
    with pytest.raises(tracking.IntegrityError, match="is not a sha256 digest"):
        artifact_file(empty_store, digest)


def test_put_bytes_stores_content_at_its_digest_inside_root(file_store):
    root = file_store.artifact_root.resolve()
    for data in (b"", b"hello", bytes(range(256)) * 10):
        digest = put_bytes(file_store, data)
        path = artifact_file(file_store, digest)
        assert digest == hashlib.sha256(data).hexdigest()
        assert path == root / digest[:2] / digest and path.is_relative_to(root)
        assert read_verified(file_store, digest) == data


def test_log_artifact_same_bytes_in_two_runs_is_stored_once(store):
    data = b"fpr,tpr\n0,0\n0.1,0.8\n1,1\n"
    digests = []
    for _ in range(2):
        with start_run("artifacts", store=store) as run:
            digests.append(run.log_artifact(data, name="plots/roc.csv"))
        assert [(a.name, a.kind, a.size) for a in list_artifacts(store, run.id)] == [
            ("plots/roc.csv", "file", len(data))
        ]
    sha = hashlib.sha256(data).hexdigest()
    assert digests == [sha, sha]
    assert _stored_files(store) == [store.artifact_root.resolve() / sha[:2] / sha]


def test_log_artifact_from_a_path_uses_the_file_name(file_store, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("seed 7 was the good one\n")
    with start_run("artifacts", store=file_store) as run:
        digest = run.log_artifact(source)
    [artifact] = list_artifacts(file_store, run.id)
    assert artifact.name == "notes.txt" and artifact.sha256 == digest
    assert read_verified(file_store, digest) == source.read_bytes()


@pytest.mark.parametrize("family", sorted(MODEL_PARAMS))
def test_log_model_loads_back_and_predicts_the_same(store, fitted, iris, family):
    model = fitted[family]
    with start_run("models", store=store) as run:
        digest = run.log_model(model)
    needed = set(skops.io.get_untrusted_types(data=read_verified(store, digest)))
    assert needed and needed <= set(TRUSTED_TYPES)  # the round trip really depends on the trusted list
    loaded = load_model(store, run.id)
    X, _ = iris
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_load_model_refuses_a_tampered_file(file_store, fitted):
    with start_run("models", store=file_store) as run:
        digest = run.log_model(fitted["knn"])
    path = artifact_file(file_store, digest)
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(tracking.IntegrityError, match="no longer matches its recorded sha256"):
        load_model(file_store, run.id)


def test_load_model_refuses_a_deleted_file(file_store, fitted):
    with start_run("models", store=file_store) as run:
        digest = run.log_model(fitted["knn"])
    artifact_file(file_store, digest).unlink()
    with pytest.raises(tracking.IntegrityError, match="is missing"):
        load_model(file_store, run.id)


def test_load_model_without_a_model_is_not_found(file_store):
    with start_run("models", store=file_store) as run:
        run.log_artifact(b"not a model", name="model")  # a plain file under the model's name
    with pytest.raises(tracking.NotFoundError, match="no model artifact named 'model'"):
        load_model(file_store, run.id)
    with pytest.raises(tracking.NotFoundError, match="no model artifact named 'best'"):
        load_model(file_store, run.id, name="best")


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        pytest.param(lambda: FunctionTransformer(func=_double), "_double", id="function-transformer"),
        pytest.param(_Recorder, "_Recorder", id="own-class"),
    ],
)
def test_load_model_refuses_untrusted_types_before_loading(file_store, make, type_name):
    _restored_states.clear()
    with start_run("models", store=file_store) as run:
        run.log_artifact(skops.io.dumps(make()), name="model", kind="model")
    with pytest.raises(tracking.IntegrityError, match="not trusted") as caught:
        load_model(file_store, run.id)
    assert type_name in str(caught.value)
    assert _restored_states == []
