"""`python -m tools import-values`: a values.yaml of the seed chart becomes a stack config file."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.workload_harness import container, declare_workloads, deployment, env_of
from tools.import_values import main
from tools.offline.engine import render_program
from tools.offline.stack_files import REPO, read_stack_file

FIXTURE = REPO / "tests" / "fixtures" / "chart_values.yaml"


def _import(tmp_path, capsys, values: dict | None = None, *args: str) -> tuple[int, dict, str]:
    source = FIXTURE
    if values is not None:
        source = tmp_path / "values.yaml"
        source.write_text(yaml.safe_dump(values), encoding="utf-8")
    out = tmp_path / "Pulumi.imported.yaml"
    code = main([str(source), "-o", str(out), *args])
    return code, yaml.safe_load(out.read_text(encoding="utf-8"))["config"], capsys.readouterr().err


def _chart_values() -> dict:
    return yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))


def test_the_charts_defaults_import_to_a_valid_stack(tmp_path, capsys):
    code, config, err = _import(tmp_path, capsys)
    assert code == 0, err
    llm, chat, db = config["chatchat:llm"], config["chatchat:chat"], config["chatchat:db"]
    assert (llm["model"], llm["load8bit"]) == ("qwen-7b-chat-aiacc", True)
    assert llm["pod"]["replicas"] == 1 and llm["pod"]["instanceType"] == "ecs"
    assert llm["pod"]["resources"]["limits"] == {"cpu": "2", "memory": "6Gi", "nvidia.com/gpu": "1"}
    assert chat["pod"]["resources"]["requests"] == {"cpu": "4", "memory": "8Gi"}
    assert llm["image"]["tag"] == chat["image"]["tag"] == "v0.2.7-aiacc"
    assert llm["service"]["type"] == chat["service"]["type"] == "ClusterIP"
    assert db == {"dbType": "faiss", "embeddingModel": "text2vec-bge-large-chinese"}
    assert "modelPVC" not in llm and "kbPVC" not in chat  # "" is the chart's "not set"
    assert "dropped db.adb" in err and "dropped llm.image.pullPolicy" in err
    assert "unknown" not in err and "problem" not in err


def test_an_imported_stack_renders_the_charts_workloads(tmp_path, capsys):
    values = _chart_values()
    values["llm"].update(model="chatglm2-6b", modelPVC="model-pvc")
    values["chat"]["kbPVC"] = "kb-pvc"
    values["db"]["embeddingModel"] = "bge-large-zh"
    code, config, err = _import(tmp_path, capsys, values)
    assert code == 0, err
    rendering = render_program(declare_workloads, config, "imported")
    llm, chat = deployment(rendering, "llm"), deployment(rendering, "chat")
    assert env_of(container(llm))["LLM_MODEL"] == "chatglm2-6b"
    assert env_of(container(chat))["EMBEDDING_MODEL"] == "bge-large-zh"
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in chat["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"llm-model": "model-pvc", "kb": "kb-pvc"}
    assert container(llm)["image"].endswith(":v0.2.7-aiacc")  # the chart's tag, pinned


def test_the_charts_gpu_for_chat_imports_to_gpu_embedding(tmp_path, capsys):
    """The chart's advice: give chat.pod.resources a GPU to speed up vectorisation."""
    values = _chart_values()
    for kind in ("limits", "requests"):
        values["chat"]["pod"]["resources"][kind]["nvidia.com/gpu"] = 1
    code, config, err = _import(tmp_path, capsys, values)
    assert code == 0, err
    chat = deployment(render_program(declare_workloads, config, "imported"), "chat")
    app, spec = container(chat), chat["spec"]["template"]["spec"]
    assert app["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert env_of(app)["EMBEDDING_DEVICE"] == "cuda"
    assert app["image"].endswith(":v0.2.7-aiacc-cuda")
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]


def test_eci_annotations_become_eci_config(tmp_path, capsys):
    values = _chart_values()
    values["llm"]["model"] = "qwen-7b-chat"
    values["llm"]["pod"].update(
        instanceType="eci",
        labels={"alibabacloud.com/eci": "true"},
        annotations={
            "k8s.aliyun.com/eci-use-specs": "ecs.gn7i-c8g1.2xlarge,ecs.gn7i-c16g1.4xlarge",
            "k8s.aliyun.com/eci-extra-ephemeral-storage": "50Gi",
            "team": "ai",
        },
    )
    code, config, err = _import(tmp_path, capsys, values)
    assert code == 0, err
    pod = config["chatchat:llm"]["pod"]
    assert pod["eciSpecs"] == ["ecs.gn7i-c8g1.2xlarge", "ecs.gn7i-c16g1.4xlarge"]
    assert pod["eciEphemeralStorageGib"] == 50
    assert pod["annotations"] == {"team": "ai"} and "labels" not in pod


def test_the_charts_t4_eci_specs_are_reported_as_problems(tmp_path, capsys):
    values = _chart_values()
    values["llm"]["model"] = "qwen-7b-chat"
    values["llm"]["pod"].update(
        instanceType="eci",
        annotations={"k8s.aliyun.com/eci-use-specs": "ecs.gn6i-c8g1.2xlarge,ecs.gn7i-c8g1.2xlarge"},
    )
    code, _, err = _import(tmp_path, capsys, values)
    assert code == 1
    assert "problem: llm.pod.eciSpecs[0]: ecs.gn6i-c8g1.2xlarge cannot hold qwen-7b-chat" in err


def test_unknown_chart_keys_are_reported(tmp_path, capsys):
    values = _chart_values()
    values["llm"]["pod"]["hostIPC"] = True
    values["global"] = {"imageRegistry": "example.com"}
    code, _, err = _import(tmp_path, capsys, values)
    assert code == 0
    assert "unknown chart key llm.pod.hostIPC" in err
    assert "unknown chart key global.imageRegistry" in err


def test_values_our_config_refuses_are_named(tmp_path, capsys):
    values = _chart_values()
    values["llm"]["image"]["tag"] = "latest"
    values["chat"]["service"]["type"] = "NodePort"
    code, _, err = _import(tmp_path, capsys, values)
    assert code == 1
    assert "problem: llm.image.tag:" in err and "problem: chat.service.type:" in err


def test_an_existing_stack_keeps_its_infrastructure(tmp_path, capsys):
    code, config, err = _import(tmp_path, capsys, None, "--stack", "staging")
    assert code == 0, err
    staging = read_stack_file("staging")
    assert config["chatchat:network"] == staging["chatchat:network"]
    assert config["chatchat:db"]["adb"] == staging["chatchat:db"]["adb"]
    assert config["chatchat:db"]["dbType"] == "faiss"  # the chart's value wins


def test_the_command_line_prints_the_stack_file_and_fails_on_unreadable_input(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "tools", "import-values", str(FIXTURE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert yaml.safe_load(ok.stdout)["config"]["chatchat:llm"]["model"] == "qwen-7b-chat-aiacc"
    missing = subprocess.run(
        [sys.executable, "-m", "tools", "import-values", str(tmp_path / "nope.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr
