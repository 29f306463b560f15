"""tools.preflight on recorded responses (tests/fixtures/preflight, in the shapes the APIs
document): every item passing on prod, and each failing with its key and fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools.preflight import main
from tools.preflight.account import RecordedAccount

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


def run(directory: Path, capsys, stack: str = "prod", pull: bool = True) -> tuple[int, str]:
    # The shipped stacks carry no pull secret; a real run sets it in the stack as a secret.
    secrets = (
        ["--set", "registry.pullUsername=deployer@1234", "--set", "registry.pullPassword=recorded"]
        if pull
        else []
    )
    code = main(["--stack", stack, *secrets], account=RecordedAccount(directory))
    return code, capsys.readouterr().out


def test_every_item_passes_on_prod(recorded, capsys):
    code, out = run(recorded, capsys)
    assert code == 0, out
    for item in (
        "ack-version",
        "gpu-instance-type",
        "vcpu-quota",
        "adb-spec",
        "service-role",
        "registry-pull",
    ):
        assert f"ok   {item}" in out


def test_refused_ack_version_names_the_key(recorded, capsys):
    edit(
        recorded,
        "DescribeKubernetesVersionMetadata",
        lambda d: d.update(
            response=[r for r in d["response"] if r["version"] != "1.34.1-aliyun.1"]
        ),
    )
    code, out = run(recorded, capsys)
    assert code == 1
    assert "FAIL ack-version" in out and "set cluster.version to one of 1.35.1-aliyun.1" in out


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
