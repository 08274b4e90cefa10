"""Every setting of the library, declared once (name, default, help) and read only here.

The README's configuration table is checked against `SETTINGS` by the test suite, so the two cannot drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tracking._errors import ValidationError


@dataclass(frozen=True)
class Setting:
    """One environment variable the library reads."""

    name: str
    default: str | None  # None: unset unless given
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "TRACKING_HOME",
        "~/.tracking",
        "folder of the embedded store (`tracking.db`), the artifacts (`artifacts/`), uploaded CSVs (`uploads/`) and "
        "worker logs (`logs/`); created on first use",
    ),
    Setting(
        "TRACKING_STORE_URL",
        None,
        "a SQLAlchemy URL that replaces the SQLite file, e.g. `postgresql+psycopg://user@host/db` (`postgresql://` "
        "works too and uses psycopg 3)",
    ),
    Setting(
        "TRACKING_HEARTBEAT_SECONDS",
        "10",
        "how often workers refresh their heartbeat; a worker silent for three periods counts as dead",
    ),
    Setting(
        "TRACKING_WORKER_ID",
        None,
        "set by the dashboard and by `sweep`/`resume` for the worker processes they start (the worker row "
        "registered for each before it starts); not something to set by hand",
    ),
    Setting("TRACKING_USER", None, "the account the CLI acts as on a store with accounts"),
    Setting(
        "TRACKING_PASSWORD",
        None,
        "the password of `TRACKING_USER` (asked on the terminal when only the name is set)",
    ),
    Setting(
        "TRACKING_SESSION_MINUTES",
        "30",
        "minutes without activity after which a dashboard session ends (12 hours at most in any case)",
    ),
    Setting(
        "TRACKING_SERVE_TOKEN",
        None,
        "when set, callers of the model server must send `Authorization: Bearer <token>`",
    ),
    Setting(
        "TRACKING_SERVE_SAMPLE",
        "1",
        "the fraction of requests the model server keeps whole in the inference log (`--sample` wins)",
    ),
    Setting(
        "TRACKING_TEST_FAST_HASHES",
        None,
        "tests only: `1` hashes passwords with a cheap argon2 profile so the suite runs fast; never set it in use",
    ),
    Setting(
        "TRACKING_TEST_POSTGRES_URL",
        None,
        "tests only: a PostgreSQL server URL; every store test also runs there, each in a database of its own "
        "that is dropped afterwards",
    ),
    Setting(
        "TRACKING_SSO_CLAIM",
        "email",
        "the OpenID Connect claim whose value is the account name a single sign-on identity is matched to on its "
        "first sign-in (e.g. `email`, `preferred_username`); see [Single sign-on](#single-sign-on)",
    ),
    Setting(
        "TRACKING_STORE_ANCHOR",
        None,
        "the anchor file of a store given by URL (PostgreSQL): its identity and audit heads, kept outside the "
        "database so an emptied, replaced or rolled-back database is refused; a SQLite store's anchor is always "
        "the file beside it (`tracking.db.anchor`)",
    ),
    Setting(
        "TRACKING_AUDIT_KEY_FILE",
        None,
        "the file holding the key that authenticates audit events (HMAC-SHA256); default `audit.key` in "
        "`TRACKING_HOME`, created on first use with permissions 0600",
    ),
    Setting(
        "TRACKING_AUDIT_KEY",
        None,
        "the audit key itself (at least 32 characters), instead of the key file; every process that writes to "
        "the store must have the same key",
    ),
    Setting(
        "TRACKING_WEBHOOK_TIMEOUT_SECONDS",
        "10",
        "seconds a webhook endpoint has to answer one delivery attempt",
    ),
    Setting(
        "TRACKING_WEBHOOK_RETRY_SECONDS",
        "30",
        "wait before the first retry of a failed webhook delivery; doubled after each further failure, at most an hour",
    ),
    Setting(
        "TRACKING_WEBHOOK_ATTEMPTS",
        "8",
        "attempts of one webhook delivery before it is marked failed",
    ),
    Setting(
        "TRACKING_WEBHOOK_POLL_SECONDS",
        "5",
        "how often a running deliverer (in the dashboard or the model server) looks for webhook deliveries queued by "
        "other processes",
    ),
    Setting(
        "TRACKING_TOKEN",
        None,
        "an access token (`python -m tracking tokens create`): scripts, workers and the CLI act as its account on "
        "a store with accounts; the workers a sweep launch starts get a sweep token here",
    ),
    Setting(
        "TRACKING_SWEEP_TOKEN_HOURS",
        "72",
        "hours after which the token given to a sweep's workers expires, if the sweep has not ended before",
    ),
    Setting(
        "TRACKING_SERVER_URL",
        None,
        "the address of a tracking server (`python -m tracking server`), e.g. `http://tracking.example:8765`: "
        "`start_run`, the run reads and `python -m tracking worker` then go through it with `TRACKING_TOKEN`, and "
        "need no store URL; see [Tracking server](#tracking-server)",
    ),
    Setting(
        "TRACKING_INFERENCE_RETENTION_DAYS",
        "90",
        "days the inference log keeps a sampled request (its whole input rows) before `retention run` drops it",
    ),
    Setting(
        "TRACKING_INFERENCE_RETENTION_ROWS",
        "100000",
        "logged requests `retention run` keeps per registered model at most (the newest)",
    ),
    Setting(
        "TRACKING_DASK_SCHEDULER",
        None,
        "the address of a Dask scheduler (e.g. `tcp://dask.internal:8786`) that `sweep --executor dask` and the "
        "dashboard's launch form use by default to run a sweep's workers as tasks on that cluster; see "
        "[Sweeps on a Dask cluster](#sweeps-on-a-dask-cluster)",
    ),
    Setting(
        "TRACKING_ARTIFACTS_URL",
        None,
        "where artifacts, models and uploaded CSVs are kept by sha256: a folder, or an fsspec URL such as "
        "`s3://bucket/prefix` (unset: `TRACKING_HOME/artifacts`); every read is verified against its sha256",
    ),
    Setting(
        "TRACKING_S3_ENDPOINT_URL",
        None,
        "the S3 endpoint for an `s3://` `TRACKING_ARTIFACTS_URL` (MinIO, a local S3), e.g. `http://127.0.0.1:9000`; "
        "credentials come from the standard `AWS_*` variables",
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def settings_markdown() -> str:
    """The README's configuration table, one row per setting (the docs test compares the two)."""
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | {f'`{s.default}`' if s.default else '(unset)'} | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)


def setting(name: str) -> str | None:
    """The value of a declared setting: the environment's (blank counts as unset), else its default."""
    declared = _BY_NAME[name]  # a KeyError here is a bug: every setting is declared above
    value = os.environ.get(name, "").strip()
    return value or declared.default


def number_setting(name: str, minimum: float = 0.0) -> float:
    """A declared setting that is a number above `minimum`.

    Raises:
        ValidationError: the variable holds something else.
    """
    text = setting(name) or ""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > minimum:
        raise ValidationError(f"{name} must be a number above {minimum:g}, not {text!r}.")
    return value


def tracking_home() -> Path:
    """The folder of the embedded store and the artifacts (`TRACKING_HOME`, default ~/.tracking)."""
    return Path(setting("TRACKING_HOME") or "~/.tracking").expanduser().resolve()


def store_url(home: Path | None = None) -> str:
    """The store's SQLAlchemy URL: `TRACKING_STORE_URL`, else a SQLite file under the home folder."""
    url = setting("TRACKING_STORE_URL")
    if url:
        return url
    home = home or tracking_home()
    return f"sqlite:///{home / 'tracking.db'}"
