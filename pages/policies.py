"""Policies: the promotion gates and monitoring thresholds of each registered model, in plain language and as
YAML; admins edit them."""

from __future__ import annotations

import hashlib

import streamlit as st

import tracking
from tracking.explore import escape_markdown
from tracking.governance import Action, canonical, why_not
from tracking.registry import POLICY_FORMAT, describe_policy, effective_policy, parse_policy, policy_yaml, set_policy
from ui.admin import notice
from ui.data import get_store
from ui.explore import seed, sync_url
from ui.frame import in_frame
from ui.registry import cached_models

user = in_frame()
store = get_store()
st.title("Promotion policies")
st.caption(
    "A model version reaches production only through an approved promotion request; the request records "
    "whether the version passes each gate of its model's policy."
)
models = cached_models()  # keyed on the change marker: a saved policy shows at once
if not models:
    st.info("No registered models yet. Register a model version from a run; its policy then appears here.")
    st.stop()

names = [m.name for m in models]
seed({"policy_model": st.query_params.get("model", "")})
if st.session_state.policy_model not in names:
    st.session_state.policy_model = names[0]
name = st.selectbox("Registered model", names, key="policy_model")
sync_url({"model": name}, defaults={"model": names[0]})
model = models[names.index(name)]
notice()

try:
    policy = effective_policy(store, name)
except tracking.TrackingError as err:  # a stored policy that no longer fits the model's task
    st.error(escape_markdown(err))
    policy = model.policy or {}
else:
    st.markdown(
        ("Its own policy:" if model.policy is not None else "The default policy of its task (no policy was set):")
        + "\n"
        + "\n".join(f"- {line}" for line in describe_policy(policy))
    )

reason = why_not(user, Action.policy_edit)
if reason:
    st.info(escape_markdown(reason))  # first, above the policy it may not edit
    st.code(policy_yaml(policy), language="yaml")
    st.stop()

version = hashlib.sha256(canonical(model.policy).encode()).hexdigest()[:12]  # a saved policy refills the editor
text = st.text_area(
    "Policy (YAML)", policy_yaml(policy), height=280, key=f"policy_text_{model.id}_{version}", help=POLICY_FORMAT
)
save, reset, _ = st.columns([1, 1, 3])
if save.button("Save policy", type="primary", icon=":material/save:"):
    try:
        set_policy(store, name, parse_policy(text), actor=user)
    except tracking.TrackingError as err:
        st.error(escape_markdown(err))
    else:
        notice(f"The policy of {escape_markdown(name)} was saved.")
        st.rerun()
if reset.button(
    "Reset to the default",
    disabled=model.policy is None,
    help="The default of the model's task: no regression on its main metrics (F1 macro, ROC AUC and log loss; "
    "RMSE and MAE for regression) and a fairness gap for a classification task with a sensitive attribute.",
):
    try:
        set_policy(store, name, None, actor=user)
    except tracking.TrackingError as err:
        st.error(escape_markdown(err))
    else:
        notice(f"{escape_markdown(name)} follows the default policy of its task again.")
        st.rerun()
