"""A real S3 endpoint for tests: moto's server on 127.0.0.1, reached through an endpoint URL the
way boto3 reaches OSS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@contextmanager
def model_bucket(endpoint: str, name: str):
    """An empty bucket, emptied and removed again afterwards."""
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=name)
    try:
        yield s3
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=obj["Key"])
        s3.delete_bucket(Bucket=name)


def upload(s3, bucket: str, directory: str, names: list[str]) -> None:
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"{directory}/{name}", Body=b"weights")
