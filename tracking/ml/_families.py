"""Model families: a name -> family registry with default search spaces and pipeline builders.

Adding a family is adding one entry to `FAMILIES`. A builder's fixed settings (seed, iteration caps)
are defaults: a search space may override any of them. Every model is a scikit-learn Pipeline: imputation,
scaling and one-hot encoding of text columns (`prep`), then the estimator (`model`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# scikit-learn is imported inside the functions that use it: `import tracking` stays light.

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class Family:
    """A model family: which tasks it serves, its default space and how to build its estimator."""

    name: str
    tasks: tuple[str, ...]
    space: dict[str, dict[str, Any]]
    build: Callable[[dict[str, Any], int, str], Any]  # (params, seed, task type) -> estimator
    iterative: bool = False  # exposes per-iteration validation scores (a learning curve)
    derived: frozenset[str] = field(default_factory=frozenset)  # space names that are not estimator params
    iterations: str = ""  # the param that sets an iterative family's curve length (max_iter, n_estimators)

    def accepted_params(self, task_type: str) -> set[str]:
        """Names a search space may use: the estimator's own params plus the family's derived ones."""
        return set(self.build({}, 0, task_type).get_params(deep=False)) | set(self.derived)


def _logistic(params: dict[str, Any], seed: int, task: str) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**{"max_iter": 2000, "random_state": seed, **params})


def _random_forest(params: dict[str, Any], seed: int, task: str) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == CLASSIFICATION else RandomForestRegressor
    return cls(**{"random_state": seed, "n_jobs": 1, **params})


def _hist_gb(params: dict[str, Any], seed: int, task: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if task == CLASSIFICATION else HistGradientBoostingRegressor
    return cls(**{"random_state": seed, "early_stopping": False, **params})


def _gradient_boosting(params: dict[str, Any], seed: int, task: str) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(**{"random_state": seed, **params})


def _svm(params: dict[str, Any], seed: int, task: str) -> Any:
    from sklearn.svm import SVC

    return SVC(**{"probability": True, "random_state": seed, **params})


def _knn(params: dict[str, Any], seed: int, task: str) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(**params)


def _mlp(params: dict[str, Any], seed: int, task: str) -> Any:
    from sklearn.neural_network import MLPClassifier

    params = dict(params)
    width, depth = params.pop("hidden_units", 64), params.pop("hidden_layers", 1)
    defaults = {"max_iter": 100, "early_stopping": True, "n_iter_no_change": 10, "random_state": seed}
    return MLPClassifier(hidden_layer_sizes=(int(width),) * int(depth), **{**defaults, **params})


def _ridge(params: dict[str, Any], seed: int, task: str) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(**{"random_state": seed, **params})


def _f(low: float, high: float, log: bool = False) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": log}


def _i(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, "log": log}


def _c(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "logistic_regression",
            (CLASSIFICATION,),
            {"C": _f(1e-3, 1e2, log=True), "class_weight": _c(None, "balanced")},
            _logistic,
        ),
        Family(
            "random_forest",
            (CLASSIFICATION, REGRESSION),
            {
                "n_estimators": _i(20, 200, log=True),
                "max_depth": _i(2, 16),
                "min_samples_leaf": _i(1, 10),
                "max_features": _f(0.1, 1.0),
            },
            _random_forest,
        ),
        Family(
            "hist_gradient_boosting",
            (CLASSIFICATION, REGRESSION),
            {
                "learning_rate": _f(0.01, 0.3, log=True),
                "max_iter": _i(20, 200),
                "max_leaf_nodes": _i(8, 64, log=True),
                "l2_regularization": _f(1e-6, 1.0, log=True),
            },
            _hist_gb,
            iterative=True,
            iterations="max_iter",
        ),
        Family(
            "svm",
            (CLASSIFICATION,),
            {"C": _f(1e-2, 1e2, log=True), "gamma": _f(1e-4, 1.0, log=True)},
            _svm,
        ),
        Family(
            "knn",
            (CLASSIFICATION,),
            {"n_neighbors": _i(1, 30), "weights": _c("uniform", "distance"), "p": _i(1, 2)},
            _knn,
        ),
        Family(
            "mlp",
            (CLASSIFICATION,),
            {
                "hidden_units": _i(16, 128, log=True),
                "hidden_layers": _i(1, 2),
                "alpha": _f(1e-6, 1e-1, log=True),
                "learning_rate_init": _f(1e-4, 1e-1, log=True),
            },
            _mlp,
            iterative=True,
            derived=frozenset({"hidden_units", "hidden_layers"}),
            iterations="max_iter",
        ),
        Family("ridge", (REGRESSION,), {"alpha": _f(1e-3, 1e3, log=True)}, _ridge),
        Family(
            "gradient_boosting",
            (REGRESSION,),
            {
                "n_estimators": _i(20, 200),
                "learning_rate": _f(0.01, 0.3, log=True),
                "max_depth": _i(2, 6),
                "subsample": _f(0.5, 1.0),
            },
            _gradient_boosting,
            iterative=True,
            iterations="n_estimators",
        ),
    )
}


def families_for(task_type: str) -> list[str]:
    """Names of the families that serve a task type."""
    return [name for name, family in FAMILIES.items() if task_type in family.tasks]


def curve_length(family: Family, space: dict[str, dict[str, Any]], task_type: str, folds: int) -> int:
    """The typical number of steps of a trial's learning curve: for an iterative family the middle of its
    searched iteration range (or its fixed or default iteration count), else the number of CV folds."""
    if not family.iterative:
        return folds
    entry = space.get(family.iterations) or {"type": "categorical", "choices": []}
    if entry["type"] != "categorical":
        return int((entry["low"] + entry["high"]) / 2)
    counts = sorted(c for c in entry["choices"] if isinstance(c, int | float) and not isinstance(c, bool))
    return (
        int(counts[len(counts) // 2]) if counts else int(family.build({}, 0, task_type).get_params()[family.iterations])
    )


def make_pipeline(family: Family, params: dict[str, Any], seed: int, task_type: str, X: Any) -> Any:
    """The full model: preprocessing fitted to the frame's column types, then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in X.columns if X[c].dtype.kind in "biuf"]
    other = [c for c in X.columns if c not in numeric]
    parts = [("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric)]
    if other:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(
            ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", encoder)]), other)
        )
    prep = ColumnTransformer(parts, verbose_feature_names_out=False)
    return Pipeline([("prep", prep), ("model", family.build(params, seed, task_type))])
