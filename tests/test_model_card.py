"""Model cards: what a registered version's card gathers, and its markdown and HTML forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.governance import fixed_c, make_accounts, trained_runs
from tests.traffic import rows, serve, shifted
from tracking._errors import NotFoundError
from tracking.production._lifecycle import reproduce_run
from tracking.production._model_card import card_html, card_markdown, model_card
from tracking.production._reviews import open_review
from tracking.registry._models import production_version, register_version, set_policy, update_version_text
from tracking.registry._promotions import approve_promotion, request_promotion
from tracking.store._db import Store, open_store

INTENDED_USE = "<script>alert(1)</script> **bold**"
LIMITATIONS = "Not for applicants under 21 | nor for business loans.\n```\nan example left unclosed"
JUSTIFICATION = "Beats the baseline | on every metric.\nSee the sweep."
COMMENT = "ok | ship it\nwatch the male group"
SECTIONS = ["Intended use", "Limitations", "Training data", "Lineage", "Metrics", "Gate results",
            "Fairness per group", "Approval history", "Monitoring", "Reproduction"]  # fmt: skip
REVIEW_REASON = "Inputs moved | a lot\n<b>see the monitoring page</b>"


@dataclass(frozen=True)
class Registry:
    store: Store
    approved: int  # loan v1: written up, requested by a data scientist, approved by the product owner
    fresh: int  # loan v2: nobody has requested it
    failing: int  # strict v1: requested under a policy one of its gates fails


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One real trained run, reproduced once and registered three times, read by the tests below (none writes)."""
    home = tmp_path_factory.mktemp("cards")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRACKING_HOME", str(home))
        env.setenv("TRACKING_HEARTBEAT_SECONDS", "1")
        env.delenv("TRACKING_STORE_URL", raising=False)
        store = open_store(f"sqlite:///{home / 'tracking.db'}", home=home)
        users = make_accounts(store)
        scientist = users["data_scientist"]
        run = trained_runs(store, 1, actor=scientist, space=fixed_c(10.0))[0]
        approved = register_version(store, run.id, "loan", "first", actor=scientist)
        update_version_text(store, approved.id, intended_use=INTENDED_USE, limitations=LIMITATIONS, actor=scientist)
        request = request_promotion(store, approved.id, JUSTIFICATION, actor=scientist)
        approve_promotion(store, request.id, COMMENT, actor=users["product_owner"])
        fresh = register_version(store, run.id, "loan", "second", actor=scientist)
        failing = register_version(store, run.id, "strict", "", actor=scientist)
        set_policy(store, "strict", {"min_metrics": {"test_accuracy": 0.99}}, actor=users["admin"])
        request_promotion(store, failing.id, "try it", actor=scientist)
        reproduce_run(store, run.id, actor=scientist)
    yield Registry(store, approved.id, fresh.id, failing.id)
    store.dispose()


def _tables(markdown: str) -> list[list[str]]:
    """The markdown's tables, each as its lines."""
    tables: list[list[str]] = [[]]
    for line in markdown.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    return [table for table in tables if table]


def _cell_count(row: str) -> int:
    """Cells of a table row: the pipes no backslash escapes, less one."""
    return re.findall(r"\\.|\|", row).count("|") - 1


def test_model_card_carries_latest_request_gates(registry: Registry) -> None:
    card = model_card(registry.store, registry.approved)
    assert card.gates_request_id == card.approvals[-1].request_id
    assert {gate.gate for gate in card.gates} == {"integrity", "regression", "fairness"}
    assert all(gate.passed for gate in card.gates if gate.gate != "regression")
    # the first version: nothing in production to compare with, so no-regression does not apply (not a pass)
    assert {gate.state for gate in card.gates if gate.gate == "regression"} == {"not applicable"}


def test_model_card_groups_cover_both_genders(registry: Registry) -> None:
    card = model_card(registry.store, registry.approved)
    assert card.sensitive == "gender"
    assert {row.group for row in card.groups} == {"female", "male"}
    assert all(row.n > 0 and 0 < row.candidate["accuracy"] <= 1 for row in card.groups)


def test_model_card_groups_without_request_come_from_registration(registry: Registry) -> None:
    card = model_card(registry.store, registry.fresh)
    assert {row.group for row in card.groups} == {"female", "male"}
    assert "registration" in card.groups_source


def test_model_card_approval_history_names_approver_and_comment(registry: Registry) -> None:
    (entry,) = model_card(registry.store, registry.approved).approvals
    assert (entry.status, entry.requested_by, entry.justification) == ("approved", "data_scientist", JUSTIFICATION)
    assert (entry.decided_by, entry.comment, entry.gates_failed) == ("product_owner", COMMENT, 0)
    assert entry.decided_at is not None


def test_model_card_audit_events_cover_version_and_request(registry: Registry) -> None:
    actions = [event.action for event in model_card(registry.store, registry.approved).events]
    assert actions[0] == "version.register"
    assert {"version.card", "promotion.request", "promotion.approve", "version.stage"} <= set(actions)


def test_model_card_markdown_has_sections_and_dataset_sha256(registry: Registry) -> None:
    card = model_card(registry.store, registry.approved)
    text = card_markdown(card)
    assert text.startswith("# Model card: loan v1\n")
    assert "production" in text.split("\n## ")[0]
    assert [s for s in SECTIONS if f"\n## {s}\n" not in text] == []
    assert re.fullmatch(r"[0-9a-f]{64}", card.lineage["dataset"]["sha256"])
    assert f"`{card.lineage['dataset']['sha256']}`" in text
    assert "_Generated at " in text


def test_model_card_pipe_in_user_text_keeps_markdown_tables_intact(registry: Registry) -> None:
    text = card_markdown(model_card(registry.store, registry.approved))
    assert LIMITATIONS in text  # written text goes in as the markdown it is
    tables = _tables(text)
    assert len(tables) >= 6
    for table in tables:
        assert {_cell_count(row) for row in table} == {_cell_count(table[0])}, table
    assert "ok \\| ship it watch the male group" in text  # the comment, escaped inside its cell


def test_model_card_unclosed_fence_in_limitations_closes_before_next_section(registry: Registry) -> None:
    text = card_markdown(model_card(registry.store, registry.approved))
    before = text.split("\n## Training data\n")[0]
    assert len(re.findall(r"^ {0,3}(?:```|~~~)", before, flags=re.MULTILINE)) % 2 == 0


def test_model_card_html_escapes_written_markup(registry: Registry) -> None:
    page = card_html(model_card(registry.store, registry.approved))
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <strong>bold</strong>" in page


def test_model_card_html_is_self_contained(registry: Registry) -> None:
    page = card_html(model_card(registry.store, registry.approved))
    assert '<meta http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;;' in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE)
    assert "<link" not in page and "<script" not in page


def test_model_card_failed_gate_is_said_in_words(registry: Registry) -> None:
    card = model_card(registry.store, registry.failing)
    assert [gate.gate for gate in card.gates if not gate.passed] == ["min_metrics"]
    page, text = card_html(card), card_markdown(card)
    assert "✗ FAILED" in page and "✓ passed" in page
    assert "| **FAIL** |" in text and "1 of " in text


def test_model_card_unknown_version_raises_not_found(file_store: Store) -> None:
    with pytest.raises(NotFoundError, match="no model version 999"):
        model_card(file_store, 999)


@pytest.mark.file_backends  # sweeps need a store that worker processes could share
def test_model_card_without_request_says_no_gate_results_yet(store: Store) -> None:
    users = make_accounts(store)
    run = trained_runs(store, 1, actor=users["data_scientist"], space=fixed_c(10.0))[0]
    version = register_version(store, run.id, "loan", "", actor=users["data_scientist"])
    card = model_card(store, version.id)
    assert (card.gates, card.gates_request_id, card.approvals) == ([], None, [])
    assert "No gate results yet" in card_markdown(card)
    assert "No gate results yet" in card_html(card)


def test_model_card_shows_the_latest_reproduction_of_its_run(registry: Registry) -> None:
    card = model_card(registry.store, registry.approved)
    attempt = card.reproduction
    assert attempt is not None and attempt.outcome == "matched", attempt
    text, page = card_markdown(card), card_html(card)
    section = text.split("\n## Reproduction\n")[1].split("\n## ")[0]
    assert f"as run {attempt.new_run_id} within 1e-06 by data_scientist on" in section
    assert f"**matched**: All {len(attempt.details['metrics'])} recorded metrics of run" in section
    assert "| test_accuracy |" in section and "| yes |" in section
    assert f"<strong>matched</strong>: {attempt.summary}" in page


def test_model_card_of_a_version_not_in_production_is_not_monitored(registry: Registry) -> None:
    card = model_card(registry.store, registry.fresh)
    assert not card.monitoring.monitored and card.monitoring.breaches == []
    assert "loan v2 is not in production (none), so it is not monitored." in card_markdown(card)
    assert "No open reviews." in card_markdown(card) and "No open reviews." in card_html(card)


def test_model_card_lists_the_breaches_of_shifted_traffic_and_the_open_review(served, template) -> None:
    version = production_version(served, "loan")
    X, _ = rows(served, version, "test")
    requests = serve(served, version, shifted(X))
    open_review(served, version.id, REVIEW_REASON, actor=template.users["data_scientist"])
    card = model_card(served, version.id)
    assert card.monitoring.monitored and {"prediction", "credit_score", "purpose"} <= {
        b.name for b in card.monitoring.breaches
    }
    text, page = card_markdown(card), card_html(card)
    section = text.split("\n## Monitoring\n")[1].split("\n## ")[0]
    assert f"Over the newest {len(requests)} sampled requests to loan v1 ({len(X):,} rows" in section
    assert "| drift | credit_score |" in section and "The feature credit_score drifted from its training" in section
    assert "| Inputs moved \\| a lot <b>see the monitoring page</b> |" in section  # one cell, pipe escaped
    for table in _tables(section):
        assert {_cell_count(row) for row in table} == {_cell_count(table[0])}, table
    assert "The feature credit_score drifted from its training distribution" in page
    assert "Inputs moved | a lot\n&lt;b&gt;see the monitoring page&lt;/b&gt;" in page and "<b>see" not in page


def test_model_card_of_a_production_version_without_requests_says_nothing_was_measured(served) -> None:
    card = model_card(served, production_version(served, "loan").id)
    assert not card.monitoring.monitored and card.monitoring.breaches == []
    text = card_markdown(card)
    assert "No requests to loan v1 have been logged yet, so nothing was measured." in text
    assert f"Run {card.version.run_id} has not been reproduced yet." in text
