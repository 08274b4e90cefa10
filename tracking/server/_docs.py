"""`/docs`: the OpenAPI schema as one HTML page with no script and no outside asset (works offline)."""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "h2{margin-top:2rem;border-bottom:1px solid #ddd}code,pre{background:#f5f5f5;padding:.1rem .3rem}"
    "pre{padding:.5rem;overflow-x:auto}.m{font-weight:bold;display:inline-block;min-width:4rem}"
)


def docs_html(schema: dict[str, Any]) -> str:
    """The page: every path and method with its summary, parameters and request body schema (all escaped)."""
    info = schema.get("info", {})
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info.get('title', 'API'))}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(info.get('title', ''))} "
        f"<small>{html.escape(str(info.get('version', '')))}</small></h1>",
        f"<p>{html.escape(info.get('description', ''))}</p>",
        "<p>The machine-readable schema: <a href='/openapi.json'>/openapi.json</a>. Every call but this page and the "
        "schema sends <code>Authorization: Bearer &lt;access token&gt;</code>.</p>",
    ]
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            parts.append(
                f"<h2><span class='m'>{html.escape(method.upper())}</span> <code>{html.escape(path)}</code></h2>"
            )
            parts.append(f"<p>{html.escape(operation.get('summary', ''))}</p>")
            if operation.get("description"):
                parts.append(f"<p>{html.escape(operation['description'])}</p>")
            params = operation.get("parameters", [])
            if params:
                items = "".join(
                    f"<li><code>{html.escape(p['name'])}</code> ({html.escape(p.get('in', ''))}"
                    f"{', required' if p.get('required') else ''})</li>"
                    for p in params
                )
                parts.append(f"<p>Parameters:</p><ul>{items}</ul>")
            body = operation.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                text = json.dumps(content.get("schema", {}), indent=2)
                parts.append(f"<p>Body ({html.escape(media)}):</p><pre>{html.escape(text)}</pre>")
    if schema.get("components", {}).get("schemas"):
        parts.append("<h2>Schemas</h2>")
        for name, item in schema["components"]["schemas"].items():
            parts.append(f"<h3>{html.escape(name)}</h3><pre>{html.escape(json.dumps(item, indent=2))}</pre>")
    parts.append("</body></html>")
    return "".join(parts)
