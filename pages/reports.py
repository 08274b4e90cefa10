"""Reports: saved comparisons with their notes; open one to see the live comparison again."""

from __future__ import annotations

import streamlit as st

import tracking
from tracking.explore import delete_report, escape_markdown
from tracking.governance import Action, why_not
from ui.data import get_store
from ui.explore import cached_reports, error_box, seed, show_written, sync_url
from ui.frame import in_frame

user = in_frame()

st.title("Reports")
st.caption(
    "A report is a saved comparison: its runs, charts, title and notes. Save one from the **Share** tab of Compare."
)
cannot = why_not(user, Action.report_share)
reports = cached_reports()
if not reports:
    st.info("No saved reports yet. Compare a few runs, then press **Save as report** on the Share tab.")
    st.page_link("pages/runs.py", label="Go to the runs", icon=":material/table_rows:")
    st.stop()

seed({"reports_search": str(st.query_params.get("q", ""))})
search = st.text_input("Search titles and notes", key="reports_search", placeholder="e.g. churn")
sync_url({"q": search})
shown = [r for r in reports if search.lower() in (r.title + "\n" + r.notes).lower()] if search else reports
st.caption(f"{len(shown)} of {len(reports)} reports")
for report in shown:
    with st.container(border=True):
        title, buttons = st.columns([4, 1], vertical_alignment="center")
        title.markdown(f"#### {escape_markdown(report.title)}")
        title.caption(
            f"#{report.id} · {len(report.view.runs)} runs ({', '.join(f'[#{i}](run?id={i})' for i in report.view.runs[:10])}"
            f"{', …' if len(report.view.runs) > 10 else ''}) · changed {report.updated_at:%Y-%m-%d %H:%M} UTC"
            + (f" · by {escape_markdown(report.owner)}" if report.owner else "")
        )
        if report.notes.strip():
            with title.expander("Notes"):
                show_written(report.notes)
        if buttons.button("Open", key=f"open_{report.id}", type="primary", icon=":material/open_in_new:"):
            st.switch_page("pages/compare.py", query_params={**report.view.to_query(), "report": str(report.id)})
        blocked = escape_markdown(cannot) if cannot else None
        with buttons.popover("Delete", icon=":material/delete:", disabled=bool(cannot), help=blocked):
            st.write("Delete this report? Its runs stay.")
            if st.button("Delete for good", key=f"delete_{report.id}", type="primary", disabled=bool(cannot)):
                try:
                    delete_report(get_store(), report.id, actor=user)
                    st.rerun()
                except tracking.TrackingError as err:
                    error_box(err)
