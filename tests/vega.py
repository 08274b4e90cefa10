"""Reading the Vega-Lite (Altair) charts a page drew, from AppTest's elements or from `chart.to_dict()`."""

from __future__ import annotations

import json
from typing import Any


def specs(at: Any) -> list[dict[str, Any]]:
    """The Vega-Lite spec of each Altair chart the app drew, in page order, with the chart's data put back in.

    Streamlit sends a chart's top-level data beside its spec as Arrow bytes; layers' own data stay inline."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    out = []
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        if chart.proto.data.data:
            frame = convert_arrow_bytes_to_pandas_df(chart.proto.data.data)
            values = [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict("records")]
            spec["data"] = {**spec.get("data", {}), "values": values}
        out.append(spec)
    return out


def layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("layer", [spec])


def rows(spec: dict[str, Any], layer: int | None = None) -> list[dict[str, Any]]:
    """The data values of a layer (its own, else the chart's), or of the chart when `layer` is None."""
    if layer is not None and "values" in layers(spec)[layer].get("data", {}):
        return layers(spec)[layer]["data"]["values"]
    return spec.get("data", {}).get("values", [])


def y_scale(spec: dict[str, Any]) -> str:
    """The value axis' scale type: "log" or "linear"."""
    return layers(spec)[-1]["encoding"]["y"].get("scale", {}).get("type", "linear")


def lines(spec: dict[str, Any]) -> list[str]:
    """The runs drawn, one line each, in legend order."""
    return list(dict.fromkeys(row["run"] for row in rows(spec)))
