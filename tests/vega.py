"""Reading the Vega-Lite (Altair) charts a page drew, from AppTest's elements or from `chart.to_dict()`."""

from __future__ import annotations

import json
from typing import Any


def specs(at: Any) -> list[dict[str, Any]]:
    """The Vega-Lite spec of each Altair chart the app drew, in page order, with the chart's data put back in.

    Streamlit sends a chart's data frames beside its spec as Arrow bytes (named datasets, or the top-level data);
    they come back under `datasets` by name, or as the top-level data's values, as in `chart.to_dict()`."""
    out = []
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        named = {dataset.name: _values(dataset.data.data) for dataset in chart.proto.datasets}
        if named:
            spec["datasets"] = {**spec.get("datasets", {}), **named}
        if chart.proto.data.data:
            spec["data"] = {**spec.get("data", {}), "values": _values(chart.proto.data.data)}
        out.append(spec)
    return out


def _values(arrow: bytes) -> list[dict[str, Any]]:
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    frame = convert_arrow_bytes_to_pandas_df(arrow)
    return [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict("records")]


def layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("layer", [spec])


def rows(spec: dict[str, Any], layer: int | None = None) -> list[dict[str, Any]]:
    """The data values of a layer (its own, else the chart's), or of the chart when `layer` is None."""
    data = layers(spec)[layer].get("data", {}) if layer is not None else {}
    data = data or spec.get("data", {})
    if "values" in data:
        return data["values"]
    return spec.get("datasets", {}).get(data.get("name"), [])


def y_scale(spec: dict[str, Any]) -> str:
    """The value axis' scale type: "log" or "linear"."""
    return layers(spec)[-1]["encoding"]["y"].get("scale", {}).get("type", "linear")


def lines(spec: dict[str, Any]) -> list[str]:
    """The runs drawn, one line each, in legend order."""
    return list(dict.fromkeys(row["run"] for row in rows(spec)))
