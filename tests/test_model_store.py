"""The model-store check against a real S3 API (moto's server on 127.0.0.1, reached by boto3
through an endpoint URL exactly as OSS is) and a real directory standing in for a NAS mount."""

from __future__ import annotations

import pytest

from components.catalog import MODELS
from tests import s3_server
from tools.checks.model_store import (
    CONVERTED_MARKER,
    ModelStoreError,
    NasStore,
    OssStore,
    bucket_from_outputs,
    check_model,
)

s3_endpoint = s3_server.s3_endpoint  # the fixture
BUCKET = "chatchat-models-3f9a1c2"
PREFIX = "llm-model"


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testing")
    with s3_server.model_bucket(s3_endpoint, BUCKET) as s3:
        yield s3


def _upload(s3, directory: str, names: list[str]) -> None:
    s3_server.upload(s3, BUCKET, f"{PREFIX}/{directory}", names)


def _store(endpoint: str, bucket: str = BUCKET) -> OssStore:
    # moto serves path-style on an IP address; OSS itself is always virtual-hosted.
    return OssStore(bucket, PREFIX, "us-east-1", endpoint=endpoint, addressing_style="path")


def test_hugging_face_model_present_passes(s3_endpoint, bucket):
    _upload(
        bucket,
        "Qwen-7B-Chat",
        [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "tokenizer.json",
        ],
    )
    result = check_model(MODELS["qwen-7b-chat"], _store(s3_endpoint))
    assert result.ok and not result.problems
    assert result.location == f"s3://{BUCKET}/{PREFIX}/Qwen-7B-Chat/"
    assert "2 weight file(s)" in result.notes[0]


def test_missing_directory_names_the_s3_path(s3_endpoint, bucket):
    _upload(bucket, "Qwen-14B-Chat", ["config.json", "pytorch_model.bin"])
    result = check_model(MODELS["qwen-7b-chat"], _store(s3_endpoint))
    assert not result.ok
    assert result.problems == [
        f"model directory s3://{BUCKET}/{PREFIX}/Qwen-7B-Chat/ does not exist"
    ]


def test_directory_without_weights_is_refused(s3_endpoint, bucket):
    _upload(bucket, "chatglm2-6b", ["config.json", "tokenizer_config.json"])
    result = check_model(MODELS["chatglm2-6b"], _store(s3_endpoint))
    assert not result.ok
    assert "has no weight files" in result.problems[0]
    assert f"s3://{BUCKET}/{PREFIX}/chatglm2-6b/" in result.problems[0]


def test_directory_without_config_is_refused(s3_endpoint, bucket):
    _upload(bucket, "chatglm2-6b", ["pytorch_model-00001-of-00007.bin"])
    result = check_model(MODELS["chatglm2-6b"], _store(s3_endpoint))
    assert not result.ok and "has no config.json" in result.problems[0]


def test_wrong_bucket_is_a_store_error_naming_the_bucket(s3_endpoint, bucket):
    with pytest.raises(ModelStoreError, match=r"bucket 'chatchat-models-wrong' does not exist"):
        check_model(MODELS["qwen-7b-chat"], _store(s3_endpoint, "chatchat-models-wrong"))


def test_converted_aiacc_model_passes(s3_endpoint, bucket):
    _upload(bucket, "qwen-7b-chat-aiacc", ["config.ini", "model.final.bin", CONVERTED_MARKER])
    result = check_model(MODELS["qwen-7b-chat-aiacc"], _store(s3_endpoint))
    assert result.ok and not result.conversion_needed


def test_unconverted_aiacc_model_with_source_needs_conversion(s3_endpoint, bucket):
    _upload(bucket, "Qwen-14B-Chat", ["config.json", "model-00001-of-00003.safetensors"])
    result = check_model(MODELS["qwen-14b-chat-aiacc"], _store(s3_endpoint))
    assert result.ok and result.conversion_needed
    assert "conversion Job will run" in result.notes[0]


def test_half_converted_aiacc_model_without_source_is_refused(s3_endpoint, bucket):
    _upload(bucket, "qwen-14b-chat-aiacc", ["config.ini"])  # interrupted copy: no marker
    result = check_model(MODELS["qwen-14b-chat-aiacc"], _store(s3_endpoint))
    assert not result.ok
    assert "is not converted" in result.problems[0]
    assert f"s3://{BUCKET}/{PREFIX}/Qwen-14B-Chat/ does not exist" in result.problems[0]


def test_nas_mount_is_checked_the_same_way(tmp_path):
    (tmp_path / "Baichuan2-7B-Chat").mkdir()
    (tmp_path / "Baichuan2-7B-Chat" / "config.json").write_text("{}")
    store = NasStore(tmp_path)
    result = check_model(MODELS["baichuan2-7b-chat"], store)
    assert not result.ok and "has no weight files" in result.problems[0]
    (tmp_path / "Baichuan2-7B-Chat" / "pytorch_model.bin").write_bytes(b"w")
    assert check_model(MODELS["baichuan2-7b-chat"], store).ok


def test_nas_path_that_is_not_mounted_is_an_error(tmp_path):
    with pytest.raises(ModelStoreError, match="is not a directory: mount the NAS"):
        NasStore(tmp_path / "not-mounted")


def test_bucket_found_in_stack_outputs():
    assert (
        bucket_from_outputs(
            {"release": "chatchat", "modelStore": {"bucketName": "chatchat-models-1a2b3c4"}}
        )
        == "chatchat-models-1a2b3c4"
    )
    assert bucket_from_outputs({"release": "chatchat"}) is None
