"""Monitoring: drift, prediction drift, quality and serving health of a model in production (`?model=NAME`)."""

from __future__ import annotations

import streamlit as st

from tracking.explore import escape_markdown, text
from ui.explore import seed, sync_url
from ui.frame import in_frame
from ui.monitoring import (
    DEFAULT_WINDOW,
    WINDOWS,
    breach_banner,
    cached_report,
    distribution_figure,
    drift_frame,
    prediction_sentence,
    psi_figure,
    quality_frame,
    refresh,
    review_panel,
    serving_figure,
    serving_metrics,
)
from ui.registry import cached_models

user = in_frame()

st.title("Monitoring")
models = [m for m in cached_models() if m.production_version]
if not models:
    st.info(
        "No model is in production yet, so none is served. Promote a version through a promotion request "
        "(Models → a version → Request promotion), then serve it:\n\n```\npython -m tracking serve --model NAME\n```"
    )
    st.stop()

names = [m.name for m in models]
wanted, window = str(st.query_params.get("model", "")), str(st.query_params.get("window", ""))
seed({"monitoring_model": wanted if wanted in names else names[0],
      "monitoring_window": window if window in WINDOWS else DEFAULT_WINDOW})  # fmt: skip
if st.session_state["monitoring_model"] not in names:  # taken out of production since
    st.session_state["monitoring_model"] = names[0]
left, middle, right = st.columns([2, 2, 1], vertical_alignment="bottom")
name = left.selectbox("Model in production", names, key="monitoring_model")
window = middle.selectbox("Requests from", list(WINDOWS), format_func=lambda k: WINDOWS[k][0], key="monitoring_window")
if right.button("Refresh", icon=":material/refresh:", help="Read the newest requests now (otherwise within a minute)"):
    refresh()
sync_url({"model": name, "window": window}, defaults={"model": names[0], "window": DEFAULT_WINDOW})

report = cached_report(name, window)
if isinstance(report, str):
    st.error(escape_markdown(report), icon=":material/error:")
    st.stop()

if not report.has_data:
    st.info(
        f"No requests to {escape_markdown(report.label)} were logged in {WINDOWS[window][0]}. Serve the model and send it "
        # a name holds no line break (the registry refuses control characters), so it cannot end the fence
        f"requests; the server logs them here:\n\n```\npython -m tracking serve --model {name}\n```",
        icon=":material/sensors_off:",
    )
else:
    breach_banner(report)
    first, last = report.first_at, report.last_at
    span = f" from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC" if first and last else ""
    st.caption(
        f"{escape_markdown(report.label)}: {report.n_requests:,} sampled requests ({report.n_rows:,} rows){span}, compared with "
        "the rows the version trained on."
    )

    st.subheader("Requests")
    serving_metrics(report)
    if report.serving.minutes:
        st.plotly_chart(serving_figure(report), key="monitoring_serving")

    st.subheader("Input drift")
    if report.features:
        st.dataframe(drift_frame(report), hide_index=True, width="stretch")
        st.caption(
            "PSI: the population stability index over 10 quantile bins of the training values (categories for "
            "a categorical feature). KS: the two-sample Kolmogorov-Smirnov test; χ²: the chi-square test of the "
            "category counts. A feature drifts when both cross the policy's thresholds."
        )
        chart, detail = st.columns(2)
        chart.plotly_chart(psi_figure(report), key="monitoring_psi")
        features = [d.name for d in sorted(report.features, key=lambda d: -d.psi)]
        chosen = detail.selectbox("Distribution of", features, key="monitoring_feature")
        drift = next(d for d in report.features if d.name == chosen)
        detail.plotly_chart(
            distribution_figure(drift, f"{text(chosen)}: training vs recent"), key="monitoring_distribution"
        )
    else:
        st.caption("Not measured yet (see the note above).")

    st.subheader("Prediction drift")
    if report.prediction is not None:
        st.markdown(prediction_sentence(report.prediction))
        st.plotly_chart(
            distribution_figure(report.prediction, "Predictions: on the training rows vs recent"),
            key="monitoring_prediction",
        )
    else:
        st.caption("Not measured yet (see the note above).")

    st.subheader("Quality")
    if report.quality:
        st.markdown(f"On the **{report.n_labelled:,}** rows whose true labels came back:")
        st.dataframe(quality_frame(report), hide_index=True)
    else:
        st.caption(
            "No labelled requests yet: once the true outcomes are known, send them to the server's `POST /feedback` "
            "with the request id, and the task's metrics appear here beside the held-out scores."
        )

st.subheader("Reviews")
review_panel(report if report.has_data else None, report.version_id, report.label, name, user)
