"""Conversion command with a fake vendor converter executable written by the test."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from llm_server.convert import MARKER

APP_DIR = Path(__file__).resolve().parents[1]
FAKE_CONVERTER = """#!/usr/bin/env python3
import os, sys, json, pathlib, argparse
parser = argparse.ArgumentParser(prefix_chars="-")
for flag in ("in_file", "saved_dir", "infer_gpu_num", "weight_data_type", "model_name"):
    parser.add_argument("{dash}" + flag, required=True)
args = parser.parse_args()
log = pathlib.Path(os.environ["FAKE_CONVERTER_LOG"])
with log.open("a") as handle:
    handle.write(json.dumps(vars(args)) + "\\n")
out = pathlib.Path(args.saved_dir)
print("converting layer 1/2", flush=True)
(out / "1-gpu").mkdir(parents=True, exist_ok=True)
(out / "1-gpu" / "weights.bin").write_bytes(b"converted")
if os.environ.get("FAKE_CONVERTER_FAIL"):
    sys.exit(7)
print("converting layer 2/2", flush=True)
"""


def make_hf_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"weights")
    return path


@pytest.fixture()
def env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CONVERTER_LOG": str(tmp_path / "calls.jsonl"),
        "bin": bin_dir,
    }


def install(env: dict, name: str, dash: str) -> None:
    exe = env["bin"] / name
    exe.write_text(FAKE_CONVERTER.replace("{dash}", dash))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def run_convert(env: dict, root: Path, model: str = "qwen-7b-chat-aiacc", *extra: str):
    environ = {**os.environ, **{k: str(v) for k, v in env.items() if k != "bin"}}
    return subprocess.run(
        [sys.executable, "-m", "llm_server.convert", "--model", model, "--root", str(root), *extra],
        cwd=APP_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def calls(env: dict) -> list[dict]:
    log = Path(env["FAKE_CONVERTER_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_converts_once_then_skips(env, tmp_path):
    install(env, "huggingface_model_convert", "--")
    root = tmp_path / "models"
    make_hf_dir(root / "Qwen-7B-Chat")
    first = run_convert(env, root)
    assert first.returncode == 0, first.stderr
    target = root / "qwen-7b-chat-aiacc"
    assert (target / "1-gpu" / "weights.bin").read_bytes() == b"converted"
    assert json.loads((target / MARKER).read_text())["model"] == "qwen-7b-chat-aiacc"
    assert calls(env) == [
        {
            "in_file": str(root / "Qwen-7B-Chat"),
            "saved_dir": calls(env)[0]["saved_dir"],
            "infer_gpu_num": "1",
            "weight_data_type": "fp16",
            "model_name": "qwen-7b",
        }
    ]
    assert "converting layer 2/2" in first.stdout  # converter progress relayed to the log
    second = run_convert(env, root)
    assert second.returncode == 0
    assert "conversion_skipped" in second.stdout
    assert len(calls(env)) == 1
    assert not list(root.glob(".*converting*"))


def test_half_written_output_is_detected_and_redone(env, tmp_path):
    install(env, "huggingface_model_convert", "--")
    root = tmp_path / "models"
    make_hf_dir(root / "Llama-2-7b-hf")
    half = root / "llama-2-7b-hf-aiacc"
    half.mkdir()
    (half / "partial.bin").write_bytes(b"truncated")
    result = run_convert(env, root, "llama-2-7b-hf-aiacc")
    assert result.returncode == 0, result.stderr
    assert "conversion_half_written" in result.stdout
    assert not (half / "partial.bin").exists()
    assert (half / MARKER).is_file()
    assert calls(env)[0]["model_name"] == "llama-2-7b"


def test_failed_converter_leaves_no_model_directory(env, tmp_path):
    install(env, "huggingface_model_convert", "--")
    root = tmp_path / "models"
    make_hf_dir(root / "Qwen-7B-Chat")
    env["FAKE_CONVERTER_FAIL"] = "1"
    result = run_convert(env, root)
    assert result.returncode == 4
    assert "exit code 7" in result.stderr
    assert not (root / "qwen-7b-chat-aiacc").exists()
    assert not list(root.glob(".*converting*"))


def test_old_qwen_converter_is_used_with_single_dash_flags(env, tmp_path):
    install(env, "huggingface_qwen_convert", "-")
    root = tmp_path / "models"
    make_hf_dir(root / "Qwen-14B-Chat")
    result = run_convert(env, root, "qwen-14b-chat-aiacc")
    assert result.returncode == 0, result.stderr
    assert calls(env)[0]["model_name"] == "qwen-14b"


def test_old_qwen_converter_refuses_other_families(env, tmp_path):
    install(env, "huggingface_qwen_convert", "-")
    root = tmp_path / "models"
    make_hf_dir(root / "chatglm2-6b")
    result = run_convert(env, root, "chatglm2-6b-aiacc")
    assert result.returncode == 3
    assert "huggingface_model_convert" in result.stderr


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"model.safetensors": b"w"}, "no config.json"),
        ({"config.json": b"{}"}, "no weight files"),
        ({}, "no config.json"),
    ],
)
def test_input_that_is_not_a_model_directory_fails_clearly(env, tmp_path, content, reason):
    install(env, "huggingface_model_convert", "--")
    root = tmp_path / "models"
    source = root / "Qwen-7B-Chat"
    source.mkdir(parents=True)
    for name, data in content.items():
        (source / name).write_bytes(data)
    result = run_convert(env, root)
    assert result.returncode == 2
    assert reason in result.stderr and str(source) in result.stderr
    assert calls(env) == []


def test_missing_converter_is_named(env, tmp_path):
    root = tmp_path / "models"
    make_hf_dir(root / "Qwen-7B-Chat")
    result = run_convert(env, root)
    assert result.returncode == 3
    assert "huggingface_model_convert" in result.stderr


def test_open_source_model_is_refused(env, tmp_path):
    result = run_convert(env, tmp_path, "qwen-7b-chat")
    assert result.returncode == 2
    assert "not an aiacc model" in result.stderr
