"""The pack as a whole: every policy tested, levels as the issue sets them, and the offline runner
agreeing with the pack's real analyzer server (`policies/__main__.py` under `pulumi.policy` in the
pack's own virtualenv, the way `pulumi preview --policy-pack policies` starts it), spoken to over
its gRPC protocol."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, StackValidationPolicy

from tests import (
    test_policies_adb,
    test_policies_cloud,
    test_policies_gpu,
    test_policies_kubernetes,
    test_policies_network,
    test_policies_production,
    test_policies_storage,
    test_policies_tags,
)
from tests.policy_helpers import GOOD, POLICIES, check, render
from tools.checks.policy_runner import PACK_DIR, parse_policy_config
from tools.offline.wire import unwrap_secrets

MANDATORY = {
    "gpu-family-allowed",
    "llm-model-fits-gpu",
    "gpu-pods-fit-gpu-pools",
    "aiacc-not-on-eci",
    "adb-vector-engine-enabled",
    "adb-segment-spec",
    "adb-whitelist-not-open",
    "oss-bucket-private",
    "oss-bucket-encrypted",
    "ram-oss-scoped",
    "oss-volume-rrsa",
    "ram-role-oidc-scoped",
    "nas-access-not-open",
    "fluid-model-cache-read-only",
    "security-group-no-public-ingress",
    "k8s-no-privileged",
    "k8s-gpu-request",
    "k8s-image-pinned",
    "k8s-no-public-load-balancer",
    "k8s-no-literal-secret-env",
    "k8s-network-policy",
    "ack-version-creatable",
    "adb-spec-for-category",
    "production-api-server-restricted",
    "production-chat-sign-in",
    "production-llm-disruption-budget",
}
BROKEN = GOOD.but(
    pool_types=("ecs.gn6i-c4g1.xlarge",),
    llm_eci=True,
    adb_whitelist="0.0.0.0/0",
    bucket_acl="public-read",
    llm_image="chatchat/llm:latest",
    pool_max=12,
    chat_replicas=1,
    network_policy_namespace=None,
    protect=False,
)
_LEVELS = {
    EnforcementLevel.ADVISORY: analyzer_pb2.ADVISORY,
    EnforcementLevel.MANDATORY: analyzer_pb2.MANDATORY,
    EnforcementLevel.DISABLED: analyzer_pb2.DISABLED,
}


def test_every_policy_has_cases():
    modules = (
        test_policies_gpu,
        test_policies_adb,
        test_policies_storage,
        test_policies_network,
        test_policies_kubernetes,
        test_policies_tags,
        test_policies_production,
        test_policies_cloud,
    )
    tested = {case.policy for module in modules for case in module.CASES}
    assert tested == {p.name for p in POLICIES}


def test_security_and_seed_policies_are_mandatory_the_rest_advisory():
    levels = {p.name: p.enforcement_level for p in POLICIES}
    assert {n for n, level in levels.items() if level == EnforcementLevel.MANDATORY} == MANDATORY
    assert {n for n, level in levels.items() if level == EnforcementLevel.ADVISORY} == set(
        levels
    ) - MANDATORY


def test_policy_names_are_unique_and_described():
    assert len({p.name for p in POLICIES}) == len(POLICIES)
    assert all(p.description and p.description.endswith(".") for p in POLICIES)


def test_good_stack_passes_every_policy():
    assert check(GOOD) == []


def test_policy_config_can_make_an_advisory_policy_mandatory_and_disable_another():
    config = {
        "gpu-node-cap": {"enforcementLevel": "mandatory", "maxGpuNodes": 1},
        "k8s-image-pinned": "disabled",
    }
    found = check(GOOD.but(llm_image="chatchat/llm:latest"), config=config)
    assert [(v.policy, v.level) for v in found] == [("gpu-node-cap", "mandatory")]


# --- the real analyzer server ---------------------------------------------------------------


def pack_python() -> str:
    """A virtualenv made from policies/requirements.txt alone (the pack must load without the
    Pulumi program's packages), outside the source tree and keyed by the requirements' hash, so
    that a changed requirement gets a fresh, really installed environment."""
    requirements = PACK_DIR / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = cache / "chatchat-policy-pack" / f"venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").is_file():  # an interrupted install is redone, not trusted
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(requirements),
            ],
            check=True,
        )
        (venv / ".complete").write_text(requirements.read_text(encoding="utf-8"))
    return str(python)


@pytest.fixture(scope="module")
def analyzer():
    """Start the pack exactly as the Pulumi CLI's python policy analyzer does."""
    process = subprocess.Popen(
        [pack_python(), "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), f"pack did not start: {port!r} {process.stderr.read()}"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def _diagnostics(stub, rendering) -> set[tuple[str, str, int]]:
    found = set()
    for r in rendering.resources:
        response = stub.Analyze(
            analyzer_pb2.AnalyzeRequest(
                type=r.type,
                properties=_struct(r.plain_inputs()),
                urn=r.urn,
                name=r.name,
                options=analyzer_pb2.AnalyzerResourceOptions(
                    protect=r.protect, parent=r.parent or ""
                ),
            )
        )
        # The engine files a resource policy's diagnostics under the analyzed resource.
        found |= {(d.policyName, d.urn or r.urn, d.enforcementLevel) for d in response.diagnostics}
    resources = [
        analyzer_pb2.AnalyzerResource(
            type=r.type,
            properties=_struct(unwrap_secrets(r.outputs) or r.plain_inputs()),
            urn=r.urn,
            name=r.name,
            parent=r.parent or "",
            dependencies=r.dependencies,
            options=analyzer_pb2.AnalyzerResourceOptions(protect=r.protect),
        )
        for r in rendering.resources
    ]
    response = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
    found |= {(d.policyName, d.urn, d.enforcementLevel) for d in response.diagnostics}
    return found


def _offline(violations) -> set[tuple[str, str, int]]:
    return {(v.policy, v.urn or "", _LEVELS[EnforcementLevel(v.level)]) for v in violations}


def test_analyzer_server_describes_every_policy_with_level_and_schema(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "chatchat"
    served = {p.name: p for p in info.policies}
    assert set(served) == {p.name for p in POLICIES}
    for policy in POLICIES:
        assert served[policy.name].enforcementLevel == _LEVELS[policy.enforcement_level]
        kind = (
            analyzer_pb2.POLICY_TYPE_STACK
            if isinstance(policy, StackValidationPolicy)
            else analyzer_pb2.POLICY_TYPE_RESOURCE
        )
        assert served[policy.name].policy_type == kind
    assert "maxGpuNodes" in served["gpu-node-cap"].configSchema.properties
    load_balancer = served["k8s-no-public-load-balancer"]
    assert "allowPublicLoadBalancer" in load_balancer.configSchema.properties


def test_offline_runner_agrees_with_the_analyzer_server(analyzer):
    rendering = render(BROKEN)
    offline = _offline(check(BROKEN))
    assert {p for p, _, _ in offline} >= {
        "gpu-family-allowed",
        "aiacc-not-on-eci",
        "adb-whitelist-not-open",
        "oss-bucket-private",
        "k8s-image-pinned",
        "gpu-node-cap",
    }
    assert _diagnostics(analyzer, rendering) == offline


def test_offline_runner_agrees_with_the_configured_analyzer_server(analyzer):
    raw = {"gpu-node-cap": {"maxGpuNodes": 20}, "k8s-image-pinned": "advisory"}
    settings = parse_policy_config(raw, POLICIES)
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, level in settings.levels.items():  # the CLI sends every policy's resolved config
        request.policyConfig[name].enforcementLevel = _LEVELS[level]
        request.policyConfig[name].properties.update(settings.properties[name])
    analyzer.Configure(request)
    try:
        assert _diagnostics(analyzer, render(BROKEN)) == _offline(check(BROKEN, config=raw))
    finally:
        analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest())


def test_pack_imports_neither_the_program_nor_the_tools():
    for path in PACK_DIR.rglob("*.py"):
        if ".venv" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        imported |= {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and not node.level
        }
        assert not imported & {"components", "tools", "tests"}, path
