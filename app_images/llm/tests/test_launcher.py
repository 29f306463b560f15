"""Launcher: engine per catalog entry, chart rules, and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_server.catalog import load_catalog, resolve_model
from llm_server.engines.base import EngineUnavailableError
from llm_server.launcher import (
    LaunchError,
    build_engine,
    choose_engine,
    effective_load_8bit,
    plan_launch,
)
from llm_server.settings import Settings

APP_DIR = Path(__file__).resolve().parents[1]
CATALOG = load_catalog()


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_auto_engine_follows_the_model_kind_and_the_gpu(name):
    entry = CATALOG[name]
    if entry.is_aiacc:
        assert choose_engine(entry, "auto", has_gpu=True) == "deepgpu"
        assert choose_engine(entry, "auto", has_gpu=False) == "deepgpu"
    else:
        assert choose_engine(entry, "auto", has_gpu=True) == "vllm"
        assert choose_engine(entry, "auto", has_gpu=False) == "transformers"


def test_every_aiacc_model_has_a_source_model_in_the_catalog():
    for entry in CATALOG.values():
        if entry.is_aiacc:
            assert resolve_model(entry.source_model).kind == "huggingface"


def test_aiacc_model_refuses_a_non_deepgpu_engine():
    with pytest.raises(LaunchError, match="qwen-7b-chat-aiacc.*LLM_ENGINE=deepgpu"):
        choose_engine(resolve_model("qwen-7b-chat-aiacc"), "transformers", has_gpu=False)


def test_deepgpu_override_refuses_an_open_source_model():
    with pytest.raises(LaunchError, match="llama-2-7b-hf-aiacc"):
        choose_engine(resolve_model("llama-2-7b-hf"), "deepgpu", has_gpu=True)


def test_open_source_qwen_forces_load_8bit_off_like_the_chart():
    assert effective_load_8bit(resolve_model("qwen-7b-chat"), True) is False
    assert effective_load_8bit(resolve_model("qwen-7b-chat-aiacc"), True) is True
    assert effective_load_8bit(resolve_model("llama-2-7b-hf"), True) is True


def test_unknown_model_names_the_known_ones(tmp_path):
    with pytest.raises(LaunchError, match="LLM_MODEL='gpt-5'.*qwen-7b-chat-aiacc"):
        plan_launch(Settings(llm_model="gpt-5", llm_model_root=tmp_path), has_gpu=False)


def test_missing_model_directory_is_named(tmp_path):
    expected = r"Qwen-7B-Chat for LLM_MODEL=qwen-7b-chat does not exist"
    with pytest.raises(LaunchError, match=expected):
        plan_launch(Settings(llm_model="qwen-7b-chat", llm_model_root=tmp_path), has_gpu=False)


def test_aiacc_without_the_vendor_package_is_a_clear_error(tmp_path):
    (tmp_path / "qwen-7b-chat-aiacc").mkdir()
    settings = Settings(llm_model="qwen-7b-chat-aiacc", llm_model_root=tmp_path)
    plan = plan_launch(settings, has_gpu=False)
    assert plan.engine == "deepgpu"
    with pytest.raises(EngineUnavailableError, match="qwen-7b-chat-aiacc.*'deepgpu_llm'"):
        build_engine(plan, settings)


def test_launcher_process_exits_2_with_the_reason_for_aiacc_without_vendor(tmp_path):
    (tmp_path / "chatglm2-6b-aiacc").mkdir()
    env = {**os.environ, "LLM_MODEL": "chatglm2-6b-aiacc", "LLM_MODEL_ROOT": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "llm_server.launcher"],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "'deepgpu_llm'" in result.stderr and "chatglm2-6b-aiacc" in result.stderr


def test_settings_read_the_chart_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_MODEL", "baichuan2-7b-chat")
    monkeypatch.setenv("LOAD_8BIT", "false")
    monkeypatch.setenv("LLM_MODEL_ROOT", str(tmp_path))
    settings = Settings()
    assert (settings.llm_model, settings.load_8bit, settings.llm_model_root) == (
        "baichuan2-7b-chat",
        False,
        tmp_path,
    )
    assert settings.llm_port == 8888


def test_empty_api_key_env_means_no_key(monkeypatch):
    monkeypatch.setenv("LLM_API_KEY", "")
    assert Settings().llm_api_key is None
    monkeypatch.setenv("LLM_API_KEY", "s3cret")
    assert Settings().llm_api_key.get_secret_value() == "s3cret"
