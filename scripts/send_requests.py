"""Send rows of a CSV file to a running model server, optionally shifted, and feed back their labels.

    python scripts/send_requests.py loans.csv --target approved --drop gender --rows 300
    python scripts/send_requests.py loans.csv --target approved --drop gender --rows 300 --shift 1.6

`--shift F` multiplies every numeric feature by F and maps each text category to another one: traffic
that no longer looks like the training data, for trying the monitoring page. With `--feedback` the
target column's values are sent back as ground truth (POST /feedback) after each prediction.
Uses only the standard library and pandas; the token comes from TRACKING_SERVE_TOKEN when set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

import pandas as pd


def _post(url: str, body: dict, token: str | None) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--target", required=True, help="the label column (not sent as a feature)")
    parser.add_argument("--drop", action="append", default=[], help="another column not to send (e.g. gender)")
    parser.add_argument("--rows", type=int, default=200, help="how many rows to send, one request each")
    parser.add_argument("--shift", type=float, help="scale numeric features by this factor and remap categories")
    parser.add_argument("--feedback", action="store_true", help="send each row's label back after predicting")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    token = os.environ.get("TRACKING_SERVE_TOKEN")
    frame = pd.read_csv(args.csv).sample(n=args.rows, replace=True, random_state=args.seed)
    labels = frame[args.target].tolist()
    features = frame.drop(columns=[args.target, *args.drop])
    if args.shift:
        for column in features.columns:
            if pd.api.types.is_numeric_dtype(features[column]):
                features[column] = features[column] * args.shift
            else:
                values = sorted(features[column].dropna().unique())
                features[column] = features[column].map(dict(zip(values, values[1:] + values[:1], strict=True)))
    sent = failed = 0
    for (_, row), label in zip(features.iterrows(), labels, strict=True):
        body = {"rows": [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}]}
        try:
            answer = _post(f"{args.url}/predict", body, token)
            if args.feedback:
                _post(f"{args.url}/feedback", {"request_id": answer["request_id"], "labels": [label]}, token)
            sent += 1
        except urllib.error.HTTPError as err:
            failed += 1
            print(f"HTTP {err.code}: {err.read().decode(errors='replace')}", file=sys.stderr)
    print(f"sent {sent} request(s){' with feedback' if args.feedback else ''}, {failed} refused")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
