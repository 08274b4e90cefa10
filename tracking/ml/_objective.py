"""The built-in objective: stratified K-fold CV on a fixed-seed training split, then a refit scored
on the held-out split.

Metric keys follow DESIGN.md: `cv_<metric>` (mean over folds), `test_<metric>` (held-out split), plus
`fit_seconds`, `predict_ms_per_row` and `model_bytes`. The learning curve is reported step by step
through `on_step` (Optuna prunes there): `val_<metric>`, the per-iteration validation score on fold 0,
for iterative families; `fold_<metric>`, the score of each CV fold, otherwise.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracking.ml._families import CLASSIFICATION, Family, make_pipeline
from tracking.runs import TaskData, dump_model

# NumPy and scikit-learn are imported inside the functions that use them: `import tracking` stays light.

# metric -> "maximize" | "minimize"
CLASSIFICATION_METRICS = {
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "f1_macro": "maximize",
    "roc_auc": "maximize",
    "log_loss": "minimize",
}
REGRESSION_METRICS = {"rmse": "minimize", "mae": "minimize", "r2": "maximize"}
COST_METRICS = {"fit_seconds": "minimize", "predict_ms_per_row": "minimize", "model_bytes": "minimize"}
DEFAULT_METRIC = {"classification": "cv_f1_macro", "regression": "cv_rmse"}
TEST_SIZE = 0.25
CV_FOLDS = 5


def task_metrics(task_type: str) -> dict[str, str]:
    return CLASSIFICATION_METRICS if task_type == CLASSIFICATION else REGRESSION_METRICS


def metric_direction(key: str, task_type: str) -> str | None:
    """The natural direction of a logged metric key (`cv_f1_macro` -> maximize), or None if unknown."""
    if key in COST_METRICS:
        return COST_METRICS[key]
    for prefix in ("cv_", "test_", "val_"):
        if key.startswith(prefix):
            return task_metrics(task_type).get(key[len(prefix) :])
    return None


def score(model: Any, X: Any, y: Any, task_type: str) -> dict[str, float]:
    """Every metric of the task type for a fitted model on (X, y)."""
    import numpy as np
    from sklearn import metrics as m

    if task_type != CLASSIFICATION:
        pred = model.predict(X)
        return {
            "rmse": float(np.sqrt(m.mean_squared_error(y, pred))),
            "mae": float(m.mean_absolute_error(y, pred)),
            "r2": float(m.r2_score(y, pred)),
        }
    proba = model.predict_proba(X)
    return _classification_scores(model.classes_, proba, y)


def _classification_scores(classes: Any, proba: Any, y: Any) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    pred = classes[np.argmax(proba, axis=1)]
    out = {
        "accuracy": float(m.accuracy_score(y, pred)),
        "balanced_accuracy": float(m.balanced_accuracy_score(y, pred)),
        "f1_macro": float(m.f1_score(y, pred, average="macro")),
        "log_loss": float(m.log_loss(y, proba, labels=classes)),
    }
    try:
        if len(classes) == 2:
            out["roc_auc"] = float(m.roc_auc_score(y, proba[:, 1]))
        else:
            out["roc_auc"] = float(m.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    except ValueError:  # a split with a single class present has no ROC AUC
        out["roc_auc"] = float("nan")
    return out


@dataclass
class TrialResult:
    metrics: dict[str, float]
    model: Any
    model_bytes: bytes
    histories: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    X_train: Any
    X_test: Any
    y_train: Any
    y_test: Any
    groups_test: Any | None


def split(data: TaskData, seed: int) -> Split:
    """The fixed-seed train / held-out split (stratified for classification)."""
    from sklearn.model_selection import train_test_split

    stratify = data.y if data.task_type == CLASSIFICATION else None
    index_train, index_test = train_test_split(data.X.index, test_size=TEST_SIZE, random_state=seed, stratify=stratify)
    groups = data.sensitive.loc[index_test] if data.sensitive is not None else None
    return Split(
        data.X.loc[index_train], data.X.loc[index_test], data.y.loc[index_train], data.y.loc[index_test], groups
    )


def train_and_score(
    data: TaskData,
    family: Family,
    params: dict[str, Any],
    seed: int,
    primary: str,
    on_step: Callable[[str, int, float], None],
    folds: int = CV_FOLDS,
) -> TrialResult:
    """Cross-validate, refit and score one configuration.

    Args:
        data: the dataset.
        family: the model family.
        params: the sampled hyperparameters.
        seed: the split / CV / model seed.
        primary: the base metric (e.g. `f1_macro`) whose learning curve is reported.
        on_step: called as (history key, step, value) for every learning-curve point; may raise to prune.
        folds: number of CV folds.
    """
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    parts = split(data, seed)
    classification = data.task_type == CLASSIFICATION
    splitter = (StratifiedKFold if classification else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    fold_scores: list[dict[str, float]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter belongs to the model, not the log
        for fold, (train_idx, val_idx) in enumerate(splitter.split(parts.X_train, parts.y_train)):
            X_tr, X_val = parts.X_train.iloc[train_idx], parts.X_train.iloc[val_idx]
            y_tr, y_val = parts.y_train.iloc[train_idx], parts.y_train.iloc[val_idx]
            model = make_pipeline(family, params, seed, data.task_type, X_tr)
            if family.iterative and fold == 0:
                _fit_with_curve(model, X_tr, y_tr, X_val, y_val, data.task_type, primary, on_step)
            else:
                model.fit(X_tr, y_tr)
            scores = score(model, X_val, y_val, data.task_type)
            fold_scores.append(scores)
            if not family.iterative:
                on_step(f"fold_{primary}", fold, scores[primary])
        model = make_pipeline(family, params, seed, data.task_type, parts.X_train)
        started = time.perf_counter()
        model.fit(parts.X_train, parts.y_train)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        test_scores = score(model, parts.X_test, parts.y_test, data.task_type)
        predict_ms = (time.perf_counter() - started) * 1000 / max(len(parts.X_test), 1)
    blob = dump_model(model)
    metrics = {f"cv_{k}": float(np.nanmean([s[k] for s in fold_scores])) for k in fold_scores[0]}
    metrics.update({f"test_{k}": v for k, v in test_scores.items()})
    metrics.update({"fit_seconds": fit_seconds, "predict_ms_per_row": predict_ms, "model_bytes": float(len(blob))})
    # Iterative families reported their learning curve instead; their fold scores are kept as history.
    histories = {f"fold_{primary}": [s[primary] for s in fold_scores]} if family.iterative else {}
    return TrialResult(metrics, model, blob, histories)


def _fit_with_curve(
    model: Any, X_tr: Any, y_tr: Any, X_val: Any, y_val: Any, task_type: str, primary: str, on_step: Callable
) -> None:
    """Fit an iterative model and report its per-iteration validation score."""
    import numpy as np

    estimator = model.named_steps["model"]
    prep = model.named_steps["prep"]
    key = f"val_{primary}"
    if hasattr(estimator, "partial_fit") and hasattr(estimator, "hidden_layer_sizes"):  # MLP: epoch by epoch
        Xt_tr, Xt_val = prep.fit_transform(X_tr), None
        Xt_val = prep.transform(X_val)
        classes = np.unique(y_tr)
        estimator.set_params(early_stopping=False)
        for epoch in range(estimator.max_iter):
            estimator.partial_fit(Xt_tr, y_tr, classes=classes)
            on_step(key, epoch, curve_score(estimator.classes_, estimator.predict_proba(Xt_val), y_val, primary))
        estimator.set_params(early_stopping=True)
        return
    model.fit(X_tr, y_tr)
    Xt_val = prep.transform(X_val)
    if task_type == CLASSIFICATION:
        for step, proba in enumerate(estimator.staged_predict_proba(Xt_val)):
            on_step(key, step, curve_score(estimator.classes_, proba, y_val, primary))
    else:
        for step, pred in enumerate(estimator.staged_predict(Xt_val)):
            on_step(key, step, _regression_score(primary, y_val, pred))


def curve_score(classes: Any, proba: Any, y: Any, metric: str) -> float:
    """One classification metric of one learning-curve step, as `score` computes it.

    Accuracy, balanced accuracy and macro F1 are counted directly from the predictions: scikit-learn's
    checks cost more than the counting, and a curve asks for a value at each of hundreds of steps.
    """
    import numpy as np

    if metric not in ("accuracy", "balanced_accuracy", "f1_macro"):
        return _classification_scores(classes, proba, y)[metric]
    truth = np.asarray(y)
    pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    if metric == "accuracy":
        return float(np.mean(pred == truth))
    hit = pred == truth
    if metric == "balanced_accuracy":
        return float(np.mean([np.mean(hit[truth == label]) for label in np.unique(truth)]))
    f1 = []
    for label in np.union1d(truth, pred):  # the labels scikit-learn averages over
        tp = np.sum(hit & (truth == label))
        f1.append(2 * tp / (np.sum(truth == label) + np.sum(pred == label)))
    return float(np.mean(f1))


def _regression_score(metric: str, y: Any, pred: Any) -> float:
    import numpy as np
    from sklearn import metrics as m

    if metric == "rmse":
        return float(np.sqrt(m.mean_squared_error(y, pred)))
    if metric == "mae":
        return float(m.mean_absolute_error(y, pred))
    return float(m.r2_score(y, pred))
