"""A real S3 API for tests: moto's server mode on a free local port, in a thread of this process.

Clients (s3fs, boto3, and the worker processes a test starts) talk HTTP to it exactly as to S3; nothing of the
client is mocked. Use the `s3_server` (session) and `s3_artifacts` (a fresh bucket per test, with
TRACKING_ARTIFACTS_URL and TRACKING_S3_ENDPOINT_URL set) fixtures of conftest.py, or `S3Server` directly:

    with S3Server() as s3:
        s3.create_bucket("b")
        env = s3.environ("s3://b/prefix")   # TRACKING_ARTIFACTS_URL, TRACKING_S3_ENDPOINT_URL, AWS_* credentials
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

# Fixed test credentials: moto accepts any, and botocore refuses to sign a request without some.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server:
    """moto's S3 server on 127.0.0.1 and a free port; `endpoint` is its URL once started."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> S3Server:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> Any:
        """A boto3 S3 client of this server (to look at or tamper with objects behind the store's back)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def create_bucket(self, name: str | None = None) -> str:
        """A new empty bucket (a unique name unless given); its name."""
        name = name or f"tracking-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        """Every object key in the bucket."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def environ(self, url: str) -> dict[str, str]:
        """The variables that point the library (and the processes it starts) at `url` on this server."""
        return {**CREDENTIALS, "TRACKING_ARTIFACTS_URL": url, "TRACKING_S3_ENDPOINT_URL": self.endpoint}
