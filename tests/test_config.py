"""Stack config: chart parity keys and defaults, and every invalid case named by its key path."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from components.config import ConfigError, StackConfig, parse_config
from tests.conftest import SHIPPED_STACKS, ours

MINIMAL = {
    "tags": {"owner": "me"},
    "cluster": {
        "gpuPools": [{"name": "a10", "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"], "maxSize": 1}]
    },
}


def problems_of(raw: dict, stack: str = "dev") -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, stack)
    return dict(caught.value.problems)


def with_(base: dict, **dotted) -> dict:
    """A copy of `base` with `a__b__c=value` set at a.b.c."""
    raw = copy.deepcopy(base)
    for key, value in dotted.items():
        node = raw
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stacks_are_valid(stack):
    cfg = parse_config(ours(stack), stack)
    assert cfg.stack == stack and cfg.gpu_pools_fitting_llm()


# DESIGN.md §3: every chart value, under the chart's key path, with the chart's default.
CHART_DEFAULTS = {
    ("llm", "model"): "qwen-7b-chat-aiacc",
    ("llm", "load8bit"): True,
    ("llm", "modelPVC"): None,  # chart: user-made PVC; ours: made by the stack unless given
    ("llm", "pod", "replicas"): 1,
    ("llm", "pod", "instanceType"): "ecs",
    ("chat", "pod", "replicas"): 1,
    ("chat", "pod", "instanceType"): "ecs",
    ("chat", "kbPVC"): None,
    ("db", "dbType"): "faiss",
    ("db", "embeddingModel"): "text2vec-bge-large-chinese",
}


@pytest.mark.parametrize("path", list(CHART_DEFAULTS), ids=".".join)
def test_chart_values_have_the_chart_key_and_default(path):
    dumped = parse_config(MINIMAL, "dev").model_dump(by_alias=True)
    node = dumped
    for part in path:
        assert part in node, f"{'.'.join(path)} missing from the config tree"
        node = node[part]
    assert node == CHART_DEFAULTS[path]


def test_chart_keys_are_read_under_their_chart_names():
    raw = with_(
        MINIMAL,
        llm__modelPVC="my-models",
        chat__kbPVC="my-kb",
        llm__load8bit=False,
        db__dbType="adb",
        db__embeddingModel="bge-large-zh",
    )
    cfg = parse_config(raw, "dev")
    assert (cfg.llm.model_pvc, cfg.chat.kb_pvc, cfg.llm.load8bit) == ("my-models", "my-kb", False)
    assert (cfg.db.db_type, cfg.db.embedding_model) == ("adb", "bge-large-zh")


@pytest.mark.parametrize(
    ("raw", "key", "says"),
    [
        (
            with_(MINIMAL, llm__model="gpt-5"),
            "llm.model",
            "unknown model 'gpt-5'; allowed: qwen-7b",
        ),
        (
            with_(MINIMAL, llm__pod={"instanceType": "eci"}),
            "llm.pod.instanceType",
            "eci cannot run DeepGPU-LLM model qwen-7b-chat-aiacc",
        ),
        (
            with_(MINIMAL, llm__pod={"instanceType": "fargate"}),
            "llm.pod.instanceType",
            "'ecs' or 'eci'",
        ),
        (
            with_(MINIMAL, db__dbType="adb", db__adb={"instanceSpec": "2C8G"}),
            "db.adb.instanceSpec",
            "below 4C16G",
        ),
        (
            with_(MINIMAL, db__dbType="adb", db__adb={"instanceSpec": "4C8G"}),
            "db.adb.instanceSpec",
            "below 4C16G",
        ),
        (with_(MINIMAL, db__dbType="milvus"), "db.dbType", "'faiss' or 'adb'"),
        (
            with_(MINIMAL, llm__pod={"replicas": -1}),
            "llm.pod.replicas",
            "greater than or equal to 0",
        ),
        (
            with_(MINIMAL, chat__pod={"replicas": -2}),
            "chat.pod.replicas",
            "greater than or equal to 0",
        ),
        (
            with_(
                MINIMAL,
                cluster__gpuPools=[{"name": "t4", "instanceTypes": ["ecs.gn6i-c4g1.xlarge"]}],
            ),
            "cluster.gpuPools[0].instanceTypes[0]",
            "T4 is not supported",
        ),
        (
            with_(
                MINIMAL,
                cluster__gpuPools=[{"name": "v", "instanceTypes": ["ecs.vgn7i-vws-m4.xlarge"]}],
            ),
            "cluster.gpuPools[0].instanceTypes[0]",
            "vGPU families are not supported",
        ),
        (
            with_(MINIMAL, cluster__gpuPools=[{"name": "c", "instanceTypes": ["ecs.g7.xlarge"]}]),
            "cluster.gpuPools[0].instanceTypes[0]",
            "not a GPU instance type",
        ),
        (
            with_(MINIMAL, chat__pod={"replicas": 2}),
            "chat.pod.replicas",
            "cannot share a ReadWriteOnce knowledge-base volume",
        ),
        (
            with_(
                MINIMAL,
                chat__pod={"replicas": 2},
                chat__kbPVC="mine",
                chat__kb={"accessMode": "ReadWriteOnce"},
            ),
            "chat.pod.replicas",
            "ReadWriteOnce",
        ),
        (
            with_(MINIMAL, llm__model="llama-2-13b-hf", llm__load8bit=False),
            "llm.model",
            "needs 27.6 GiB of GPU memory on one card; no GPU pool fits: "
            "a10 (ecs.gn7i-c8g1.2xlarge)",
        ),
        (with_(MINIMAL, cluster__gpuPools=[]), "cluster.gpuPools", "needs a GPU pool"),
        (with_(MINIMAL, llm__image={"tag": "latest"}), "llm.image.tag", "not a pinned tag"),
        (
            with_(MINIMAL, zones=["cn-hangzhou-j", "cn-hangzhou-k"]),
            "network.vswitchCidrs",
            "1 CIDR(s) for 2 zone(s)",
        ),
        (
            with_(MINIMAL, network={"vswitchCidrs": ["10.0.0.0/20"]}),
            "network.vswitchCidrs[0]",
            "outside vpcCidr",
        ),
        (
            with_(MINIMAL, network={"podCidr": "192.168.0.0/20"}),
            "network.podCidr",
            "overlaps vpcCidr",
        ),
        (with_(MINIMAL, llm__modelPvc="x"), "llm.modelPvc", "unknown key"),
        (with_(MINIMAL, tags={}), "tags.owner", "Field required"),
        (with_(MINIMAL, release="Chat_Bot"), "release", "should match pattern"),
        (
            with_(MINIMAL, chat__service={"allowPublic": True}),
            "chat.service.allowPublic",
            "only applies to type LoadBalancer",
        ),
        (
            with_(
                MINIMAL,
                cluster__gpuPools=[
                    {
                        "name": "a",
                        "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"],
                        "minSize": 3,
                        "maxSize": 1,
                    }
                ],
            ),
            "cluster.gpuPools[0].minSize",
            "exceeds maxSize",
        ),
    ],
)
def test_invalid_config_is_rejected_naming_the_key(raw, key, says):
    problems = problems_of(raw)
    assert key in problems, f"expected a problem at {key}, got {problems}"
    assert says in problems[key]


def test_every_problem_is_reported_at_once():
    raw = with_(
        MINIMAL,
        llm__pod={"instanceType": "eci"},
        db__dbType="adb",
        db__adb={"instanceSpec": "2C8G"},
        chat__pod={"replicas": 3},
    )
    assert {"llm.pod.instanceType", "db.adb.instanceSpec", "chat.pod.replicas"} <= set(
        problems_of(raw)
    )


def test_error_text_lists_each_problem_on_its_own_line():
    with pytest.raises(ConfigError) as caught:
        parse_config(with_(MINIMAL, llm__model="nope", db__dbType="x"), "dev")
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid stack config (2 problem(s)):"
    assert any(line.startswith("  - llm.model: ") for line in lines)
    assert any(line.startswith("  - db.dbType: ") for line in lines)


def test_int8_lets_a_13b_aiacc_model_fit_an_a10_pool():
    cfg = parse_config(with_(MINIMAL, llm__model="llama-2-13b-hf-aiacc", llm__load8bit=True), "dev")
    assert [p.name for p in cfg.gpu_pools_fitting_llm()] == ["a10"]


def test_open_source_13b_with_load8bit_is_refused_on_a10_because_vllm_serves_fp16():
    problems = problems_of(with_(MINIMAL, llm__model="llama-2-13b-hf", llm__load8bit=True))
    assert "llm.model" in problems
    assert "(fp16) needs 27.6 GiB" in problems["llm.model"]


def test_eci_runs_an_open_source_model():
    cfg = parse_config(
        with_(MINIMAL, llm__model="qwen-7b-chat", llm__pod={"instanceType": "eci"}), "dev"
    )
    assert cfg.uses_eci


def test_tags_carry_project_stack_and_owner():
    tags = parse_config(
        with_(MINIMAL, tags={"owner": "ops", "extra": {"team": "rag"}}), "staging"
    ).resource_tags()
    assert tags == {"project": "chatchat", "stack": "staging", "owner": "ops", "team": "rag"}


def test_config_models_are_immutable():
    cfg = parse_config(MINIMAL, "dev")
    with pytest.raises(ValidationError):
        cfg.llm.model = "qwen-14b-chat-aiacc"
    assert isinstance(cfg, StackConfig)


@pytest.mark.parametrize(
    ("raw", "key", "says"),
    [
        (
            with_(MINIMAL, chat__pod={"replicas": 2}, chat__kb={"storage": "nas"}),
            "chat.pod.replicas",
            "cannot write one faiss index",
        ),
        (
            with_(MINIMAL, llm__pod={"labels": {"bad key!": "x"}}),
            "llm.pod.labels.bad key!",
            "not a valid Kubernetes label key",
        ),
        (
            with_(MINIMAL, chat__pod={"nodeSelector": {"pool": "a b"}}),
            "chat.pod.nodeSelector.pool",
            "not a valid label value",
        ),
        (
            with_(MINIMAL, tags={"owner": "me", "extra": {"aliyun-x": "1"}}),
            "tags.extra.aliyun-x",
            "cannot start with aliyun",
        ),
        (
            with_(
                MINIMAL,
                cluster__gpuPools=[
                    {
                        "name": "a",
                        "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"],
                        "taints": [{"key": "-bad"}],
                    }
                ],
            ),
            "cluster.gpuPools[0].taints[0].key",
            "not a valid Kubernetes label key",
        ),
    ],
)
def test_more_invalid_config_is_rejected_naming_the_key(raw, key, says):
    problems = problems_of(raw)
    assert key in problems, f"expected a problem at {key}, got {problems}"
    assert says in problems[key]


def test_several_chat_replicas_on_adb_and_nas_are_fine():
    raw = with_(MINIMAL, chat__pod={"replicas": 3}, chat__kb={"storage": "nas"}, db__dbType="adb")
    assert parse_config(raw, "dev").chat.pod.replicas == 3


def test_annotation_values_are_free_text():
    raw = with_(MINIMAL, llm__pod={"annotations": {"example.com/note": "any text, with spaces"}})
    assert parse_config(raw, "dev").llm.pod.annotations


def test_structural_and_cross_key_problems_are_reported_in_one_run():
    raw = with_(
        MINIMAL,
        db__dbType="milvus",
        llm__pod={"instanceType": "eci"},
        network={"vswitchCidrs": ["10.0.0.0/20"]},
    )
    assert {"db.dbType", "llm.pod.instanceType", "network.vswitchCidrs[0]"} <= set(problems_of(raw))


def test_rules_reading_a_broken_key_wait_for_it():
    # chat.pod.replicas=2 would break the faiss rule, but db is broken: no guess from defaults.
    problems = problems_of(
        with_(MINIMAL, db__dbType="milvus", chat__pod={"replicas": 2}, chat__kb={"storage": "nas"})
    )
    assert set(problems) == {"db.dbType"}


def test_chat_on_eci_needs_a_spec_it_can_derive():
    raw = with_(
        MINIMAL, chat__pod={"instanceType": "eci", "resources": {"requests": {"cpu": "500m"}}}
    )
    assert "cannot derive an ECI spec from cpu 500m" in problems_of(raw)["chat.pod.eciSpecs"]


def test_chat_on_eci_gets_a_spec_from_its_requests():
    cfg = parse_config(with_(MINIMAL, chat__pod={"instanceType": "eci"}), "dev")
    assert cfg.eci_specs("chat") == ["4-8Gi"]


@pytest.mark.parametrize(
    ("raw", "key", "says"),
    [
        (
            with_(MINIMAL, chat__signIn={"issuer": "https://idp.example.com"}),
            "chat.signIn.clientId",
            "required with chat.signIn.issuer",
        ),
        (
            with_(MINIMAL, chat__signIn={"clientId": "chatchat"}),
            "chat.signIn.issuer",
            "required with chat.signIn.clientId",
        ),
        (
            {**MINIMAL, "oidcClientSecret": "s3cret"},
            "chat.signIn.issuer",
            "required with oidcClientSecret",
        ),
        (
            with_(MINIMAL, chat__signIn={"issuer": "http://idp.example.com", "clientId": "c"}),
            "chat.signIn.issuer",
            "should match pattern",
        ),
        (
            with_(
                MINIMAL,
                chat__signIn={
                    "issuer": "https://idp.example.com",
                    "clientId": "c",
                    "roleMap": {"admins": ["root"]},
                },
            ),
            "chat.signIn.roleMap.admins[0]",
            "'admin' or 'creator'",
        ),
    ],
)
def test_sign_in_config_is_checked_naming_the_key(raw, key, says):
    problems = problems_of(raw)
    assert key in problems, f"expected a problem at {key}, got {problems}"
    assert says in problems[key]
