"""Datasets: built-in tasks, CSV files and their mistakes, content hashes, registered versions."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

import tracking
from tracking.runs._datasets import (
    BUILTIN_TASKS,
    describe,
    get_dataset,
    list_datasets,
    load_task,
    register_dataset,
    save_upload,
)

ROOT = Path(__file__).resolve().parent.parent
TASK_TYPES = {
    "breast_cancer": "classification",
    "wine": "classification",
    "digits": "classification",
    "iris": "classification",
    "diabetes": "regression",
    "loan_approval": "classification",
}


@pytest.fixture
def write_csv(tmp_path):
    """Write bytes or text to a CSV file under tmp_path and return its path."""

    def write(content: str | bytes, name: str = "data.csv"):
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return write


def test_builtin_tasks_are_the_documented_ones():
    assert set(BUILTIN_TASKS) == set(TASK_TYPES)


@pytest.mark.parametrize("task", sorted(TASK_TYPES))
def test_load_task_builtin_has_its_task_type(task):
    data = load_task(task)
    assert data.task_type == TASK_TYPES[task] and data.source == "builtin" and data.name == task
    assert len(data.X) == len(data.y) > 0
    assert data.target not in data.X.columns


def test_load_task_loan_approval_keeps_gender_out_of_features():
    data = load_task("loan_approval")
    assert data.sensitive_column == "gender"
    assert "gender" not in data.X.columns and "approved" not in data.X.columns
    assert set(data.sensitive) == {"female", "male"} and len(data.sensitive) == len(data.X)


def test_loan_data_script_reproduces_shipped_csv(tmp_path):
    spec = importlib.util.spec_from_file_location("make_loan_data", ROOT / "scripts" / "make_loan_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "loan_approval.csv"
    module.make().to_csv(out, index=False, lineterminator="\n")
    assert out.read_bytes() == (ROOT / "tracking" / "data" / "loan_approval.csv").read_bytes()


def test_load_task_hash_is_sha256_of_the_file(write_csv):
    path = write_csv("x,y\n1,a\n2,a\n3,b\n4,b\n")
    assert load_task(csv=path, target="y").sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_task_same_content_has_same_hash(write_csv):
    text = "x,y\n1,a\n2,a\n3,b\n4,b\n"
    first = load_task(csv=write_csv(text, "one.csv"), target="y")
    second = load_task(csv=write_csv(text, "two.csv"), target="y")
    assert first.sha256 == second.sha256
    assert load_task("iris").sha256 == load_task("iris").sha256


def test_load_task_one_changed_cell_changes_hash(write_csv):
    before = load_task(csv=write_csv("x,y\n1,a\n2,a\n3,b\n4,b\n", "one.csv"), target="y")
    after = load_task(csv=write_csv("x,y\n1,a\n2,a\n3,b\n5,b\n", "two.csv"), target="y")
    assert before.sha256 != after.sha256


def test_load_task_missing_csv_is_a_clear_error(tmp_path):
    with pytest.raises(tracking.ValidationError, match="does not exist"):
        load_task(csv=tmp_path / "nowhere.csv", target="y")


@pytest.mark.parametrize(
    ("content", "kwargs", "word"),
    [
        pytest.param(b"", {}, "is empty", id="zero-bytes"),
        pytest.param(b"  \n\n\t\n", {}, "is empty", id="whitespace-only"),
        pytest.param(b"a,b\n\xe9,1\n", {"target": "b"}, "not UTF-8", id="latin-1"),
        pytest.param(b"a,b\n1,2\n3,4,5,6\n", {"target": "b"}, "could not be read as CSV", id="too-many-fields"),
        pytest.param(b"x,y\n1,a\n2,b\n", {"target": "label"}, "no target column 'label'", id="no-target"),
        pytest.param(
            b"x,g,y\n1,f,a\n2,m,a\n3,f,b\n4,m,b\n",
            {"sensitive": "gender"},
            "no sensitive column 'gender'",
            id="no-sensitive",
        ),
        pytest.param(b"x,y\n1,a\n2,a\n3,a\n", {}, "only one value", id="constant-target"),
        pytest.param(b"x,y\n1,a\n2,\n3,b\n4,b\n5,a\n", {}, "1 empty values", id="empty-target-cells"),
        pytest.param(b"x,y\n1,a\n2,a\n3,b\n4,b\n5,c\n", {}, "'c' of 'y' has a single row", id="single-row-class"),
    ],
)
def test_load_task_rejects_bad_csv(write_csv, content, kwargs, word):
    path = write_csv(content)
    with pytest.raises(tracking.ValidationError) as caught:
        load_task(csv=path, **{"target": "y", **kwargs})
    assert word in str(caught.value)


@pytest.mark.parametrize("both", [True, False], ids=["task-and-csv", "neither"])
def test_load_task_needs_exactly_one_source(write_csv, both):
    kwargs = {"task": "iris", "csv": write_csv("x,y\n1,a\n2,a\n3,b\n4,b\n"), "target": "y"} if both else {}
    with pytest.raises(tracking.ValidationError, match="either a built-in task or a CSV"):
        load_task(**kwargs)


def test_load_task_unknown_name_lists_the_tasks():
    with pytest.raises(tracking.ValidationError, match="'irises'") as caught:
        load_task("irises")
    assert all(name in str(caught.value) for name in BUILTIN_TASKS)


@pytest.mark.parametrize(
    ("values", "task_type"),
    [
        pytest.param(["yes", "no"] * 5, "classification", id="strings"),
        pytest.param([0.5, 1.25, 3.0, 7.5, 2.25] * 2, "regression", id="floats"),
        pytest.param([0, 1, 2, 3, 4] * 2, "classification", id="small-ints"),
        pytest.param(list(range(50)) * 2, "regression", id="many-ints"),
    ],
)
def test_load_task_detects_csv_task_type(write_csv, values, task_type):
    rows = "".join(f"{i},{value}\n" for i, value in enumerate(values))
    assert load_task(csv=write_csv("x,y\n" + rows), target="y").task_type == task_type


def test_describe_counts_rows_missing_cells_and_classes(write_csv):
    data = load_task(csv=write_csv("x,c,y\n1,a,u\n,b,u\n3,,v\n,a,v\n5,a,v\n"), target="y")
    _, stats = describe(data)
    assert stats["rows"] == 5
    assert {column: entry["missing"] for column, entry in stats["columns"].items()} == {"x": 2, "c": 1, "y": 0}
    assert stats["classes"] == {"u": 2, "v": 3}


def test_describe_schema_names_target_sensitive_and_dtypes(write_csv):
    data = load_task(csv=write_csv("x,g,y\n1.5,f,a\n2.5,m,a\n3.5,f,b\n4.5,m,b\n"), target="y", sensitive="g")
    schema, stats = describe(data)
    assert schema["target"] == "y" and schema["sensitive"] == "g" and schema["task_type"] == "classification"
    assert set(schema["columns"]) == {"x", "g", "y"} and schema["columns"]["x"] == "float64"
    assert stats["columns"]["g"]["top"] == {"f": 2, "m": 2}


def test_describe_regression_has_no_class_counts():
    _, stats = describe(load_task("diabetes"))
    assert "classes" not in stats and stats["rows"] == 442


def test_register_dataset_twice_is_one_version(store, write_csv):
    data = load_task(csv=write_csv("x,y\n1,a\n2,a\n3,b\n4,b\n"), target="y")
    first = register_dataset(store, data)
    assert register_dataset(store, load_task(csv=data.path, target="y")) == first
    assert [d.id for d in list_datasets(store)] == [first]


def test_register_dataset_changed_file_is_new_version(store, write_csv):
    path = write_csv("x,y\n1,a\n2,a\n3,b\n4,b\n")
    old = register_dataset(store, load_task(csv=path, target="y"))
    write_csv("x,y\n1,a\n2,a\n3,b\n4,b\n5,b\n")
    new = register_dataset(store, load_task(csv=path, target="y"))
    assert new != old
    versions = list_datasets(store)
    assert [d.id for d in versions] == [new, old]  # newest first
    assert {d.name for d in versions} == {"data"} and versions[0].n_rows == 5 and versions[1].n_rows == 4


def test_register_dataset_stores_hash_schema_and_stats(store, write_csv):
    data = load_task(csv=write_csv("x,g,y\n1,f,a\n,m,a\n3,f,b\n4,m,b\n"), target="y", sensitive="g")
    record = get_dataset(store, register_dataset(store, data))
    schema, stats = describe(data)
    assert record.sha256 == data.sha256 and record.source == "csv" and record.path == data.path
    assert (record.n_rows, record.n_columns) == (4, 3)
    assert record.schema == schema and record.stats == stats


def test_get_dataset_unknown_id_is_not_found(store):
    with pytest.raises(tracking.NotFoundError, match="no dataset version 404"):
        get_dataset(store, 404)


# -- uploads ------------------------------------------------------------------------------------------

CSV = b"a,b\n1,0\n2,1\n"


def _upload_path(store, name: str = "data.csv", content: bytes = CSV) -> Path:
    return store.artifact_root.parent / "uploads" / hashlib.sha256(content).hexdigest()[:16] / name


def test_save_upload_keeps_the_bytes_by_content(file_store):
    path = save_upload(file_store, CSV, "data.csv")
    assert path == _upload_path(file_store) and path.read_bytes() == CSV
    assert save_upload(file_store, CSV, "data.csv") == path
    assert [p.name for p in path.parent.iterdir()] == ["data.csv"]  # no temporary file left behind


def test_save_upload_replaces_a_file_changed_since(file_store):
    path = save_upload(file_store, CSV, "data.csv")
    path.write_bytes(b"a,b\n9,9\n")
    assert save_upload(file_store, CSV, "data.csv").read_bytes() == CSV


@pytest.mark.parametrize("target", ["secret.txt", "missing.txt"], ids=["to a file", "dangling"])
def test_save_upload_refuses_a_planted_link_to_the_file(file_store, tmp_path, target):
    outside = tmp_path / target
    if target == "secret.txt":
        outside.write_bytes(b"secret")
    path = _upload_path(file_store)
    path.parent.mkdir(parents=True)
    path.symlink_to(outside)
    with pytest.raises(tracking.IntegrityError, match="symbolic link"):
        save_upload(file_store, CSV, "data.csv")
    assert (outside.read_bytes() == b"secret") if target == "secret.txt" else not outside.exists()
    assert path.is_symlink()


@pytest.mark.parametrize("level", ["uploads", "content folder"])
def test_save_upload_refuses_a_linked_folder(file_store, tmp_path, level):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = _upload_path(file_store)
    link = path.parent.parent if level == "uploads" else path.parent
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(tracking.IntegrityError, match="symbolic link"):
        save_upload(file_store, CSV, "data.csv")
    assert list(elsewhere.iterdir()) == []
