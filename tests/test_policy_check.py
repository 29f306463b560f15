"""The offline runner `python -m tools policy`: shipped stacks, broken variants, exit codes,
policy config, and the table / Markdown / SARIF reports."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest

from tests.conftest import SHIPPED_STACKS, rendered
from tests.policy_helpers import GOOD, POLICIES, render
from tools.checks.policy_report import MARKDOWN_MARKER
from tools.checks.policy_runner import CONFIG_DIR, check_rendering, settings_for
from tools.offline.engine import Rendering
from tools.policy import main

# Each broken variant of the issue: the Shape knob that breaks it and the policy that must catch it.
BROKEN_VARIANTS = {
    "eci-aiacc": ("llm_eci=True, llm_eci_specs='ecs.gn7i-c8g1.2xlarge'", "aiacc-not-on-eci"),
    "t4-pool": ("pool_types=('ecs.gn6i-c4g1.xlarge',)", "gpu-family-allowed"),
    "open-adb-whitelist": ("adb_whitelist='0.0.0.0/0'", "adb-whitelist-not-open"),
    "public-bucket": ("bucket_acl='public-read'", "oss-bucket-private"),
    "latest-tag": ("llm_image='chatchat/llm:latest'", "k8s-image-pinned"),
}


def _program(tmp_path, shape_changes: str = "") -> str:
    path = tmp_path / "program.py"
    path.write_text(
        f"from tests.policy_helpers import GOOD, declare\ndeclare(GOOD.but({shape_changes}))\n",
        encoding="utf-8",
    )
    return str(path)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stack_has_no_mandatory_violation(stack, capsys):
    assert main(["--stack", stack]) == 0, capsys.readouterr().out
    violations = check_rendering(rendered(stack), POLICIES)
    assert [v for v in violations if v.level == "mandatory"] == []


def test_all_checks_every_shipped_stack(capsys):
    assert main(["--all"]) == 0
    out = capsys.readouterr().out
    assert all(f"stack {s}:" in out for s in SHIPPED_STACKS)


def test_hand_declared_good_program_passes(tmp_path, capsys):
    assert main(["--stack", "prod", "--program", _program(tmp_path)]) == 0
    assert "0 mandatory and 0 advisory" in capsys.readouterr().out


@pytest.mark.parametrize("variant", BROKEN_VARIANTS)
def test_broken_variant_is_caught_with_exit_1(variant, tmp_path, capsys):
    changes, policy = BROKEN_VARIANTS[variant]
    assert main(["--stack", "prod", "--program", _program(tmp_path, changes)]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if policy in line)
    assert line.split()[0] == "MANDATORY" and "Fix:" in line


# The same variants of the shipped stacks themselves: rendered, then broken in place. A source
# that declares none of a variant's resources (dev has no ADB, staging and prod no bucket) skips
# that variant; every variant is broken in place on at least one source.
def _flip(
    rendering: Rendering,
    type_token: str,
    change: Callable[[dict], object],
    where: Callable[[dict], bool] = lambda inputs: True,
) -> Rendering:
    broken = copy.deepcopy(rendering)
    hits = [r for r in broken.resources if r.type == type_token and where(r.inputs)]
    if not hits:
        pytest.skip(f"stack {rendering.stack} declares no {type_token} to break")
    for r in hits:
        change(r.inputs)
        r.outputs = {}  # stack policies then read the broken inputs
    return broken


def _is_llm(inputs: dict) -> bool:
    labels = inputs.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    return labels.get("app.kubernetes.io/component") == "llm"


def _pod(inputs: dict) -> dict:
    return inputs["spec"]["template"]


BREAKERS = {
    "eci-aiacc": (
        "kubernetes:apps/v1:Deployment",
        lambda i: (
            _pod(i)["metadata"].setdefault("labels", {}).update({"alibabacloud.com/eci": "true"})
        ),
        "aiacc-not-on-eci",
        _is_llm,
    ),
    "t4-pool": (
        "alicloud:cs/nodePool:NodePool",
        lambda i: i.update(instanceTypes=["ecs.gn6i-c4g1.xlarge"]),
        "gpu-family-allowed",
        lambda i: True,
    ),
    "open-adb-whitelist": (
        "alicloud:gpdb/instance:Instance",
        lambda i: i.update(ipWhitelists=[{"securityIpList": "0.0.0.0/0"}]),
        "adb-whitelist-not-open",
        lambda i: True,
    ),
    "public-bucket": (
        "alicloud:oss/bucket:Bucket",
        lambda i: i.update(acl="public-read"),
        "oss-bucket-private",
        lambda i: True,
    ),
    "latest-tag": (
        "kubernetes:apps/v1:Deployment",
        lambda i: [c.update(image="chatchat/llm:latest") for c in _pod(i)["spec"]["containers"]],
        "k8s-image-pinned",
        lambda i: True,
    ),
}


def _source(source: str) -> Rendering:
    if source == "hand-declared":
        return render(GOOD)
    return rendered(source)


@pytest.mark.parametrize("source", ["hand-declared", *SHIPPED_STACKS])
@pytest.mark.parametrize("variant", BREAKERS)
def test_broken_variant_of_a_rendered_stack_is_caught(variant, source):
    rendering = _source(source)
    type_token, change, policy, where = BREAKERS[variant]
    if variant == "eci-aiacc" and not rendering.config.llm.catalog_entry.is_aiacc:
        pytest.skip(f"stack {source} runs an open-source model")
    violations = check_rendering(_flip(rendering, type_token, change, where), POLICIES)
    assert any(v.policy == policy and v.level == "mandatory" for v in violations), violations


# --- exit 2: nothing to check -----------------------------------------------------------------


@pytest.mark.parametrize(
    "override",
    [
        "llm.pod.instanceType=eci",  # an -aiacc model on ECI: the config refuses it first
        "cluster.gpuPools=[{name: t4, instanceTypes: [ecs.gn6i-c4g1.xlarge]}]",
        "llm.image.tag=latest",
    ],
)
def test_config_that_cannot_render_exits_2_naming_the_key(override, capsys):
    assert main(["--stack", "dev", "--set", override]) == 2
    err = capsys.readouterr().err
    assert "invalid stack config" in err and override.split("=")[0].split(".")[0] in err


def test_unknown_stack_exits_2(capsys):
    assert main(["--stack", "nope"]) == 2
    assert "no stack file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"gpu-node-capp": {"maxGpuNodes": 2}}, "unknown policy name(s) gpu-node-capp"),
        ({"gpu-node-cap": {"maxGpuNodes": "two"}}, "gpu-node-cap.maxGpuNodes"),
        ({"gpu-node-cap": {"maxNodes": 2}}, "unknown config key(s) maxNodes"),
        ({"all": "strict"}, "'strict' is not one of"),
    ],
)
def test_invalid_policy_config_exits_2_naming_what(config, message, tmp_path, capsys):
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    assert main(["--stack", "dev", "--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_policy_config_turns_a_mandatory_violation_advisory(tmp_path):
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps({"k8s-image-pinned": "advisory"}), encoding="utf-8")
    program = _program(tmp_path, BROKEN_VARIANTS["latest-tag"][0])
    assert main(["--stack", "prod", "--program", program]) == 1
    assert main(["--stack", "prod", "--program", program, "--config", str(path)]) == 0


# --- reports ----------------------------------------------------------------------------------


def test_markdown_report_for_a_pull_request_comment(tmp_path, capsys):
    program = _program(tmp_path, BROKEN_VARIANTS["public-bucket"][0] + ", chat_replicas=1")
    assert main(["--stack", "prod", "--program", program, "--format", "markdown"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(MARKDOWN_MARKER)
    assert "## Policy check: 1 mandatory violation(s)" in out
    row = next(line for line in out.splitlines() if "`oss-bucket-private`" in line)
    assert row.startswith("| :x: mandatory |") and "`oss.Bucket models`" in row
    assert any(
        ":warning: advisory" in line and "production-chat-replicas" in line
        for line in out.splitlines()
    )


def test_sarif_report_for_code_scanning(tmp_path):
    program = _program(tmp_path, BROKEN_VARIANTS["t4-pool"][0] + ", chat_replicas=1")
    output = tmp_path / "policy.sarif"
    assert (
        main(
            ["--stack", "prod", "--program", program, "--format", "sarif", "--output", str(output)]
        )
        == 1
    )
    sarif = json.loads(output.read_text(encoding="utf-8"))
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [p.name for p in POLICIES]
    results = {r["ruleId"]: r for r in run["results"]}
    t4 = results["gpu-family-allowed"]
    assert t4["level"] == "error" and rules[t4["ruleIndex"]]["id"] == "gpu-family-allowed"
    assert "ecs.gn6i-c4g1.xlarge" in t4["message"]["text"]
    location = t4["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "stacks/Pulumi.prod.yaml"
    assert location["logicalLocations"][0]["fullyQualifiedName"].endswith("::gpu-a10")
    assert results["production-chat-replicas"]["level"] == "warning"
    assert len(
        {r["partialFingerprints"]["chatchatPolicyViolation/v1"] for r in run["results"]}
    ) == len(run["results"])


# --- per-stack policy config --------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_policy_config_of_each_stack_is_valid(stack):
    settings = settings_for(stack, POLICIES)
    assert (CONFIG_DIR / f"{stack}.json").is_file()
    assert settings.properties["gpu-node-cap"]["maxGpuNodes"] >= 1


def test_stack_policy_config_file_is_used_without_config_flag(tmp_path, capsys):
    program = _program(tmp_path, "pool_max=3")
    cap = json.loads((CONFIG_DIR / "dev.json").read_text())["gpu-node-cap"]["maxGpuNodes"]
    assert cap < 3
    assert main(["--stack", "dev", "--program", program]) == 0
    assert f"over maxGpuNodes={cap}" in capsys.readouterr().out


def test_broken_policy_config_file_is_named(tmp_path, capsys):
    path = tmp_path / "cfg.json"
    path.write_text("{not json", encoding="utf-8")
    assert main(["--stack", "dev", "--config", str(path)]) == 2
    assert str(path) in capsys.readouterr().err
