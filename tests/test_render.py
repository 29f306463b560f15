"""The offline renderer and `python -m tools plan`: the interface other tools and CI build on."""

from __future__ import annotations

import json
import subprocess
import sys

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pytest

from components.config import ConfigError
from tests.conftest import REPO, SHIPPED_STACKS, rendered
from tools.offline.engine import render_program, render_stack, resource_tree
from tools.offline.stack_files import apply_overrides, read_stack_file, stack_names
from tools.offline.wire import SECRET_MASK, Secret
from tools.plan import main as plan_main


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_stack_renders(stack):
    rendering = rendered(stack)
    assert rendering.config.stack == stack
    assert rendering.outputs  # __main__.py ran to the end and exported
    assert all(r.urn.startswith(f"urn:pulumi:{stack}::chatchat::") for r in rendering.resources)


def _program_with_secret() -> None:
    password = random.RandomPassword("db-password", length=20, special=False)
    provider = k8s.Provider("k8s", kubeconfig="apiVersion: v1\nkind: Config\n")
    secret = k8s.core.v1.Secret(
        "db",
        metadata={"name": "db"},
        string_data={"PG_PASSWORD": password.result},
        opts=pulumi.ResourceOptions(provider=provider, protect=True),
    )
    pulumi.export("password", password.result)
    pulumi.export("secretName", secret.metadata["name"])


def test_records_carry_engine_names_parents_dependencies_and_options():
    rendering = render_program(_program_with_secret, read_stack_file("dev"), "dev")
    secret = rendering.one("kubernetes:core/v1:Secret")
    password = rendering.one("random:index/randomPassword:RandomPassword")
    assert secret.inputs["stringData"] == Secret({"PG_PASSWORD": password.outputs["result"].value})
    assert secret.masked_inputs()["stringData"] == SECRET_MASK
    assert secret.plain_inputs()["stringData"] == {"PG_PASSWORD": password.outputs["result"].value}
    assert password.urn in secret.dependencies
    assert secret.protect and secret.options["provider"].startswith("urn:pulumi:dev::chatchat::")
    assert secret.parent == "urn:pulumi:dev::chatchat::pulumi:pulumi:Stack::chatchat-dev"
    # outputs the engine would keep secret stay secret, as additionalSecretOutputs asks
    assert isinstance(rendering.outputs["password"], Secret)
    assert rendering.outputs["secretName"] == "db"


def test_rendering_twice_is_identical():
    first = render_program(_program_with_secret, read_stack_file("dev"), "dev")
    second = render_program(_program_with_secret, read_stack_file("dev"), "dev")
    assert [r.to_json() for r in first.resources] == [r.to_json() for r in second.resources]
    assert [r.outputs for r in first.resources] == [r.outputs for r in second.resources]


def test_overrides_walk_into_structured_keys_without_touching_the_file():
    config = read_stack_file("dev")
    changed = apply_overrides(
        config,
        {
            "llm.model": "qwen-7b-chat",
            "llm.pod.instanceType": "eci",
            "alicloud:region": "cn-beijing",
        },
    )
    assert changed["chatchat:llm"]["model"] == "qwen-7b-chat"
    assert changed["chatchat:llm"]["pod"]["instanceType"] == "eci"
    assert changed["chatchat:llm"]["load8bit"] is True  # siblings kept
    assert changed["alicloud:region"] == "cn-beijing"
    assert config["chatchat:llm"]["model"] == "qwen-7b-chat-aiacc"


def test_invalid_override_fails_before_any_resource_is_declared():
    declared = []
    with pytest.raises(ConfigError) as caught:
        render_program(
            lambda: declared.append(1),
            apply_overrides(read_stack_file("dev"), {"llm.pod.instanceType": "eci"}),
            "dev",
        )
    assert declared == []
    assert caught.value.problems[0][0] == "llm.pod.instanceType"


def test_tree_puts_children_under_parents():
    rendering = render_program(_program_with_secret, read_stack_file("dev"), "dev")
    depths = {r.name: d for d, r in resource_tree(rendering.resources)}
    assert depths == {"db-password": 0, "k8s": 0, "db": 0}


def test_plan_prints_every_resource_and_counts(capsys):
    assert plan_main(["--stack", "dev"]) == 0
    out = capsys.readouterr().out
    rendering = rendered("dev")
    assert out.startswith(f"Stack dev: {len(rendering.resources)} resources")
    for resource in rendering.resources:
        assert f"{resource.type}  {resource.name}" in out
    assert "Resources per type:" in out


def test_plan_json_is_one_object_per_resource_with_masked_secrets(capsys):
    assert plan_main(["--stack", "prod", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == len(rendered("prod").resources)
    for item in items:
        assert set(item) == {"urn", "type", "name", "parent", "inputs"}
        assert ":" in item["type"]
    printed = json.dumps(items)
    passwords = rendered("prod").by_type("random:index/randomPassword:RandomPassword")
    assert passwords and not any(p.outputs["result"].value in printed for p in passwords)


def test_plan_exits_1_naming_each_bad_key(tmp_path, capsys):
    bad = (
        (REPO / "stacks" / "Pulumi.dev.yaml")
        .read_text()
        .replace("instanceType: ecs\n  chatchat:chat", "instanceType: eci\n  chatchat:chat")
        .replace("dbType: faiss", "dbType: mongo")
    )
    (tmp_path / "Pulumi.broken.yaml").write_text(bad)
    assert plan_main(["--stack", "broken", "--stacks-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "db.dbType: Input should be 'faiss' or 'adb'" in err


def test_plan_exits_2_for_an_unknown_stack(capsys):
    assert plan_main(["--stack", "qa"]) == 2
    assert "no stack file" in capsys.readouterr().err


def test_plan_runs_as_a_module_from_a_fresh_process():
    result = subprocess.run(
        [sys.executable, "-m", "tools", "plan", "--stack", "dev", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_render_stack_reads_the_stack_file_by_name():
    assert render_stack("staging").config.db.db_type == "adb"


def test_readme_config_reference_is_current():
    from tools.config_reference import reference

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert reference() in readme, "README is stale: paste `python -m tools config-reference`"


def _plan_of_file(text: str, tmp_path, capsys) -> tuple[int, str]:
    (tmp_path / "Pulumi.broken.yaml").write_text(text)
    code = plan_main(["--stack", "broken", "--stacks-dir", str(tmp_path)])
    return code, capsys.readouterr().err


def test_region_is_the_providers_key_only(tmp_path, capsys):
    text = (
        (REPO / "stacks" / "Pulumi.dev.yaml")
        .read_text()
        .replace("  alicloud:region: cn-hangzhou\n", "  chatchat:region: cn-beijing\n")
    )
    code, err = _plan_of_file(text, tmp_path, capsys)
    assert code == 1 and "alicloud:region" in err


def test_malformed_stack_file_is_an_invalid_config(tmp_path, capsys):
    code, err = _plan_of_file("config:\n  chatchat:llm: [unclosed\n", tmp_path, capsys)
    assert code == 1 and "not valid YAML" in err


def test_stack_file_without_config_mapping(tmp_path, capsys):
    code, err = _plan_of_file("encryptionsalt: abc\n", tmp_path, capsys)
    assert code == 1 and "config:" in err


def test_shipped_stacks_are_the_stack_files():
    assert stack_names() == sorted(SHIPPED_STACKS)


@pytest.fixture(scope="module")
def beijing():
    """dev moved to another region: what the program derives from computed outputs must follow."""
    return render_stack("dev", {"alicloud:region": "cn-beijing", "zones": ["cn-beijing-k"]})


def test_workload_images_come_from_the_registry_of_the_stacks_region(beijing):
    repos = beijing.by_type("alicloud:cr/repo:Repo")
    vpc_hosts = {d["vpc"] for r in repos for d in r.outputs["domainLists"]}
    assert len(vpc_hosts) == 1 and "cn-beijing" in vpc_hosts.pop()
    images = [
        c["image"]
        for d in beijing.by_type("kubernetes:apps/v1:Deployment")
        for c in d.inputs["spec"]["template"]["spec"]["containers"]
    ]
    host = repos[0].outputs["domainLists"][0]["vpc"]
    assert images and all(image.startswith(f"{host}/") for image in images), images
    assert beijing.outputs["chatImage"].startswith(f"{host}/")


def test_kubernetes_provider_talks_to_the_stacks_own_cluster(beijing):
    cluster = beijing.one("alicloud:cs/managedKubernetes:ManagedKubernetes")
    server = cluster.outputs["connections"][0]["apiServerIntranet"]
    (provider,) = [
        r for r in beijing.by_type("pulumi:providers:kubernetes") if "kubeconfig" in r.inputs
    ]
    kubeconfig = provider.plain_inputs()["kubeconfig"]
    assert isinstance(provider.inputs["kubeconfig"], Secret)  # never printed in a plan
    assert f"server: {server}" in kubeconfig and "cn-beijing" in server
    assert beijing.outputs["kubeconfig"].value == kubeconfig
