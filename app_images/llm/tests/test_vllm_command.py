"""Our settings as `vllm serve` flags, checked against the pinned vLLM release's flag record.

vLLM cannot be imported here (CUDA wheels, no GPU), so the flags are checked against
tests/data/vllm_flags.json, read from the vllm 0.33.0 wheel by bench/record_vllm_flags.py
(its `source` field names the wheel and files). bench/gpu_check.sh runs the same command
through vLLM's real parser on a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_server.launcher import LaunchError, plan_launch, vllm_command
from llm_server.settings import Settings

APP_DIR = Path(__file__).resolve().parents[1]
RECORD = json.loads((APP_DIR / "tests/data/vllm_flags.json").read_text())
PINNED = (APP_DIR / "requirements-vllm.txt").read_text()


def flag_values(argv: list[str]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            values[arg] = None if nxt is None or nxt.startswith("--") else nxt
    return values


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "Baichuan2-7B-Chat").mkdir()
    return tmp_path


def command_for(root: Path, **overrides):
    settings = Settings(llm_model="baichuan2-7b-chat", llm_model_root=root, **overrides)
    return vllm_command(plan_launch(settings, has_gpu=True), settings)


def test_record_is_of_the_pinned_release():
    assert f"vllm=={RECORD['vllm_version']}\n" in PINNED


def test_every_flag_we_pass_exists_in_the_pinned_vllm(model_dir):
    argv = command_for(model_dir, llm_vllm_extra_args="--enable-prefix-caching").argv
    ours = [a for a in argv if a.startswith("--")]
    assert ours and not set(ours) - set(RECORD["flags"])


def test_settings_map_onto_vllm_flags(model_dir):
    command = command_for(
        model_dir,
        llm_dtype="bfloat16",
        llm_gpu_memory_utilization=0.85,
        llm_max_concurrency=24,
        llm_port=8888,
        llm_host="0.0.0.0",
        llm_log_level="WARNING",
        llm_shutdown_grace_s=30,
    )
    assert command.argv[1:5] == [
        "-m",
        "vllm.entrypoints.cli.main",
        "serve",
        str(model_dir / "Baichuan2-7B-Chat"),
    ]
    assert flag_values(command.argv) == {
        "--served-model-name": "baichuan2-7b-chat",
        "--max-model-len": "4096",
        "--dtype": "bfloat16",
        "--gpu-memory-utilization": "0.85",
        "--max-num-seqs": "24",
        "--host": "0.0.0.0",
        "--port": "8888",
        "--trust-remote-code": None,
        "--uvicorn-log-level": "warning",
        "--shutdown-timeout": "30",
    }


def test_dtype_choices_are_vllms(model_dir):
    assert set(Settings.model_fields["llm_dtype"].annotation.__args__) == set(
        RECORD["dtype_choices"]
    )


def test_api_key_goes_by_environment_not_argv(model_dir):
    command = command_for(model_dir, llm_api_key="s3cret")
    assert command.env["VLLM_API_KEY"] == "s3cret"
    assert "s3cret" not in " ".join(command.argv) and "--api-key" not in command.argv
    assert "VLLM_API_KEY" not in command_for(model_dir).env


def test_extra_args_are_appended_shell_split(model_dir):
    argv = command_for(
        model_dir, llm_vllm_extra_args="--enable-auto-tool-choice --tool-call-parser 'hermes'"
    ).argv
    assert argv[-3:] == ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]


def test_extra_args_may_not_override_a_mapped_setting(model_dir):
    with pytest.raises(LaunchError, match="--max-model-len, --port.*LLM_PORT"):
        command_for(model_dir, llm_vllm_extra_args="--port=9000 --max-model-len 99")


def test_settings_vllm_cannot_honour_are_stated(model_dir):
    notes = " ".join(command_for(model_dir, load_8bit=True).notes)
    assert "LLM_MAX_QUEUE" in notes and "LOAD_8BIT" in notes


def test_launcher_prints_the_vllm_command(model_dir):
    env = {
        **os.environ,
        "LLM_MODEL": "baichuan2-7b-chat",
        "LLM_MODEL_ROOT": str(model_dir),
        "LLM_ENGINE": "vllm",
        "LLM_API_KEY": "k",
    }
    result = subprocess.run(
        [sys.executable, "-m", "llm_server.launcher", "--print-command"],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["argv"][3:5] == ["serve", str(model_dir / "Baichuan2-7B-Chat")]
    assert printed["env"] == ["HF_HUB_OFFLINE", "VLLM_API_KEY"]


def test_launcher_without_vllm_installed_exits_2_naming_the_image(model_dir):
    env = {
        **os.environ,
        "LLM_MODEL": "baichuan2-7b-chat",
        "LLM_MODEL_ROOT": str(model_dir),
        "LLM_ENGINE": "vllm",
    }
    result = subprocess.run(
        [sys.executable, "-m", "llm_server.launcher"],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "vllm package is not installed" in result.stderr
