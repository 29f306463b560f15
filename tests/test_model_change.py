"""`python -m tools model-change` and `python -m tools diff` end to end on the shipped stacks:
validation, the model-store check through a real S3 endpoint, exit codes, Markdown, --save."""

from __future__ import annotations

import shutil

import pytest

from tests import s3_server
from tests.conftest import REPO, rendered
from tools.checks.model_store import CONVERTED_MARKER
from tools.cli import parse_assignments
from tools.diff import main as diff_main
from tools.model_change import main as model_change_main
from tools.offline.engine import render_config
from tools.offline.stack_files import apply_overrides, read_stack_file
from tools.preview.plan_diff import compare
from tools.preview.report import GITHUB_COMMENT_LIMIT

s3_endpoint = s3_server.s3_endpoint  # the fixture
BUCKET = "chatchat-models-dev0001"
STACK_FILES = {s: (REPO / "stacks" / f"Pulumi.{s}.yaml") for s in ("dev", "staging", "prod")}


@pytest.fixture(autouse=True)
def stack_files_untouched():
    before = {s: p.read_bytes() for s, p in STACK_FILES.items()}
    yield
    assert {s: p.read_bytes() for s, p in STACK_FILES.items()} == before


def run(main, argv, capsys) -> tuple[int, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


# --- validation ---------------------------------------------------------------------------------


def test_unknown_model_is_invalid_and_lists_the_catalog(capsys):
    code, out = run(
        model_change_main, ["--stack", "dev", "--model", "gpt-4", "--no-store-check"], capsys
    )
    assert code == 1
    assert "llm.model: unknown model 'gpt-4'; allowed: qwen-7b-chat-aiacc" in out


def test_aiacc_model_on_eci_is_invalid(capsys):
    code, out = run(
        model_change_main,
        [
            "--stack",
            "dev",
            "--model",
            "qwen-14b-chat-aiacc",
            "--instance-type",
            "eci",
            "--no-store-check",
        ],
        capsys,
    )
    assert code == 1
    assert "llm.pod.instanceType: eci cannot run DeepGPU-LLM model qwen-14b-chat-aiacc" in out


def test_model_that_fits_no_gpu_pool_is_invalid(capsys):
    code, out = run(
        model_change_main,
        ["--stack", "dev", "--model", "llama-2-13b-hf", "--load8bit", "false", "--no-store-check"],
        capsys,
    )
    assert code == 1
    assert "llama-2-13b-hf (fp16) needs 27.6 GiB" in out and "no GPU pool fits" in out


def test_int8_makes_the_same_aiacc_model_fit(capsys):
    code, out = run(
        model_change_main,
        [
            "--stack",
            "dev",
            "--model",
            "llama-2-13b-hf-aiacc",
            "--load8bit",
            "true",
            "--no-store-check",
        ],
        capsys,
    )
    assert code in (0, 2), out  # valid; 2 only if something outside the llm workload changed
    assert "fits GPU pool(s) a10 (NVIDIA A10 24 GiB)" in out and "(int8)" in out


def test_int8_does_not_make_an_open_source_13b_fit_because_vllm_serves_fp16(capsys):
    code, out = run(
        model_change_main,
        ["--stack", "dev", "--model", "llama-2-13b-hf", "--load8bit", "true", "--no-store-check"],
        capsys,
    )
    assert code == 1
    assert "llama-2-13b-hf (fp16) needs 27.6 GiB" in out and "no GPU pool fits" in out


def test_skipped_store_check_is_said_in_the_output(capsys):
    _, out = run(
        model_change_main,
        ["--stack", "dev", "--model", "qwen-14b-chat-aiacc", "--no-store-check"],
        capsys,
    )
    assert "model store NOT checked (--no-store-check)" in out


# --- the model store through the CLI ------------------------------------------------------------


@pytest.fixture
def dev_bucket(s3_endpoint, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testing")
    with s3_server.model_bucket(s3_endpoint, BUCKET) as s3:
        yield s3


def _oss_args(endpoint: str, bucket: str = BUCKET) -> list[str]:
    return ["--bucket", bucket, "--oss-endpoint", endpoint, "--oss-addressing-style", "path"]


def test_model_in_oss_passes_the_store_check(s3_endpoint, dev_bucket, capsys):
    s3_server.upload(
        dev_bucket,
        BUCKET,
        "llm-model/qwen-14b-chat-aiacc",
        ["config.ini", "model.final.bin", CONVERTED_MARKER],
    )
    code, out = run(
        model_change_main,
        ["--stack", "dev", "--model", "qwen-14b-chat-aiacc", *_oss_args(s3_endpoint)],
        capsys,
    )
    assert (
        f"model store: s3://{BUCKET}/llm-model/qwen-14b-chat-aiacc/: DeepGPU-LLM converted" in out
    )
    assert code in (0, 2), out


def test_model_missing_from_oss_is_invalid_naming_the_path(s3_endpoint, dev_bucket, capsys):
    code, out = run(
        model_change_main,
        ["--stack", "dev", "--model", "qwen-7b-chat", *_oss_args(s3_endpoint)],
        capsys,
    )
    assert code == 1
    assert f"model directory s3://{BUCKET}/llm-model/Qwen-7B-Chat/ does not exist" in out


def test_wrong_bucket_is_invalid(s3_endpoint, dev_bucket, capsys):
    code, out = run(
        model_change_main,
        ["--stack", "dev", "--model", "qwen-7b-chat", *_oss_args(s3_endpoint, "no-such-bucket-1")],
        capsys,
    )
    assert code == 1
    assert "bucket 'no-such-bucket-1' does not exist" in out


def test_nas_stack_needs_a_mount_or_an_explicit_skip(tmp_path, capsys):
    code, out = run(model_change_main, ["--stack", "prod", "--model", "chatglm2-6b-aiacc"], capsys)
    assert code == 1 and "pass --nas-path" in out
    (tmp_path / "chatglm2-6b").mkdir()
    for name in ("config.json", "pytorch_model-00001-of-00007.bin"):
        (tmp_path / "chatglm2-6b" / name).write_text("x")
    code, out = run(
        model_change_main,
        ["--stack", "prod", "--model", "chatglm2-6b-aiacc", "--nas-path", str(tmp_path)],
        capsys,
    )
    assert "the conversion Job will run" in out
    assert code in (0, 2), out


def test_user_model_pvc_needs_its_mount_for_the_store_check(capsys):
    code, out = run(
        model_change_main,
        ["--stack", "dev", "--model", "qwen-7b-chat-aiacc", "--model-pvc", "team-models"],
        capsys,
    )
    assert code == 1
    assert "llm.modelPVC=team-models is a PVC you manage: pass --nas-path" in out


# --- output and --save --------------------------------------------------------------------------


def test_markdown_file_is_written_under_the_comment_limit(tmp_path, capsys):
    target = tmp_path / "comment.md"
    run(
        model_change_main,
        [
            "--stack",
            "staging",
            "--model",
            "qwen-14b-chat-aiacc",
            "--no-store-check",
            "--markdown",
            str(target),
        ],
        capsys,
    )
    text = target.read_text()
    assert text.startswith(
        "### Model change on stack staging: qwen-7b-chat-aiacc → qwen-14b-chat-aiacc"
    )
    assert "(exit code" in text and len(text) <= GITHUB_COMMENT_LIMIT


def test_save_writes_only_the_override_and_keeps_comments(tmp_path, capsys):
    stacks = tmp_path / "stacks"
    shutil.copytree(REPO / "stacks", stacks)
    code, out = run(
        model_change_main,
        [
            "--stack",
            "dev",
            "--model",
            "chatglm2-6b-aiacc",
            "--no-store-check",
            "--save",
            "--stacks-dir",
            str(stacks),
        ],
        capsys,
    )
    assert code == 0, out
    saved = (stacks / "Pulumi.dev.yaml").read_text()
    original = STACK_FILES["dev"].read_text()
    assert saved == original.replace("model: qwen-7b-chat-aiacc", "model: chatglm2-6b-aiacc")
    assert saved.startswith("# dev: one zone")


def test_save_is_refused_for_an_invalid_change(tmp_path, capsys):
    stacks = tmp_path / "stacks"
    shutil.copytree(REPO / "stacks", stacks)
    code, out = run(
        model_change_main,
        [
            "--stack",
            "dev",
            "--model",
            "qwen-7b-chat-aiacc",
            "--instance-type",
            "eci",
            "--no-store-check",
            "--save",
            "--stacks-dir",
            str(stacks),
        ],
        capsys,
    )
    assert code == 1 and "Not saved" in out
    assert (stacks / "Pulumi.dev.yaml").read_bytes() == STACK_FILES["dev"].read_bytes()


# --- diff ---------------------------------------------------------------------------------


def test_set_values_are_yaml_scalars():
    assert parse_assignments(
        [
            "llm.load8bit=false",
            "llm.pod.replicas=2",
            "db.dbType=adb",
            "zones=[cn-hangzhou-j, cn-hangzhou-k]",
        ]
    ) == {
        "llm.load8bit": False,
        "llm.pod.replicas": 2,
        "db.dbType": "adb",
        "zones": ["cn-hangzhou-j", "cn-hangzhou-k"],
    }
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_assignments(["db.dbType"])


def test_invalid_config_value_is_exit_1_naming_the_key(capsys):
    code, out = run(diff_main, ["--stack", "dev", "--set", "db.dbType=mysql"], capsys)
    assert code == 1 and "db.dbType:" in out and "'faiss' or 'adb'" in out


def test_unknown_stack_is_exit_1(capsys):
    code, out = run(diff_main, ["--stack", "qa", "--set", "db.dbType=adb"], capsys)
    assert code == 1 and "no stack file" in out and "dev, prod, staging" in out


# --- the shipped stacks ------------------------------------------------------------------------


def _diff(stack: str, overrides: dict, model_scope: bool):
    after = render_config(apply_overrides(read_stack_file(stack), overrides), stack)
    return compare(rendered(stack), after, model_scope=model_scope)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_model_switch_changes_exactly_the_llm_workload(stack, capsys):
    diff = _diff(stack, {"llm.model": "qwen-14b-chat-aiacc"}, model_scope=True)
    assert diff.changes, "switching the model changed nothing"
    # nothing outside the llm workload, bar the chat pod's LLM_MODEL (allowed, not dangerous)
    assert not diff.dangerous, [(c.op, c.name, c.dangers) for c in diff.changes if c.dangers]
    assert not any(c.stateful for c in diff.changes)
    assert all(c.llm_workload for c in diff.changes if c.op != "update")
    deployments = [
        c for c in diff.changes if c.type == "kubernetes:apps/v1:Deployment" and c.llm_workload
    ]
    assert deployments and deployments[0].op == "update"
    created = diff.by_op("create")
    assert all(c.type == "kubernetes:batch/v1:Job" for c in created), created  # conversion
    code, _ = run(
        model_change_main,
        ["--stack", stack, "--model", "qwen-14b-chat-aiacc", "--no-store-check"],
        capsys,
    )
    assert code == 0


def test_shipped_db_type_adb_adds_the_database_resources(capsys):
    diff = _diff("dev", {"db.dbType": "adb"}, model_scope=False)
    created = {c.type for c in diff.by_op("create")}
    assert {"alicloud:gpdb/instance:Instance", "alicloud:gpdb/account:Account"} <= created
    assert not diff.dangerous
    code, out = run(diff_main, ["--stack", "dev", "--set", "db.dbType=adb"], capsys)
    assert code == 0 and "alicloud:gpdb/instance:Instance" in out


def test_shipped_adb_replacement_is_dangerous_exit_2(capsys):
    code, out = run(diff_main, ["--stack", "staging", "--set", "db.adb.engineVersion=7.0"], capsys)
    assert code == 2, out
    assert "replaces stateful ADB for PostgreSQL instance" in out and "engineVersion" in out
    code, _ = run(
        diff_main,
        ["--stack", "staging", "--set", "db.adb.engineVersion=7.0", "--allow-dangerous"],
        capsys,
    )
    assert code == 0


def test_recorded_engine_preview_with_an_adb_replacement_makes_the_diff_dangerous(capsys):
    events = REPO / "tests" / "fixtures" / "engine_events_adb_replace.json"
    code, out = run(
        diff_main,
        ["--stack", "prod", "--set", "db.adb.storageSize=100", "--engine-events", str(events)],
        capsys,
    )
    assert code == 2, out
    assert "!! replaces stateful ADB for PostgreSQL instance" in out
    assert "zoneId: cn-hangzhou-j → cn-hangzhou-k  (forces replacement)" in out


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="the Pulumi CLI is installed here")
def test_automation_without_the_cli_is_skipped_and_said(capsys):
    code, out = run(
        diff_main, ["--stack", "dev", "--set", "chat.pod.replicas=1", "--automation"], capsys
    )
    assert code == 0
    assert "engine preview (Automation API) skipped: the Pulumi CLI is not on PATH" in out


def test_malformed_stack_file_is_exit_1_naming_the_file(tmp_path, capsys):
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  chatchat:llm: {model: [\n")
    code, out = run(
        diff_main,
        ["--stack", "dev", "--set", "db.dbType=adb", "--stacks-dir", str(tmp_path)],
        capsys,
    )
    assert code == 1 and f"{tmp_path}/Pulumi.dev.yaml: not valid YAML" in out
    code, out = run(
        model_change_main,
        [
            "--stack",
            "dev",
            "--model",
            "qwen-7b-chat-aiacc",
            "--no-store-check",
            "--stacks-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 1 and "not valid YAML" in out


def test_docs_samples_are_the_tools_current_output():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "tools.dev.model_change_samples", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_override_into_a_non_mapping_key_is_exit_1_naming_it(tmp_path, capsys):
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  alicloud:region: cn-hangzhou\n  chatchat:tags: {owner: me}\n"
        "  chatchat:llm: qwen-7b-chat\n"
    )
    code, out = run(
        model_change_main,
        [
            "--stack",
            "dev",
            "--model",
            "qwen-7b-chat",
            "--no-store-check",
            "--stacks-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 1 and "cannot set llm.model: not a mapping" in out
