"""Datasets: scikit-learn's bundled sets and CSV files, each registered as a version by its sha256.

A dataset version is identified by the sha256 of its content: the CSV file's bytes, or for a bundled
set the CSV text of its frame. Its schema (column -> dtype) and basic statistics are stored with it;
every run points at the version it trained on. A sensitive-attribute column is kept out of the
features and carried beside them for fairness checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select

from tracking._errors import IntegrityError, NotFoundError, ValidationError
from tracking.governance import Action, UserRecord, actor_from_env, authorize
from tracking.store import DatasetRecord, DatasetVersion, Store, bump_change_counter

# scikit-learn and pandas are imported inside the functions that use them: `import tracking` stays light.

SHIPPED = Path(__file__).resolve().parents[1] / "data"  # CSV files shipped inside the package
MAX_CLASSES = 20  # an integer target with at most this many values is treated as classes


@dataclass(frozen=True)
class TaskData:
    """A loaded dataset, ready for training."""

    name: str
    source: str  # "builtin" or "csv"
    path: str | None
    X: Any  # pandas DataFrame of features
    y: Any  # pandas Series, the target
    sensitive: Any | None  # pandas Series of group labels, or None
    target: str
    sensitive_column: str | None
    task_type: str  # "classification" or "regression"
    sha256: str


def _sklearn_loader(name: str) -> Callable[[], Any]:
    def load() -> Any:
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame

    return load


# name -> (loader of a DataFrame, target column, sensitive column, task type)
BUILTIN_TASKS: dict[str, tuple[Callable[[], Any], str, str | None, str]] = {
    "breast_cancer": (_sklearn_loader("breast_cancer"), "target", None, "classification"),
    "wine": (_sklearn_loader("wine"), "target", None, "classification"),
    "digits": (_sklearn_loader("digits"), "target", None, "classification"),
    "iris": (_sklearn_loader("iris"), "target", None, "classification"),
    "diabetes": (_sklearn_loader("diabetes"), "target", None, "regression"),
    "loan_approval": (
        lambda: _read_csv_frame(SHIPPED / "loan_approval.csv", (SHIPPED / "loan_approval.csv").read_bytes()),
        "approved",
        "gender",
        "classification",
    ),
}


def load_task(
    task: str | None = None,
    csv: str | Path | None = None,
    target: str | None = None,
    sensitive: str | None = None,
) -> TaskData:
    """Load a built-in task by name, or a CSV file with its target (and sensitive) column.

    Raises:
        ValidationError: unknown task; CSV missing, empty, not UTF-8, unparsable, without the target
            or sensitive column, or with a constant target.
    """
    if (task is None) == (csv is None):
        raise ValidationError("Give either a built-in task or a CSV file (with its target column), not both.")
    if task is not None:
        if task not in BUILTIN_TASKS:
            raise ValidationError(f"Unknown task {task!r}; the built-in tasks are: {', '.join(sorted(BUILTIN_TASKS))}.")
        loader, default_target, default_sensitive, task_type = BUILTIN_TASKS[task]
        frame = loader()
        data = frame.to_csv(index=False, lineterminator="\n").encode()
        return _split(task, "builtin", None, frame, default_target, default_sensitive, task_type, _sha(data))
    path = Path(csv).expanduser()
    if not target:
        raise ValidationError("A CSV dataset needs its target column (--target COLUMN).")
    if not path.is_file():
        raise ValidationError(f"The CSV file {str(path)!r} does not exist.")
    raw = path.read_bytes()
    frame = _read_csv_frame(path, raw)
    return _split(path.stem, "csv", str(path.resolve()), frame, target, sensitive, None, _sha(raw))


def load_csv_content(raw: bytes, csv: str | Path, target: str | None, sensitive: str | None = None) -> TaskData:
    """A CSV dataset from its bytes (fetched by sha256), named and located as the file `csv` it was recorded from.

    Raises:
        ValidationError: as `load_task` for a CSV file.
    """
    path = Path(csv)
    if not target:
        raise ValidationError("A CSV dataset needs its target column (--target COLUMN).")
    return _split(path.stem, "csv", str(csv), _read_csv_frame(path, raw), target, sensitive, None, _sha(raw))


def store_dataset(store: Store, data: TaskData) -> None:
    """Keep a CSV dataset's bytes in the artifact storage by their sha256, so any worker loads it by hash.

    Raises:
        ValidationError: the file changed since it was loaded.
        StoreError: the artifact storage cannot be reached.
    """
    if data.source != "csv" or data.path is None:
        return
    raw = Path(data.path).read_bytes()
    if _sha(raw) != data.sha256:
        raise ValidationError(f"The CSV file {data.path!r} changed while it was being read; try again.")
    store.blobs.put(data.sha256, raw)


def stored_dataset(store: Store, sha256: str) -> bytes | None:
    """The bytes of a CSV dataset kept in the artifact storage by this sha256 (verified), or None if not kept.

    Raises:
        IntegrityError: the stored bytes no longer match the sha256.
        StoreError: the artifact storage cannot be reached.
    """
    return store.blobs.get(sha256)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_csv_frame(path: Path, raw: bytes) -> Any:
    import pandas as pd

    if not raw.strip():
        raise ValidationError(f"The CSV file {str(path)!r} is empty.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValidationError(
            f"The CSV file {str(path)!r} is not UTF-8 text (bad byte at offset {err.start}); save it as UTF-8."
        ) from err
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "it could not be parsed"
        raise ValidationError(f"The CSV file {str(path)!r} could not be read as CSV: {reason}.") from err
    if frame.empty or frame.shape[1] < 2:
        raise ValidationError(f"The CSV file {str(path)!r} needs a header and at least one row of two or more columns.")
    return frame


def _split(
    name: str,
    source: str,
    path: str | None,
    frame: Any,
    target: str,
    sensitive: str | None,
    task_type: str | None,
    sha256: str,
) -> TaskData:
    import pandas as pd

    columns = list(frame.columns)
    for role, column in (("target", target), ("sensitive", sensitive)):
        if column is not None and column not in columns:
            raise ValidationError(f"The dataset {name!r} has no {role} column {column!r}; its columns are: {columns}.")
    if sensitive is not None and sensitive == target:
        raise ValidationError("The sensitive column must differ from the target column.")
    y = frame[target]
    if y.isna().any():
        raise ValidationError(
            f"The target column {target!r} has {int(y.isna().sum())} empty values; fill or drop them."
        )
    if y.nunique() < 2:
        raise ValidationError(f"The target column {target!r} has only one value, so there is nothing to learn.")
    if task_type is None:
        integral = pd.api.types.is_integer_dtype(y) or pd.api.types.is_bool_dtype(y)
        numeric = pd.api.types.is_numeric_dtype(y)
        task_type = "classification" if not numeric or (integral and y.nunique() <= MAX_CLASSES) else "regression"
    if task_type == "classification" and y.value_counts().min() < 2:
        rare = y.value_counts().idxmin()
        raise ValidationError(f"The class {rare!r} of {target!r} has a single row; every class needs at least two.")
    X = frame.drop(columns=[c for c in (target, sensitive) if c is not None])
    group = frame[sensitive].astype(str) if sensitive is not None else None
    return TaskData(name, source, path, X, y, group, target, sensitive, task_type, sha256)


def describe(data: TaskData) -> tuple[dict[str, Any], dict[str, Any]]:
    """The schema (column -> dtype) and basic statistics of a dataset's full frame."""
    import pandas as pd

    frame = data.X.copy()
    frame[data.target] = data.y
    if data.sensitive is not None:
        frame[data.sensitive_column] = data.sensitive
    schema = {
        "columns": {str(c): str(t) for c, t in frame.dtypes.items()},
        "target": data.target,
        "sensitive": data.sensitive_column,
        "task_type": data.task_type,
    }
    columns: dict[str, Any] = {}
    for column in frame.columns:
        series = frame[column]
        entry: dict[str, Any] = {"missing": int(series.isna().sum())}
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            described = series.describe()
            entry.update({k: _num(described[k]) for k in ("mean", "std", "min", "max")})
        else:
            counts = series.astype(str).value_counts()
            entry.update({"distinct": int(counts.size), "top": {str(k): int(v) for k, v in counts.head(10).items()}})
        columns[str(column)] = entry
    stats = {"rows": len(frame), "columns": columns}
    if data.task_type == "classification":
        stats["classes"] = {str(k): int(v) for k, v in data.y.value_counts().sort_index().items()}
    return schema, stats


def _num(value: Any) -> float | None:
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def register_dataset(store: Store, data: TaskData, actor: UserRecord | None = None) -> int:
    """The id of the dataset version with this content, registered on first sight.

    Registering is a write: on a store with accounts it takes an account that may log runs (`actor`, else the
    access token in `TRACKING_TOKEN`); finding a version already registered does not.
    """
    with store.session_scope() as session:
        found = session.exec(
            select(DatasetVersion.id).where(DatasetVersion.name == data.name, DatasetVersion.sha256 == data.sha256)
        ).first()
    if found is not None:
        return int(found)
    schema, stats = describe(data)
    actor = actor or actor_from_env(store)
    with store.session_scope(write=True) as session:
        authorize(session, actor, Action.run_log)
        found = session.exec(
            select(DatasetVersion.id).where(DatasetVersion.name == data.name, DatasetVersion.sha256 == data.sha256)
        ).first()
        if found is not None:
            return int(found)
        row = DatasetVersion(
            name=data.name,
            sha256=data.sha256,
            source=data.source,
            path=data.path,
            n_rows=len(data.X),
            n_columns=data.X.shape[1] + 1 + (data.sensitive is not None),
            schema_=schema,
            stats=stats,
        )
        session.add(row)
        session.flush()
        bump_change_counter(session)
        return int(row.id)


def list_datasets(store: Store) -> list[DatasetRecord]:
    """Every registered dataset version, newest first."""
    with store.session_scope() as session:
        rows = session.exec(select(DatasetVersion).order_by(DatasetVersion.id.desc())).all()
        return [_record(row) for row in rows]


def get_dataset(store: Store, dataset_id: int) -> DatasetRecord:
    """One dataset version. Raises NotFoundError."""
    with store.session_scope() as session:
        row = session.get(DatasetVersion, dataset_id)
        if row is None:
            raise NotFoundError(f"There is no dataset version {dataset_id}.")
        return _record(row)


def _record(row: DatasetVersion) -> DatasetRecord:
    return DatasetRecord(
        row.id, row.name, row.sha256, row.source, row.path, row.n_rows, row.n_columns, row.schema_, row.stats,
        row.created_at,
    )  # fmt: skip


def save_upload(store: Store, content: bytes, filename: str) -> Path:
    """Keep an uploaded CSV under the store's home, by content, so every worker reads the same bytes.

    The file lands at `<home>/uploads/<sha256[:16]>/<name>.csv`, and its bytes in the artifact storage by their
    sha256 (`TRACKING_ARTIFACTS_URL`, where workers on other machines load it); the name keeps the user's file name
    (sanitized) because the dataset version is named after it. Nothing is written or read through a
    symbolic link there (one planted in `uploads/` would send the upload, or a worker's read, elsewhere):
    each folder is opened without following links, and the file is written to a temporary name beside it
    and renamed into place, so a reader never sees half a file. A file already there is kept only when it
    holds exactly these bytes.

    Raises:
        IntegrityError: `uploads/`, its folder or the file is a symbolic link or not what it should be.
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(filename).stem).strip("._") or "upload"
    home = store.artifact_root.parent
    digest = _sha(content)
    name = f"{stem[:80]}.csv"
    folder = home / "uploads" / digest[:16]
    parent = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in ("uploads", digest[:16]):
            child = _open_folder(parent, part, folder)
            os.close(parent)
            parent = child
        if _same_file(parent, name, digest, folder / name):
            return folder / name
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=parent)
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)  # replaces a link, never follows it
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise
    finally:
        os.close(parent)
    store.blobs.put(digest, content)  # and by hash in the artifact storage, where a worker anywhere finds it
    return folder / name


def _open_folder(parent: int, name: str, path: Path) -> int:
    """The folder `name` inside `parent` (made if missing), opened without following a symbolic link."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as err:
        raise IntegrityError(
            f"{path if name != 'uploads' else path.parent} is a symbolic link or not a folder ({err.strerror}); "
            "uploads are not written through links, so remove it."
        ) from None


def _same_file(folder: int, name: str, digest: str, path: Path) -> bool:
    """Whether `name` in `folder` is a regular file holding the bytes of `digest` (not a link to one)."""
    try:
        descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise IntegrityError(
            f"{path} is a symbolic link ({err.strerror}); uploads are not read or written through links, so remove it."
        ) from None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise IntegrityError(f"{path} is not a regular file; remove it.")
        return _sha(file.read()) == digest


def preview_csv(path: str | Path, rows: int = 10) -> tuple[Any, list[str]]:
    """The first rows of a CSV and its columns, with the same checks as `load_task` (one sentence)."""
    file = Path(path)
    frame = _read_csv_frame(file, file.read_bytes())
    return frame.head(rows), [str(c) for c in frame.columns]
