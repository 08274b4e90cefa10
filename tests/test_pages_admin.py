"""Signing in and the admin pages (users, audit, policies) under Streamlit's AppTest, against a real store."""

from __future__ import annotations

import csv
import io

import pytest
import streamlit.testing.v1.app_test as app_test
import yaml
from sqlalchemy import update
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

import tracking
from tests.conftest import ROOT
from tests.governance import PASSWORD, trained_runs
from tests.pages import shown_text
from tracking.governance._access import authenticate, create_user, get_user, list_users, set_role
from tracking.governance._audit import list_events, verify_chain
from tracking.registry._models import effective_policy, register_version
from tracking.store._tables import AuditEvent
from tracking.sweeps._sweeps import SweepSpec

BUILDERS = "data scientists, engineers and admins"  # the roles that launch, cancel and resume sweeps
GOOD_POLICY = {"min_metrics": {"test_f1_macro": 0.5}, "regression": {"metric": "accuracy", "tolerance": 0.02}}


@pytest.fixture
def loan_model(users):
    """A registered model `loan` with one version, trained for real by the data scientist (about 2 s)."""
    store = tracking.open_store()
    (run,) = trained_runs(store, 1, actor=users["data_scientist"])
    register_version(store, run.id, "loan", actor=users["data_scientist"])
    return "loan"


@pytest.fixture
def downloads(monkeypatch):
    """The data behind each deferred download button: AppTest's own media manager, remembering what it was given."""
    given = {}

    class Remembering(MediaFileManager):
        def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, *, element_id=""):
            file_id = super().add_deferred(
                data_callable, mimetype, coordinates, file_name=file_name, element_id=element_id
            )
            given[file_id] = data_callable
            return file_id

    monkeypatch.setattr(app_test, "MediaFileManager", Remembering)
    return given


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def _signed_in(role: str, path: str, **query: str) -> AppTest:
    from tests.pages import signed_in_app

    at = signed_in_app(role)
    at.query_params.update(query)
    return _ok(at.switch_page(path).run())


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception[0].value if at.exception else ""
    return at


def _field(at: AppTest, label: str):
    return next(t for t in at.text_input if t.label == label)


def _button(at: AppTest, label: str):
    return next(b for b in [*at.button, *at.form_submit_button] if b.label == label)


def _sign_in_form(at: AppTest, name: str, password: str) -> AppTest:
    _field(at, "Account name").set_value(name)
    _field(at, "Password").set_value(password)
    return _ok(_button(at, "Sign in").click().run())


def _signed_in_as(at: AppTest) -> str:
    return next((c.value for c in at.sidebar.caption if c.value.startswith("Signed in as")), "")


# -- signing in ----------------------------------------------------------------------------------------


def test_pages_admin_first_start_creates_the_first_admin_and_signs_in():
    at = _ok(_app().run())
    assert [s.value for s in at.subheader] == ["Create the first admin"]
    _field(at, "Account name").set_value("boss")
    _field(at, "Password").set_value(PASSWORD)
    _field(at, "Repeat the password").set_value(PASSWORD)
    _ok(_button(at, "Create admin and sign in").click().run())
    assert _signed_in_as(at) == "Signed in as **boss** (admin)"
    assert at.title[0].value == "Experiment tracking" and not at.subheader  # the home page, no form
    assert get_user(tracking.open_store(), "boss").role == "admin"


def test_pages_admin_wrong_password_shows_an_error_and_opens_no_session(users):
    at = _sign_in_form(_ok(_app().run()), "viewer", "not-the-password")
    assert [e.value for e in at.error] == ["Wrong account name or password."]
    assert "session_token" not in at.session_state and not _signed_in_as(at)
    assert [s.value for s in at.subheader] == ["Sign in"]


def test_pages_admin_sign_in_through_the_form(users):
    at = _sign_in_form(_ok(_app().run()), "engineer", PASSWORD)
    assert _signed_in_as(at) == "Signed in as **engineer** (engineer)"


@pytest.mark.parametrize(("role", "label"), [("viewer", "viewer"), ("product_owner", "product owner")])
def test_pages_admin_launch_form_gives_way_to_the_reason_for_roles_that_may_not(role, label):
    at = _signed_in(role, "pages/sweeps.py")
    assert not [b for b in at.button if b.key == "launch"] and not at.selectbox  # no form to fill in for nothing
    assert at.info[-1].value.startswith(f"Your role ({label}) may not launch sweeps; {BUILDERS} can.")


def test_pages_admin_launch_is_enabled_for_a_data_scientist():
    at = _signed_in("data_scientist", "pages/sweeps.py")
    assert not at.button(key="launch").disabled


def test_pages_admin_a_viewer_cannot_cancel_a_sweep_and_sees_why(users):
    store = tracking.open_store()
    spec = SweepSpec(objective="tests.objectives:quadratic", space={"x": {"type": "float", "low": -1.0, "high": 1.0}},
                     metrics=["value:min"], n_trials=2)  # fmt: skip
    sweep = tracking.create_sweep(store, spec, actor=users["data_scientist"])  # pending: no worker started
    at = _signed_in("viewer", "pages/sweep.py", id=str(sweep.id))
    cancel = _button(at, "Cancel")
    assert cancel.disabled and cancel.help == f"Your role (viewer) may not cancel sweeps; {BUILDERS} can."
    with pytest.raises(tracking.PermissionDenied):  # the store refuses whatever the page shows
        tracking.cancel_sweep(store, sweep.id, actor=users["viewer"])
    assert not tracking.get_sweep(store, sweep.id).cancel_requested


# -- users ---------------------------------------------------------------------------------------------


def test_pages_users_admin_adds_an_account_that_can_sign_in():
    at = _signed_in("admin", "pages/users.py")
    at.text_input(key="new_name").set_value("carol")
    at.selectbox(key="new_role").set_value("engineer")
    at.text_input(key="new_password").set_value("carol-secret-1")
    at.text_input(key="new_repeat").set_value("carol-secret-1")
    _ok(_button(at, "Add account").click().run())
    assert at.success[0].value == "Account carol added as engineer."
    assert "carol" in list(at.dataframe[0].value["account"])
    store = tracking.open_store()
    assert get_user(store, "carol").role == "engineer"
    (event,) = list_events(store, action="user.create", object_id="carol")
    assert event.actor == "admin"
    fresh = _sign_in_form(_ok(_app().run()), "carol", "carol-secret-1")
    assert _signed_in_as(fresh) == "Signed in as **carol** (engineer)"


def test_pages_users_two_different_passwords_add_nobody():
    at = _signed_in("admin", "pages/users.py")
    at.text_input(key="new_name").set_value("dave")
    at.text_input(key="new_password").set_value("dave-secret-1")
    at.text_input(key="new_repeat").set_value("dave-secret-2")
    _ok(_button(at, "Add account").click().run())
    assert [e.value for e in at.error] == ["The two passwords differ."]
    assert "dave" not in [u.name for u in list_users(tracking.open_store())]


def test_pages_users_admin_changes_a_role_and_disables_an_account():
    at = _signed_in("admin", "pages/users.py")
    at.selectbox(key="users_account").set_value("viewer").run()
    viewer = get_user(tracking.open_store(), "viewer")
    at.selectbox(key=f"users_role_{viewer.id}_viewer").set_value("product_owner").run()
    _ok(_button(at, "Change role").click().run())
    assert at.success[0].value == "viewer is now product owner."
    _ok(_button(at, "Disable viewer").click().run())
    viewer = get_user(tracking.open_store(), "viewer")
    assert viewer.role == "product_owner" and viewer.disabled
    assert [e.action for e in list_events(tracking.open_store(), object_id="viewer")][:2] == [
        "user.disable",
        "user.set_role",
    ]


def test_pages_users_the_last_admin_keeps_the_role_with_the_reason():
    at = _signed_in("admin", "pages/users.py")
    at.selectbox(key="users_account").set_value("admin").run()
    admin = get_user(tracking.open_store(), "admin")
    at.selectbox(key=f"users_role_{admin.id}_admin").set_value("viewer").run()
    _ok(_button(at, "Change role").click().run())
    assert [e.value for e in at.error] == ["admin is the last admin; make another account admin first."]
    assert get_user(tracking.open_store(), "admin").role == "admin"


@pytest.mark.parametrize("role", ["data_scientist", "product_owner", "viewer"])
def test_pages_users_non_admins_see_the_accounts_but_no_controls(role):
    at = _signed_in(role, "pages/users.py")
    assert [i.value for i in at.info] == ["Only admins manage accounts."]
    assert "admin" in list(at.dataframe[0].value["account"])
    assert not at.form_submit_button and not at.selectbox
    assert [b.label for b in at.button] == ["Sign out"]


# -- audit ---------------------------------------------------------------------------------------------


@pytest.fixture
def second_admin(users):
    """The engineer made admin, who then adds the account `late`: events by two actors."""
    store = tracking.open_store()
    set_role(store, users["admin"], "engineer", "admin")
    engineer = authenticate(store, "engineer", PASSWORD)
    create_user(store, engineer, "late", "viewer", PASSWORD)
    return engineer


def test_pages_audit_lists_account_events_newest_first(second_admin):
    at = _signed_in("admin", "pages/audit.py")
    table = at.dataframe[0].value
    assert list(table["seq"]) == sorted(table["seq"], reverse=True) and len(table) == 8
    assert list(table["action"][:2]) == ["user.create", "user.set_role"]
    assert table["after"].iloc[0] == '{"name":"late","role":"viewer"}'
    assert table["before"].iloc[1] == '{"role":"engineer"}'


def test_pages_audit_filters_by_actor_and_keeps_the_filter_in_the_address(second_admin):
    at = _signed_in("admin", "pages/audit.py")
    at.selectbox(key="audit_actor").set_value("engineer").run()
    table = _ok(at).dataframe[0].value
    assert list(table["object id"]) == ["late"] and list(table["actor"]) == ["engineer"]
    assert at.query_params["actor"] == "engineer"
    shared = _signed_in("viewer", "pages/audit.py", actor="admin", action="user.", object="late")
    assert list(shared.dataframe[0].value["object id"]) == []  # `late` was added by the engineer
    shared = _signed_in("viewer", "pages/audit.py", actor="admin", action="user.set_role")
    assert list(shared.dataframe[0].value["object id"]) == ["engineer"]
    assert shared.selectbox(key="audit_action").value == "user.set_role"


def test_pages_audit_filters_by_day(second_admin):
    at = _signed_in("admin", "pages/audit.py", to="2000-01-01")
    assert at.dataframe[0].value.empty and at.query_params["to"] == "2000-01-01"
    at = _signed_in("admin", "pages/audit.py", **{"from": "2000-01-01"})
    assert len(at.dataframe[0].value) == 8


def test_pages_audit_csv_download_holds_the_filtered_events(second_admin, downloads):
    at = _signed_in("admin", "pages/audit.py", actor="admin")
    data = downloads[at.download_button(key="audit_csv").proto.deferred_file_id]()
    rows = list(csv.DictReader(io.StringIO(data)))
    assert len(rows) == 7 and {r["actor"] for r in rows} == {"admin"}
    assert [r["object_id"] for r in rows][:2] == ["engineer", "data_scientist_2"]
    assert rows[0]["after"] == '{"role":"admin"}'


def test_pages_audit_verify_reports_an_intact_chain(second_admin):
    at = _signed_in("admin", "pages/audit.py")
    _ok(_button(at, "Verify the chain").click().run())
    head = verify_chain(tracking.open_store()).head
    assert at.success[0].value == f"The audit trail is intact: 8 events verified; head hash `{head}`."


def test_pages_audit_verify_names_an_edited_event(second_admin):
    store = tracking.open_store()
    with store.connect(write=True) as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    at = _signed_in("admin", "pages/audit.py")
    _ok(_button(at, "Verify the chain").click().run())
    assert "FAILED verification" in at.error[0].value
    assert "Event 3 (user.create by mallory) was edited after it was recorded." in at.error[0].value


# -- policies ------------------------------------------------------------------------------------------


def _policy_page(role: str) -> AppTest:
    return _signed_in(role, "pages/policies.py", model="loan")


def test_pages_policies_admin_saves_a_valid_yaml_policy(loan_model):
    store = tracking.open_store()
    at = _policy_page("admin")
    assert at.selectbox(key="policy_model").value == "loan" and at.query_params["model"] == "loan"
    assert yaml.safe_load(at.text_area[0].value) == effective_policy(store, "loan")
    at.text_area[0].set_value(yaml.safe_dump(GOOD_POLICY))
    _ok(_button(at, "Save policy").click().run())
    assert at.success[0].value == "The policy of loan was saved."
    policy = effective_policy(store, "loan")
    assert policy["min_metrics"] == {"test_f1_macro": 0.5} and policy["regression"]["tolerance"] == 0.02
    assert "fairness" not in policy
    (event,) = list_events(store, action="policy.edit")
    assert event.actor == "admin" and event.object_id == "loan" and event.after == policy
    assert yaml.safe_load(at.text_area[0].value) == policy  # the editor shows what was saved
    assert "`test_f1_macro` is at least 0.5" in at.markdown[0].value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_metrics: {test_f1_macro: 0.5", "The policy is not valid YAML (line 1)"),
        ("regression: {metric: test_rmse}", "The policy's regression metric 'test_rmse' is not a classification"),
        ("speed: fast", "The policy has an unknown gate 'speed'"),
        ("   ", "The policy is empty"),
    ],
    ids=["yaml", "metric", "gate", "empty"],
)
def test_pages_policies_a_malformed_policy_is_one_sentence_and_saves_nothing(loan_model, text, message):
    store = tracking.open_store()
    before = effective_policy(store, "loan")
    at = _policy_page("admin")
    at.text_area[0].set_value(text)
    _ok(_button(at, "Save policy").click().run())
    error = shown_text(at.error[0].value)  # the sentence as the reader sees it (escaped markdown)
    assert len(at.error) == 1 and error.startswith(message), error
    assert error.count(". ") == 0 and error.endswith(".")
    assert effective_policy(store, "loan") == before and not list_events(store, action="policy.edit")
    assert at.text_area[0].value == text  # the text stays to be fixed


def test_pages_policies_reset_to_the_default(loan_model):
    store = tracking.open_store()
    default = effective_policy(store, "loan")
    at = _policy_page("admin")
    assert _button(at, "Reset to the default").disabled  # nothing set yet
    at.text_area[0].set_value(yaml.safe_dump(GOOD_POLICY))
    _ok(_button(at, "Save policy").click().run())
    _ok(_button(at, "Reset to the default").click().run())
    assert effective_policy(store, "loan") == default
    assert list_events(store, action="policy.edit")[0].after is None


def test_pages_policies_a_data_scientist_reads_the_policy(loan_model):
    at = _policy_page("data_scientist")
    assert not at.text_area and "Save policy" not in [b.label for b in at.button]
    assert yaml.safe_load(at.code[0].value) == effective_policy(tracking.open_store(), "loan")
    assert at.info[0].value == "Your role (data scientist) may not edit promotion policies; only admins can."
    lines = at.markdown[0].value
    assert lines.startswith("The default policy of its task") and "**Integrity**" in lines and "No regression" in lines


def test_pages_policies_without_registered_models_explains():
    at = _signed_in("admin", "pages/policies.py")
    assert "No registered models yet" in at.info[0].value
