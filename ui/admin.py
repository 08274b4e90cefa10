"""Pieces of the admin pages (users, audit, policies), and the reason a page gives for a disabled button.

Buttons are only disabled here to say why; the store refuses the change anyway (`tracking.governance._access`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import pandas as pd
import streamlit as st

import tracking
from tracking.governance import DESCRIPTIONS, ROLE_LABELS, Action, AuditRecord, UserRecord, canonical
from tracking.ml import CLASSIFICATION_METRICS, REGRESSION_METRICS
from tracking.registry import MONITORING, normalize_monitoring
from tracking.store import Role

ROLES = [role.value for role in Role]
# Groups of audit actions to pick from (`promotion.` matches every action under it); exact ones are typed.
ACTION_GROUPS = sorted({action.value.split(".")[0] + "." for action in Action})


def why_not(user: UserRecord, action: Action) -> str | None:
    """None when the user's role allows the action, else the sentence to show on its disabled button."""
    if user.may(action):
        return None
    return f"Your role ({user.role_label}) cannot {DESCRIPTIONS[action]}."


def role_label(role: str) -> str:
    """A role as people read it ("data scientist")."""
    return ROLE_LABELS[Role(role)]


def users_frame(users: list[UserRecord]) -> pd.DataFrame:
    """Accounts as a table: name, role, whether disabled, when created (UTC)."""
    return pd.DataFrame(
        [
            {"account": u.name, "role": u.role_label, "disabled": u.disabled, "created (UTC)": u.created_at}
            for u in users
        ],
        columns=["account", "role", "disabled", "created (UTC)"],
    )


def password_twice(key: str) -> tuple[str, str]:
    """Two password fields (inside a form): the password and its repetition."""
    password = st.text_input("Password", type="password", key=f"{key}_password", help="At least 8 characters.")
    return password, st.text_input("Repeat the password", type="password", key=f"{key}_repeat")


def notice(text: str | None = None) -> None:
    """Keep a success message for the next run (`st.rerun` drops this run's output), or show the kept one."""
    if text is not None:
        st.session_state["admin_notice"] = text
    elif kept := st.session_state.pop("admin_notice", None):
        st.success(kept, icon=":material/check_circle:")


# -- audit ---------------------------------------------------------------------------------------------


def events_frame(events: list[AuditRecord]) -> pd.DataFrame:
    """Audit events as a table, newest first as given; before/after as compact JSON."""
    return pd.DataFrame(
        [
            {"seq": e.seq, "recorded (UTC)": e.recorded_at.replace("T", " ").rstrip("Z")[:23], "actor": e.actor,
             "action": e.action, "object type": e.object_type, "object id": e.object_id,
             "before": "" if e.before is None else canonical(e.before),
             "after": "" if e.after is None else canonical(e.after), "hash": e.hash[:12]}
            for e in events
        ],
        columns=["seq", "recorded (UTC)", "actor", "action", "object type", "object id", "before", "after", "hash"],
    )  # fmt: skip


def day_bounds(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """Two picked days as UTC bounds: the start of the first and the end of the last (None: open)."""
    since = datetime.combine(first, time.min, UTC) if first else None
    return since, datetime.combine(last, time.max, UTC) if last else None


def parse_day(text: str) -> date | None:
    """A `YYYY-MM-DD` date from the address, or None when absent or malformed."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


# -- policies ------------------------------------------------------------------------------------------


def policy_lines(policy: Mapping[str, Any]) -> list[str]:
    """A validated promotion policy in plain language: one line per gate, integrity first (it always runs), then
    the monitoring thresholds."""
    lines = ["**Integrity** (always): the model file's sha256 verifies and its training dataset version is recorded."]
    for key, label, word in (
        ("min_metrics", "Minimum metrics", "at least"),
        ("max_metrics", "Maximum metrics", "at most"),
    ):
        if policy.get(key):
            lines.append(f"**{label}**: " + "; ".join(f"`{m}` is {word} {v:g}" for m, v in policy[key].items()) + ".")
        elif key in policy:
            lines.append(f"**{label}**: none listed.")
    if "regression" in policy:
        r = policy["regression"]
        change = f"drops by at most {r['tolerance']:g}" if r["tolerance"] else "is no worse"
        lines.append(
            f"**No regression**: the candidate's `{r['metric']}` {change} against the production model on the same "
            f"held-out rows ({r['confidence']:.0%} interval from {r['bootstrap']} bootstrap resamples)."
        )
    if "fairness" in policy:
        f = policy["fairness"]
        lines.append(
            f"**Fairness**: `{f['metric']}` differs by at most {f['max_gap']:g} between the groups of the "
            "sensitive attribute."
        )
    lines.append(monitoring_line(policy.get(MONITORING)))
    return lines


def monitoring_line(settings: Mapping[str, Any] | None) -> str:
    """The policy's `monitoring` thresholds (or the defaults) in plain words: alerts on the served model, no gate."""
    m = normalize_monitoring(settings)
    own = "" if settings else "; none are set, so the defaults apply"
    directions = {**CLASSIFICATION_METRICS, **REGRESSION_METRICS}
    bounds = [
        f"`{metric}` {'at most' if directions.get(metric) == 'minimize' else 'at least'} {bound:g}"
        for metric, bound in m["quality"].items()
    ]
    quality = f"on requests whose true labels came back, {'; '.join(bounds)}" if bounds else "no bound set"
    return (
        f"**Monitoring** (alerts on the version in production, never a gate{own}): an input feature or the predictions "
        f"drift when their population stability index reaches {m['psi']:g} and the test's p-value falls below "
        f"{m['ks_pvalue']:g} (Kolmogorov-Smirnov, for numbers) or {m['chi2_pvalue']:g} (chi-square, for "
        f"categories); nothing is judged on fewer than {m['min_rows']} logged rows. Quality: {quality}."
    )


def policy_yaml(policy: Mapping[str, Any]) -> str:
    """A policy as YAML, gates in their order."""
    import yaml

    return yaml.safe_dump(dict(policy), sort_keys=False, default_flow_style=False) if policy else "{}\n"


def parse_policy(text: str) -> Any:
    """The policy typed as YAML (or JSON). Raises ValidationError in one sentence for text that is not YAML."""
    import yaml

    if not text.strip():
        raise tracking.ValidationError(
            "The policy is empty: write at least one gate, `{}` for none, or press Reset to the default."
        )
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(err, "problem", None) or "it cannot be read"
        raise tracking.ValidationError(f"The policy is not valid YAML{line}: {problem}.") from None
