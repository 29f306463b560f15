"""tools.preflight on recorded responses (tests/fixtures/preflight, in the shapes the APIs
document): every item passing on prod, and each failing with its key and fix."""

from __future__ import annotations

import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tools.preflight import main
from tools.preflight.account import BucketAnswer, RecordedAccount, SdkAccount, bucket_answer
from tools.preflight.checks import CHECKS

FIXTURES = Path(__file__).parent / "fixtures" / "preflight"


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "account")
    return tmp_path / "account"


def edit(directory: Path, operation: str, change) -> None:
    path = directory / f"{operation}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def run(
    directory: Path, capsys, stack: str = "prod", pull: bool = True, extra: tuple[str, ...] = ()
) -> tuple[int, str]:
    # The shipped stacks carry no pull secret; a real run sets it in the stack as a secret.
    secrets = (
        ["--set", "registry.pullUsername=deployer@1234", "--set", "registry.pullPassword=recorded"]
        if pull
        else []
    )
    code = main(["--stack", stack, *secrets, *extra], account=RecordedAccount(directory))
    return code, capsys.readouterr().out


def test_every_item_passes_on_prod(recorded, capsys):
    code, out = run(recorded, capsys)
    assert code == 0, out
    for item in (
        "ack-version",
        "ack-addons",
        "gpu-instance-type",
        "vcpu-quota",
        "adb-spec",
        "adb-quota",
        "service-role",
        "registry-pull",
    ):
        assert f"ok   {item}" in out
    assert "2 of 10 used" in out


def test_refused_ack_version_names_the_key(recorded, capsys):
    edit(
        recorded,
        "DescribeKubernetesVersionMetadata",
        lambda d: d.update(
            response=[r for r in d["response"] if r["version"] != "1.36.1-aliyun.1"]
        ),
    )
    code, out = run(recorded, capsys)
    assert code == 1
    assert "FAIL ack-version" in out
    assert "set cluster.version to one of 1.34.1-aliyun.1, 1.35.1-aliyun.1" in out


def test_instance_type_out_of_stock_in_a_zone(recorded, capsys):
    def out_of_stock(d):
        row = d["responses"]["cn-hangzhou-k/ecs.gn6e-c12g1.3xlarge"]
        zone = row["AvailableZones"]["AvailableZone"][0]
        resource = zone["AvailableResources"]["AvailableResource"][0]
        resource["SupportedResources"]["SupportedResource"][0]["Status"] = "SoldOut"

    edit(recorded, "DescribeAvailableResource", out_of_stock)
    code, out = run(recorded, capsys)
    assert code == 1
    assert "cluster.gpuPools[1].instanceTypes[0]: ecs.gn6e-c12g1.3xlarge is not offered" in out
    assert "cn-hangzhou-k" in out


def test_vcpu_quota_too_small(recorded, capsys):
    edit(
        recorded,
        "DescribeAccountAttributes",
        lambda d: d["response"]["AccountAttributeItems"]["AccountAttributeItem"][0][
            "AttributeValues"
        ]["ValueItem"][0].update(Value="64"),
    )
    code, out = run(recorded, capsys)
    assert code == 1 and "FAIL vcpu-quota" in out and "only 48 pay-as-you-go vCPUs" in out


def test_adb_spec_not_offered_in_the_zone(recorded, capsys):
    def drop(d):
        engine = d["responses"]["cn-hangzhou-j"]["Resources"][0]["SupportedEngines"][0]
        engine["SupportedInstanceClasses"] = [
            c for c in engine["SupportedInstanceClasses"] if c["InstanceClass"] != "4C32G"
        ]

    edit(recorded, "DescribeAvailableResources", drop)
    code, out = run(recorded, capsys)
    assert code == 1 and "db.adb.instanceSpec: 4C32G (HighAvailability" in out
    assert "16C128G, 2C16G" in out


def test_missing_autoscaler_role(recorded, capsys):
    edit(recorded, "GetRole", lambda d: d["responses"].update(AliyunCSManagedAutoScalerRole=None))
    code, out = run(recorded, capsys)
    assert code == 1 and "AliyunCSManagedAutoScalerRole does not exist" in out


def test_personal_registry_without_pull_password(recorded, capsys):
    code, out = run(recorded, capsys, pull=False)
    assert code == 1 and "FAIL registry-pull" in out and "registry.pullPassword" in out


ADDONS = "ack.pro.small/1.36.1-aliyun.1"


def test_an_addon_ack_does_not_offer_fails_before_up(recorded, capsys):
    edit(
        recorded,
        "ListAddons",
        lambda d: d["responses"][ADDONS].update(
            addons=[
                a
                for a in d["responses"][ADDONS]["addons"]
                if a["name"] != "ack-node-problem-detector"
            ]
        ),
    )
    code, out = run(recorded, capsys)
    assert code == 1 and "FAIL ack-addons" in out
    assert (
        "cluster.version: ACK offers no add-on ack-node-problem-detector for ack.pro.small "
        "1.36.1-aliyun.1 in cn-hangzhou" in out
    )


def test_an_old_csi_plugin_fails_the_oss_rrsa_volumes(recorded, capsys):
    def old(d):
        for a in d["responses"][ADDONS]["addons"]:
            if a["name"] == "csi-plugin":
                a["version"] = "v1.30.3-f3d2c1b-aliyun"

    edit(recorded, "ListAddons", old)
    code, out = run(recorded, capsys, stack="dev")
    assert code == 1
    assert "modelStore.type: csi-plugin v1.30.3-f3d2c1b-aliyun is older than v1.30.4" in out
    # prod keeps its models on NAS: the RRSA minimum does not apply there
    code, out = run(recorded, capsys)
    assert code == 0 and "older than" not in out


def test_a_new_enough_csi_plugin_passes_the_oss_store(recorded, capsys):
    code, out = run(recorded, capsys, stack="dev")
    assert code == 0, out
    assert "ok   ack-addons" in out and "csi-plugin v1.33.3-aliyun mounts OSS through RRSA" in out


def test_used_up_adb_quota_names_the_key_and_the_fix(recorded, capsys):
    edit(
        recorded,
        "ListProductQuotas",
        lambda d: d["responses"]["cn-hangzhou/gpdb"]["Quotas"][0].update(TotalUsage=10.0),
    )
    code, out = run(recorded, capsys)
    assert code == 1 and "FAIL adb-quota" in out
    assert "db.dbType: AnalyticDB for PostgreSQL instances per region" in out
    assert "used up in cn-hangzhou (10 of 10)" in out and "raise it in Quota Center" in out


def test_no_listed_adb_quota_is_said_not_failed(recorded, capsys):
    edit(recorded, "ListProductQuotas", lambda d: d.update(responses={}))
    code, out = run(recorded, capsys)
    assert code == 0 and "Quota Center lists no gpdb quota for cn-hangzhou" in out


def test_stacks_without_adb_ask_no_adb_quota(recorded, capsys):
    code, out = run(recorded, capsys, stack="dev", extra=BUCKET_FREE)
    assert code == 0 and "adb-quota" not in out


BUCKET_FREE = ("--set", "modelStore.bucketName=acme-chatchat-models")


def test_free_bucket_name_passes(recorded, capsys):
    code, out = run(recorded, capsys, stack="dev", extra=BUCKET_FREE)
    assert code == 0 and "ok   bucket-name" in out and "acme-chatchat-models is free" in out


def test_bucket_of_another_account_fails_naming_the_key(recorded, capsys):
    code, out = run(
        recorded, capsys, stack="dev", extra=("--set", "modelStore.bucketName=chatchat-models")
    )
    assert code == 1 and "FAIL bucket-name" in out
    assert "modelStore.bucketName: chatchat-models belongs to another account (AccessDenied)" in out
    assert "set modelStore.bucketName to another name" in out


def test_bucket_already_in_this_account_fails_with_import_hint(recorded, capsys):
    code, out = run(
        recorded, capsys, stack="dev", extra=("--set", "modelStore.bucketName=acme-models-ours")
    )
    assert code == 1 and "acme-models-ours already exists in this account" in out
    assert "`pulumi import`" in out


def test_generated_bucket_name_needs_no_question(recorded, capsys):
    code, out = run(recorded, capsys, stack="dev")
    assert code == 0 and "chatchat-models-dev-<8 hex>: a random suffix" in out


def test_bucket_answer_reads_the_documented_error_body():
    recorded = json.loads((FIXTURES / "GetBucketInfo.json").read_text(encoding="utf-8"))
    free = recorded["responses"]["acme-chatchat-models"]
    assert bucket_answer(free["status"], free["body"]) == BucketAnswer(404, "NoSuchBucket")
    assert bucket_answer(200, "") == BucketAnswer(200)


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        ("acme-chatchat-models", BucketAnswer(404, "NoSuchBucket")),
        ("chatchat-models", BucketAnswer(403, "AccessDenied")),
        ("acme-models-ours", BucketAnswer(200)),
    ],
)
def test_the_oss_sdk_reads_the_recorded_answers_over_http(monkeypatch, bucket, expected):
    """SdkAccount.bucket_info through the real OSS SDK against a local server that sends the
    recorded status and XML body: the SDK's error parsing is what the check relies on."""
    recorded = json.loads((FIXTURES / "GetBucketInfo.json").read_text(encoding="utf-8"))
    asked: list[str] = []

    class Oss(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            answer = recorded["responses"][self.path.split("/")[1]]
            body = answer["body"].encode()
            self.send_response(answer["status"])
            self.send_header("Content-Type", "application/xml")
            self.send_header("x-oss-request-id", "5C3D9175B6FC201293AD0000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    monkeypatch.setenv("ALICLOUD_ACCESS_KEY", "LTAIrecorded")
    monkeypatch.setenv("ALICLOUD_SECRET_KEY", "recorded")
    server = HTTPServer(("127.0.0.1", 0), Oss)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        account = SdkAccount(oss_endpoint=f"http://127.0.0.1:{server.server_port}")
        assert account.bucket_info("cn-hangzhou", bucket) == expected
    finally:
        server.shutdown()
    assert asked == [f"/{bucket}/?bucketInfo="]


def test_without_credentials_exits_2(monkeypatch, capsys, tmp_path):
    for key in (
        "ALICLOUD_ACCESS_KEY",
        "ALICLOUD_SECRET_KEY",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["--stack", "dev"]) == 2
    assert "no Alibaba Cloud credentials" in capsys.readouterr().err


def test_fixtures_name_their_documentation():
    for path in FIXTURES.glob("*.json"):
        assert json.loads(path.read_text(encoding="utf-8"))["source"].startswith("https://")


@pytest.mark.parametrize("operation", ["ListProductQuotas", "GetBucketInfo", "ListAddons"])
def test_new_fixtures_say_when_they_were_taken_from_the_docs(operation):
    data = json.loads((FIXTURES / f"{operation}.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["recordedOn"])


def test_readme_lists_every_item_preflight_checks(recorded, capsys):
    readme = Path("README.md").read_text(encoding="utf-8")
    section = readme.split("## Before the first `pulumi up`", 1)[1].split("\n## ", 1)[0]
    seen = set()
    for stack, extra in (("prod", ()), ("dev", BUCKET_FREE)):
        _, out = run(recorded, capsys, stack=stack, extra=extra)
        seen |= set(re.findall(r"^(?:ok  |FAIL) (\S+)", out, re.MULTILINE))
    assert len(seen) == len(CHECKS)  # every check ran on one of the two stacks
    for item in sorted(seen):
        assert f"| `{item}` |" in section, f"README's preflight section omits {item}"
