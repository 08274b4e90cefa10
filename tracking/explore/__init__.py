"""Reading across runs: the runs table, comparisons, charts of sweeps and comparisons, saved reports and
the self-contained HTML export, the home page overview.
"""

from __future__ import annotations

from tracking.explore._compare import (
    MAX_COMPARE,
    CompareView,
    Comparison,
    champion_challenger,
    compare_runs,
    complete_view,
    guess_direction,
    histories,
    history_keys,
    params_changed,
    parse_ids,
    side_by_side,
)
from tracking.explore._compare_charts import (
    bar_figure,
    delta_figure,
    history_figure,
    parallel_figure,
    scatter_figure,
    text,
    view_figures,
)
from tracking.explore._overview import (
    Overview,
    overview,
)
from tracking.explore._reports import (
    ReportRecord,
    comparison_csv,
    comparison_json,
    delete_report,
    escape_html,
    get_report,
    html_document,
    list_reports,
    markdown_html,
    report_html,
    save_report,
    update_report,
)
from tracking.explore._sweep_charts import (
    sweep_figures,
)
from tracking.explore._table import (
    BASE_COLUMNS,
    SORTABLE,
    RunKeys,
    RunsPage,
    RunsView,
    default_columns,
    list_keys,
    runs_page,
    runs_table_csv,
    runs_table_json,
)

__all__ = [
    "BASE_COLUMNS",
    "MAX_COMPARE",
    "SORTABLE",
    "CompareView",
    "Comparison",
    "Overview",
    "ReportRecord",
    "RunKeys",
    "RunsPage",
    "RunsView",
    "bar_figure",
    "champion_challenger",
    "compare_runs",
    "comparison_csv",
    "comparison_json",
    "complete_view",
    "default_columns",
    "delete_report",
    "delta_figure",
    "escape_html",
    "get_report",
    "guess_direction",
    "histories",
    "history_figure",
    "history_keys",
    "html_document",
    "list_keys",
    "list_reports",
    "markdown_html",
    "overview",
    "parallel_figure",
    "params_changed",
    "parse_ids",
    "report_html",
    "runs_page",
    "runs_table_csv",
    "runs_table_json",
    "save_report",
    "scatter_figure",
    "side_by_side",
    "sweep_figures",
    "text",
    "update_report",
    "view_figures",
]
