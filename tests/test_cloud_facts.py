"""The cloud facts table and the config rules that read it: values the Alibaba Cloud API would
refuse fail in `plan`, naming the key (issue 13)."""

from __future__ import annotations

import json
import re
import sys

import pytest

from components import cloud_facts
from components.config import ConfigError, parse_config
from tests.conftest import SHIPPED_STACKS, ours
from tests.test_config import MINIMAL, problems_of, with_

ADB = {"dbType": "adb", "adb": {"instanceSpec": "4C16G", "segNodeNum": 4}}


def test_every_fact_has_a_value_a_source_and_a_date():
    for area, rows in cloud_facts.facts().items():
        if area.startswith("_"):
            continue
        for name, row in rows.items():
            assert {"value", "source", "verifiedOn", "verified"} <= row.keys(), f"{area}.{name}"
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["verifiedOn"]), f"{area}.{name}"
            assert row["source"].strip(), f"{area}.{name}"


def test_unverified_facts_are_listed_in_the_docs():
    docs = open("docs/infrastructure.md", encoding="utf-8").read()
    for key in cloud_facts.unverified():
        assert f"`{key}`" in docs, f"{key} is unverified but docs/infrastructure.md omits it"


def test_every_fact_is_listed_in_the_docs_with_its_verification_state():
    docs = open("docs/infrastructure.md", encoding="utf-8").read()
    section = docs.split("## Cloud facts the program relies on", 1)[1]
    verified, unverified = section.split("**Unverified until a real account runs it**", 1)
    for area, rows in cloud_facts.facts().items():
        if area.startswith("_"):
            continue
        for name, row in rows.items():
            key = f"`{area}.{name}`"
            where = verified if row["verified"] else unverified
            assert key in where, f"{area}.{name} is missing from its docs list"
            if row["verified"]:
                assert f"| {key} |" in verified, f"{area}.{name}: no row in the verified table"
                assert key not in unverified.split("- Parts of verified rows")[0], key


def test_policy_pack_reads_the_same_table():
    sys.path.insert(0, "policies")
    try:
        from chatchat_policies import cloud_facts as pack_facts
    finally:
        sys.path.remove("policies")
    assert pack_facts.facts() == cloud_facts.facts()


def test_the_default_version_is_creatable():
    assert (
        cloud_facts.ack_minor(cloud_facts.value("ack", "defaultVersion"))
        in cloud_facts.creatable_ack_minors()
    )


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stacks_pin_a_creatable_ack_version(stack):
    cfg = parse_config(ours(stack), stack)
    assert cloud_facts.ack_minor(cfg.cluster.version) in cloud_facts.creatable_ack_minors()


def test_end_of_life_ack_version_fails_in_plan():
    problems = problems_of(with_(MINIMAL, cluster__version="1.31.1-aliyun.1"))
    assert "ACK creates clusters only on 1.34, 1.35, 1.36" in problems["cluster.version"]


def test_basic_spec_is_refused_for_a_high_availability_instance():
    raw = with_(MINIMAL, db=ADB, production=True, chat__pod={"replicas": 1})
    problems = problems_of(raw, "prod")
    assert "not a HighAvailability storage-elastic spec" in problems["db.adb.instanceSpec"]
    assert "2C16G, 4C32G, 16C128G" in problems["db.adb.instanceSpec"]


def test_high_availability_spec_is_accepted_in_production():
    adb = {"dbType": "adb", "adb": {"instanceSpec": "4C32G", "segNodeNum": 4}}
    cfg = parse_config(with_(MINIMAL, db=adb, production=True), "prod")
    assert cfg.db.adb.instance_spec == "4C32G"


def test_basic_spec_is_accepted_outside_production():
    assert parse_config(with_(MINIMAL, db=ADB), "dev").db.adb.instance_spec == "4C16G"


def test_driver_not_offered_by_ack_fails_in_plan():
    pools = [
        {
            "name": "a10",
            "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"],
            "maxSize": 1,
            "driverVersion": "535.161.07",
        }
    ]
    problems = problems_of(with_(MINIMAL, cluster__gpuPools=pools))
    assert "not an NVIDIA driver ACK installs" in problems["cluster.gpuPools[0].driverVersion"]


def test_driver_from_the_table_is_accepted():
    version = cloud_facts.nvidia_driver_versions()[0]
    pools = [
        {
            "name": "a10",
            "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"],
            "maxSize": 1,
            "driverVersion": version,
        }
    ]
    assert parse_config(with_(MINIMAL, cluster__gpuPools=pools), "dev")


@pytest.mark.parametrize("name", ["KB_Files", "kb files", "-kb", "知识库"])
def test_kb_pvc_that_is_not_a_dns_name_fails_in_plan(name):
    assert (
        "not a Kubernetes object name"
        in problems_of(with_(MINIMAL, chat__kbPVC=name))["chat.kbPVC"]
    )


def test_zone_of_another_region_fails_in_plan():
    problems = problems_of(with_(MINIMAL, zones=["cn-beijing-k"]))
    assert "not a zone of region cn-hangzhou" in problems["zones[0]"]


def test_open_api_server_cidr_is_refused():
    problems = problems_of(with_(MINIMAL, cluster__apiServerAllowedCidrs=["0.0.0.0/0"]))
    assert "opens the API server to the internet" in problems["cluster.apiServerAllowedCidrs[0]"]


def test_pod_vswitches_need_one_per_zone_inside_the_vpc():
    problems = problems_of(with_(MINIMAL, network={"podVswitchCidrs": ["10.9.0.0/18"]}))
    assert "outside vpcCidr" in problems["network.podVswitchCidrs[0]"]
    problems = problems_of(with_(MINIMAL, network={"podVswitchCidrs": ["192.168.0.0/20"]}))
    assert "overlaps another vSwitch" in problems["network.podVswitchCidrs[0]"]


def test_enterprise_registry_needs_its_instance():
    problems = problems_of(with_(MINIMAL, registry={"edition": "enterprise"}))
    assert {"registry.instanceId", "registry.endpoint"} <= problems.keys()


def test_facts_file_is_json_with_no_duplicate_keys():
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), keys
        return dict(pairs)

    json.loads(cloud_facts.FACTS_PATH.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)


def test_config_error_lists_every_fact_problem_at_once():
    raw = with_(MINIMAL, cluster__version="1.30.1-aliyun.1", zones=["cn-shanghai-a"])
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "dev")
    keys = {k for k, _ in caught.value.problems}
    assert {"cluster.version", "zones[0]"} <= keys


def test_stack_name_that_makes_an_invalid_bucket_name_fails_in_plan():
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL, "Prod_EU")
    problems = dict(caught.value.problems)
    assert "chatchat-models-Prod_EU-<8 hex>" in problems["modelStore.bucketPrefix"]
    assert "set modelStore.bucketName" in problems["modelStore.bucketPrefix"]


@pytest.mark.parametrize("name", ["Models", "my_models", "-models", "ab", "m" * 64])
def test_explicit_bucket_name_oss_refuses_fails_in_plan(name):
    problems = problems_of(with_(MINIMAL, modelStore={"bucketName": name}))
    assert "is not an OSS bucket name" in problems["modelStore.bucketName"]


def test_a_valid_explicit_bucket_name_replaces_the_random_suffix():
    cfg = parse_config(with_(MINIMAL, modelStore={"bucketName": "acme-chatchat-models"}), "Prod_EU")
    assert cfg.model_store.bucket_name == "acme-chatchat-models"


def test_bucket_name_is_not_checked_without_an_oss_store():
    raw = with_(MINIMAL, modelStore={"type": "nas", "bucketName": "Not_Used"})
    assert parse_config(raw, "dev").model_store.type == "nas"
