"""Content-addressed artifact files and skops model files.

Content lives at `<artifact root>/<sha256[:2]>/<sha256>` in the store's blob storage (the local folder
`<home>/artifacts`, or `TRACKING_ARTIFACTS_URL` such as `s3://bucket/prefix`): a name a user gives is only
a label in the store, never part of a key, so no name can reach outside the root. Every read re-hashes the
bytes and refuses content whose sha256 differs from the one recorded when it was written.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlmodel import select

from tracking._errors import IntegrityError, NotFoundError, ValidationError
from tracking.remote import ServerClient
from tracking.store import Artifact, ArtifactRecord, LocalBlobs, Store, checked_sha

# skops is imported inside the functions that use it: `import tracking` stays light.

_BAD_NAME = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_NAME = 200

# Types that skops does not trust by default but the built-in model families need (found by dumping
# a fitted model of every family). A file asking for anything else is refused: trusting a file's own
# `get_untrusted_types()` would defeat the point of skops.
TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
]


def safe_name(name: str) -> str:
    """Check an artifact name: a relative, printable label of at most 200 characters.

    Raises:
        ValidationError: the name is empty, absolute, has `..`, a backslash or control characters.
    """
    cleaned = name.strip()
    parts = cleaned.split("/")
    if (
        not cleaned
        or len(cleaned) > MAX_NAME
        or cleaned.startswith("/")
        or _BAD_NAME.search(cleaned)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValidationError(
            f"The artifact name {name!r} is not allowed: use a relative name like 'plots/roc.png' "
            f"(no '..', no leading '/', no backslashes or control characters, at most {MAX_NAME} characters)."
        )
    return cleaned


def artifact_file(store: Store, sha256: str) -> Path:
    """The path of the content with this sha256 in the local artifact folder, checked to stay inside it.

    Only meaningful when the artifacts live in a local folder; use `artifact_exists` and `read_verified`,
    which work for every storage (`TRACKING_ARTIFACTS_URL`).
    """
    return LocalBlobs(store.artifact_root).path(sha256)


def put_bytes(store: Store, data: bytes) -> str:
    """Write content once (atomically where the storage allows) and return its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    store.blobs.put(digest, data)
    return digest


def artifact_exists(store: Store, sha256: str) -> bool:
    """Whether the content with this sha256 is in the artifact storage (not verified: `read_verified` does)."""
    return store.blobs.exists(sha256)


def read_verified(store: Store, sha256: str) -> bytes:
    """The content with this sha256, after checking it still hashes to it.

    Raises:
        IntegrityError: the content is missing or changed since it was written.
        StoreError: the artifact storage cannot be reached.
    """
    data = store.blobs.get(checked_sha(sha256))
    if data is None:
        raise IntegrityError(f"The artifact file {sha256[:12]}… is missing from {store.blobs.location}.")
    return data


def find_artifact(store: Store | ServerClient, run_id: int, name: str) -> ArtifactRecord | None:
    """The artifact `name` of a run, or None."""
    if isinstance(store, ServerClient):
        return next((found for found in store.list_artifacts(run_id) if found.name == name), None)
    with store.session_scope() as session:
        row = session.exec(select(Artifact).where(Artifact.run_id == run_id, Artifact.name == name)).first()
        return _record(row) if row else None


def list_artifacts(store: Store | ServerClient, run_id: int) -> list[ArtifactRecord]:
    """All artifacts of a run, by name."""
    if isinstance(store, ServerClient):  # a tracking server's client: the same question over HTTP
        return store.list_artifacts(run_id)
    with store.session_scope() as session:
        rows = session.exec(select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.name))
        return [_record(row) for row in rows]


def dump_model(model: Any) -> bytes:
    """A fitted estimator as skops bytes (never pickle)."""
    import skops.io

    return skops.io.dumps(model)


def load_model(store: Store | ServerClient, run_id: int, name: str = "model") -> Any:
    """Load a run's model, only after its sha256 verifies and only with the trusted types (through a tracking
    server's client: downloaded, and verified again on arrival).

    Raises:
        NotFoundError: the run has no such model artifact.
        IntegrityError: the file changed since it was written (or on the way from the server).
    """
    artifact = find_artifact(store, run_id, name)
    if artifact is None or artifact.kind != "model":
        raise NotFoundError(f"Run {run_id} has no model artifact named {name!r}.")
    if isinstance(store, ServerClient):
        data = store.download_artifact(run_id, name, sha256=artifact.sha256)
        return load_model_bytes(data, artifact.sha256, f"run {run_id}")
    return load_model_file(store, artifact.sha256, f"run {run_id}")


def load_model_file(store: Store, sha256: str, label: str) -> Any:
    """Load the model file with this sha256 after verifying it, with the trusted types only.

    Raises:
        IntegrityError: the file is missing, changed since it was written, or asks for untrusted types.
    """
    return load_model_bytes(read_verified(store, sha256), sha256, label)


def load_model_bytes(data: bytes, sha256: str, label: str) -> Any:
    """Load skops model bytes that must hash to `sha256`, with the trusted types only.

    Raises:
        IntegrityError: the bytes do not hash to `sha256`, or they ask for untrusted types.
    """
    import skops.io

    if hashlib.sha256(data).hexdigest() != sha256:
        raise IntegrityError(f"The model file of {label} does not match its recorded sha256, so it will not be loaded.")
    untrusted = [t for t in skops.io.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise IntegrityError(f"The model file of {label} asks for types that are not trusted: {untrusted}.")
    return skops.io.loads(data, trusted=TRUSTED_TYPES)


def _record(row: Artifact) -> ArtifactRecord:
    return ArtifactRecord(row.id, row.run_id, row.name, row.kind, row.sha256, row.size, row.created_at)
