"""What a promotion request's gates and held-out comparison say, for the person who approves.

Gates check only what the policy names. The comparison scores every metric of the task, so a metric can
get clearly worse (its whole interval on the worse side) while every gate passes: a request once read
"4 of 4 gates passed" while log loss went from 0.413 to 0.897. So the summary line counts gates by
state (a gate that does not apply is not a pass) and names how many metrics got worse without a gate,
and `worse_metrics` lists each such metric with the gates that do check it, if any.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracking.ml import Assessment
from tracking.registry._gates import FAILED, NOT_APPLICABLE, PASSED, gate_state

# Gates that judge a metric of the candidate itself (the fairness gate judges a gap between groups).
COVERING_GATES = ("regression", "min_metrics", "max_metrics")


@dataclass(frozen=True)
class WorseMetric:
    """A metric on which the candidate is worse than production beyond the interval of the change."""

    metric: str
    candidate: float
    baseline: float
    confidence: float  # of the interval, e.g. 0.95
    gates: tuple[tuple[str, str], ...]  # (label, state) of each gate result that checks this metric

    @property
    def covered(self) -> bool:
        return bool(self.gates)

    def sentence(self, name: str | None = None) -> str:
        """e.g. "Log loss got worse: 0.413 → 0.897, beyond its 95% interval; no gate covers it." (plain text)"""
        head = (
            f"{name or self.metric} got worse: {_fmt(self.baseline)} → {_fmt(self.candidate)}, "
            f"beyond its {self.confidence * 100:g}% interval"
        )
        if not self.gates:
            return f"{head}; no gate covers it."
        return f"{head}; " + "; ".join(f"the gate “{label}” {state}" for label, state in self.gates) + "."


def clearly_worse(delta: Any) -> bool:
    """Whether the candidate is worse on this metric (an `Assessment`'s delta) and the interval of the change
    holds no improvement: the comparison's "worse, and not by chance"."""
    if not all(math.isfinite(v) for v in (delta.delta, delta.low, delta.high, delta.improvement)):
        return False
    worse_side = delta.high < 0 if delta.direction == "maximize" else delta.low > 0
    return delta.improvement < 0 and worse_side


def worse_metrics(gates: Sequence[Mapping[str, Any]], assessment: Assessment | None) -> list[WorseMetric]:
    """Every metric of the comparison that got clearly worse, in the comparison's order, with the gate results
    (stored form) that check it: the regression gate on that metric, or a bound on its `test_` value."""
    if assessment is None:
        return []
    found = []
    for delta in assessment.deltas:
        if not clearly_worse(delta):
            continue
        names = {delta.metric, f"test_{delta.metric}"}
        checks = tuple(
            (str(g["label"]), gate_state(g))
            for g in gates
            if g.get("gate") in COVERING_GATES and _checked_metric(g) in names
        )
        found.append(WorseMetric(delta.metric, delta.candidate, delta.baseline, assessment.confidence, checks))
    return found


def gate_summary(gates: Sequence[Mapping[str, Any]], worse: Sequence[WorseMetric] = ()) -> str:
    """One line, e.g. "4 of 4 gates passed; 2 metrics got worse without a gate." or "3 of 3 gates passed;
    3 not applicable." A gate that does not apply counts neither as passed nor as failed."""
    states = Counter(gate_state(g) for g in gates)
    line = f"{states[PASSED]} of {states[PASSED] + states[FAILED]} gates passed"
    if states[NOT_APPLICABLE]:
        line += f"; {states[NOT_APPLICABLE]} not applicable"
    uncovered = sum(not w.covered for w in worse)
    if uncovered:
        line += f"; {uncovered} metric{'s' if uncovered != 1 else ''} got worse without a gate"
    return line + "."


def _checked_metric(gate: Mapping[str, Any]) -> str:
    # Results stored before gates named their metric start their label with it ("f1_macro is no worse ...").
    return str(gate.get("metric") or str(gate.get("label", "")).split(" ", 1)[0])


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.3f}"
