"""The offline diff on hand-declared programs: real pulumi_alicloud / pulumi_kubernetes resources
rendered before and after through the same mock engine as the stacks."""

from __future__ import annotations

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s
import pulumi_random as random
import pytest

from components.config import parse_config, raw_from_config_map
from tools.offline.engine import RenderedResource, Rendering, render_program
from tools.offline.stack_files import read_stack_file
from tools.preview.plan_diff import compare, in_llm_workload, property_changes
from tools.preview.report import (
    EXIT_DANGEROUS,
    EXIT_SAFE,
    GITHUB_COMMENT_LIMIT,
    Report,
    format_markdown,
    format_text,
)

CONFIG = read_stack_file("dev")
DEV = parse_config(raw_from_config_map(CONFIG), "dev")


class LlmWorkload(pulumi.ComponentResource):
    """Stands in for components/llm_workload.py: same type token, children under it."""

    def __init__(
        self,
        name: str,
        model: str,
        provider: k8s.Provider,
        selector: str = "llm",
        convert: bool = False,
    ):
        super().__init__("chatchat:workloads:LlmWorkload", name, None, None)
        opts = pulumi.ResourceOptions(parent=self, provider=provider)
        labels = {"app.kubernetes.io/component": selector}
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={
                "name": "llm-chatchat",
                "namespace": "chatchat",
                "annotations": {"chatchat.io/model": model},
            },
            spec={
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "llm",
                                "image": "registry/llm:0.1.0",
                                "env": [{"name": "LLM_MODEL", "value": model}],
                            }
                        ]
                    },
                },
            },
            opts=opts,
        )
        if convert:
            k8s.batch.v1.Job(
                f"{name}-convert",
                metadata={"namespace": "chatchat"},
                spec={
                    "template": {
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "containers": [
                                {
                                    "name": "convert",
                                    "image": "registry/llm:0.1.0",
                                    "args": [
                                        "python",
                                        "-m",
                                        "llm_server.convert",
                                        "--model",
                                        model,
                                    ],
                                }
                            ],
                        }
                    }
                },
                opts=opts,
            )
        self.register_outputs({})


def stack_program(
    model: str = "qwen-7b-chat-aiacc",
    *,
    adb_zone: str = "cn-hangzhou-k",
    adb_spec: str = "4C16G",
    chat_env: str = "faiss",
    selector: str = "llm",
    password_length: int = 24,
    nas: bool = True,
    convert: bool = False,
    bucket: str = "chatchat-models-1",
    chat_name: str = "chat-deployment",
    chat_alias: str | None = None,
    api_key: str = "k1",
):
    def program() -> None:
        password = random.RandomPassword("vectors-password", length=password_length, special=False)
        alicloud.gpdb.Instance(
            "vectors-instance",
            engine="gpdb",
            engine_version="6.0",
            vswitch_id="vsw-1",
            zone_id=adb_zone,
            db_instance_mode="StorageElastic",
            instance_spec=adb_spec,
            seg_node_num=4,
            storage_size=50,
            vector_configuration_status="enabled",
            opts=pulumi.ResourceOptions(protect=True),
        )
        if nas:
            alicloud.nas.FileSystem(
                "models-nas",
                protocol_type="NFS",
                storage_type="Performance",
                file_system_type="standard",
                zone_id="cn-hangzhou-k",
            )
        alicloud.oss.Bucket("models-bucket", bucket=bucket)
        provider = k8s.Provider("k8s", kubeconfig="apiVersion: v1\nkind: Config\n")
        opts = pulumi.ResourceOptions(provider=provider)
        k8s.core.v1.Secret(
            "api-key",
            metadata={"name": "chatchat-api", "namespace": "chatchat"},
            string_data={"LLM_API_KEY": api_key, "PG_PASSWORD": password.result},
            opts=opts,
        )
        aliases = [pulumi.Alias(name=chat_alias)] if chat_alias else None
        k8s.apps.v1.Deployment(
            chat_name,
            metadata={"name": "chat-chatchat", "namespace": "chatchat"},
            spec={
                "selector": {"matchLabels": {"app.kubernetes.io/component": "chat"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/component": "chat"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "chat",
                                "image": "registry/chat:0.1.0",
                                "env": [
                                    {"name": "LLM_MODEL", "value": model},
                                    {"name": "DEFAULT_VS_TYPE", "value": chat_env},
                                ],
                            }
                        ]
                    },
                },
            },
            opts=pulumi.ResourceOptions(provider=provider, aliases=aliases),
        )
        LlmWorkload("llm", model, provider, selector=selector, convert=convert)
        pulumi.export("llmModel", model)
        pulumi.export("vectorsPassword", password.result)

    return program


def diff_of(before: dict, after: dict, model_scope: bool = False):
    return compare(
        render_program(stack_program(**before), CONFIG, "dev"),
        render_program(stack_program(**after), CONFIG, "dev"),
        model_scope=model_scope,
    )


def changes(diff) -> dict[str, str]:
    return {c.name: c.op for c in diff.changes}


def test_identical_renderings_have_no_changes():
    diff = diff_of({}, {})
    assert diff.changes == [] and diff.unchanged > 5 and not diff.dangerous


def test_model_switch_touches_only_the_llm_workload_and_the_coupled_chat_env():
    diff = diff_of({}, {"model": "qwen-14b-chat-aiacc", "convert": True}, model_scope=True)
    assert changes(diff) == {
        "chat-deployment": "update",
        "llm-deployment": "update",
        "llm-convert": "create",
    }
    llm = next(c for c in diff.changes if c.name == "llm-deployment")
    assert {p.path: (p.old, p.new) for p in llm.properties} == {
        "metadata.annotations.chatchat.io/model": ("qwen-7b-chat-aiacc", "qwen-14b-chat-aiacc"),
        "spec.template.spec.containers[name=llm].env[name=LLM_MODEL].value": (
            "qwen-7b-chat-aiacc",
            "qwen-14b-chat-aiacc",
        ),
    }
    assert not diff.dangerous  # the chat pod naming the model is the one allowed coupling
    assert [(p.path, p.old, p.new) for p in diff.outputs] == [
        ("llmModel", "qwen-7b-chat-aiacc", "qwen-14b-chat-aiacc")
    ]
    assert Report("t", diff=diff).exit_code == EXIT_SAFE


def test_other_change_outside_the_llm_workload_is_out_of_scope_for_a_model_change():
    diff = diff_of({}, {"model": "qwen-14b-chat-aiacc", "chat_env": "adb"}, model_scope=True)
    chat = next(c for c in diff.changes if c.name == "chat-deployment")
    assert chat.dangers == ["out of scope: a model change should only touch the llm workload"]
    # the same change is fine for a general config diff
    assert not diff_of({}, {"chat_env": "adb"}).dangerous


def test_force_new_property_replaces_and_in_place_property_updates():
    diff = diff_of({}, {"adb_zone": "cn-hangzhou-j", "adb_spec": "8C32G"})
    instance = diff.changes[0]
    assert (instance.name, instance.op) == ("vectors-instance", "replace")
    assert {p.path: p.replaces for p in instance.properties} == {
        "zoneId": True,
        "instanceSpec": False,
    }
    assert any("replaces stateful ADB" in d for d in instance.dangers)
    assert any("protected" in d for d in instance.dangers)
    assert Report("t", diff=diff).exit_code == EXIT_DANGEROUS
    assert Report("t", diff=diff, allow_dangerous=True).exit_code == EXIT_SAFE

    resized = diff_of({}, {"adb_spec": "8C32G"})
    assert changes(resized) == {"vectors-instance": "update"} and not resized.dangerous


def test_kubernetes_immutable_selector_replaces_the_deployment():
    diff = diff_of({}, {"selector": "inference"})
    deployment = next(c for c in diff.changes if c.name == "llm-deployment")
    assert deployment.op == "replace"
    assert [p.path for p in deployment.properties if p.replaces] == [
        "spec.selector.matchLabels.app.kubernetes.io/component"
    ]


def test_stateful_deletion_is_dangerous_and_creation_is_not():
    removed = diff_of({}, {"nas": False})
    assert changes(removed) == {"models-nas": "delete"}
    assert removed.changes[0].dangers[0].startswith("deletes stateful NAS file system")
    added = diff_of({"nas": False}, {})
    assert changes(added) == {"models-nas": "create"} and not added.dangerous


def test_bucket_rename_replaces_the_bucket():
    diff = diff_of({}, {"bucket": "chatchat-models-2"})
    assert changes(diff) == {"models-bucket": "replace"} and diff.dangerous


def test_renamed_resource_is_delete_plus_create_unless_aliased():
    renamed = diff_of({}, {"chat_name": "chat-app"})
    assert changes(renamed) == {"chat-deployment": "delete", "chat-app": "create"}
    aliased = diff_of({}, {"chat_name": "chat-app", "chat_alias": "chat-deployment"})
    assert aliased.changes == []


def test_random_password_change_replaces_it():
    diff = diff_of({}, {"password_length": 32})
    # the Secret holding the password gets the new value: shown as a cascade, not hidden
    assert changes(diff) == {"vectors-password": "replace", "api-key": "update"}
    secret = next(c for c in diff.changes if c.name == "api-key")
    assert [(p.path, p.new) for p in secret.properties] == [
        ("stringData", "[unknown: vectors-password is replaced]")
    ]


def test_secrets_are_masked_in_every_output():
    diff = diff_of({"api_key": "old-key-value"}, {"api_key": "new-key-value"})
    secret = diff.changes[0]
    assert secret.name == "api-key" and secret.op == "update"
    assert [(p.path, p.old, p.new) for p in secret.properties] == [
        ("stringData", "[secret]", "[secret]")
    ]
    report = Report("t", diff=diff)
    for text in (format_text(report), format_markdown(report)):
        assert "old-key-value" not in text and "new-key-value" not in text


def test_llm_workload_membership_is_read_from_the_urn():
    base = "urn:pulumi:dev::chatchat::"
    assert in_llm_workload(base + "chatchat:workloads:LlmWorkload$kubernetes:core/v1:Service::svc")
    assert in_llm_workload(base + "kubernetes:core/v1:ConfigMap::llm-config")
    assert in_llm_workload(base + "chatchat:x:Other$kubernetes:batch/v1:Job::models-convert-qwen")
    assert not in_llm_workload(
        base + "chatchat:workloads:ChatWorkload$kubernetes:apps/v1:Deployment::chat-deployment"
    )
    assert not in_llm_workload(base + "kubernetes:batch/v1:Job::kb-ingest")


def _wide_rendering(count: int, suffix: str) -> Rendering:
    """A plan of `count` ConfigMaps built directly: the Markdown limit is about the report's size,
    not about the engine, so there is no need to render hundreds of resources through it."""
    stack = "urn:pulumi:dev::chatchat::pulumi:pulumi:Stack::chatchat-dev"
    resources = [
        RenderedResource(
            urn=f"urn:pulumi:dev::chatchat::kubernetes:core/v1:ConfigMap::cm-{i}",
            type="kubernetes:core/v1:ConfigMap",
            name=f"cm-{i}",
            parent=stack,
            custom=True,
            inputs={
                "metadata": {"name": f"cm-{i}"},
                "data": {f"key-{j}": f"value-{j}-{suffix}" for j in range(8)},
            },
        )
        for i in range(count)
    ]
    return Rendering(stack="dev", config=DEV, resources=resources, outputs={})


def test_markdown_stays_under_the_github_comment_limit_with_a_note():
    many = 400
    diff = compare(_wide_rendering(many, "a"), _wide_rendering(many, "b"))
    assert len(diff.by_op("update")) == many
    markdown = format_markdown(Report("wide", diff=diff))
    assert len(markdown) <= GITHUB_COMMENT_LIMIT
    assert "resource detail sections left out" in markdown
    assert markdown.count("<details>") < many
    small = format_markdown(Report("wide", diff=diff), limit=GITHUB_COMMENT_LIMIT * 4)
    assert "left out" not in small and small.count("<details>") == many


@pytest.mark.parametrize("limit", [2_000, 10_000])
def test_markdown_hard_limit_holds_even_when_the_summary_is_long(limit):
    diff = diff_of(
        {}, {"model": "qwen-14b-chat-aiacc", "nas": False, "bucket": "b-2"}, model_scope=True
    )
    assert len(format_markdown(Report("t" * 3000, diff=diff), limit=limit)) <= limit


def test_named_list_items_are_matched_by_name_and_other_lists_by_position():
    old = {
        "containers": [
            {
                "name": "chat",
                "env": [{"name": "LLM_MODEL", "value": "a"}, {"name": "KB_ROOT", "value": "/kb"}],
            }
        ],
        "args": ["--port", "8501"],
    }
    new = {
        "containers": [
            {
                "name": "chat",
                "env": [
                    {"name": "PG_HOST", "value": "gp-1"},
                    {"name": "LLM_MODEL", "value": "a"},
                    {"name": "KB_ROOT", "value": "/kb"},
                ],
            }
        ],
        "args": ["--port", "8501", "--debug"],
    }
    assert property_changes(old, new) == [
        ("containers[name=chat].env[name=PG_HOST]", None, {"name": "PG_HOST", "value": "gp-1"}),
        ("args[2]", None, "--debug"),
    ]


def _cluster_program(pod_cidr: str, zone: str = "cn-hangzhou-k"):
    def program() -> None:
        cluster = alicloud.cs.ManagedKubernetes(
            "cluster",
            cluster_spec="ack.pro.small",
            pod_cidr=pod_cidr,
            service_cidr="172.21.0.0/20",
            vswitch_ids=["vsw-1"],
        )
        alicloud.cs.NodePool(
            "cluster-gpu-a10",
            cluster_id=cluster.id,
            instance_types=["ecs.gn7i-c8g1.2xlarge"],
            vswitch_ids=["vsw-1"],
        )
        instance = alicloud.gpdb.Instance(
            "vectors-instance",
            engine="gpdb",
            engine_version="6.0",
            vswitch_id="vsw-1",
            zone_id=zone,
            db_instance_mode="StorageElastic",
            instance_spec="4C16G",
        )
        alicloud.gpdb.Account(
            "vectors-account",
            db_instance_id=instance.id,
            account_name="chatchat",
            account_password="Off1ine-pass",
        )
        # the kubeconfig comes from the cluster (the stack reads it through an invoke)
        provider = k8s.Provider(
            "k8s",
            kubeconfig=cluster.id.apply(
                lambda cid: f"apiVersion: v1\nkind: Config\n# cluster {cid}\n"
            ),
        )
        k8s.core.v1.PersistentVolumeClaim(
            "kb",
            metadata={"name": "chat-kb", "namespace": "chatchat"},
            spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
            opts=pulumi.ResourceOptions(provider=provider),
        )

    return program


def test_replacement_cascades_to_dependents_that_force_new():
    diff = compare(
        render_program(_cluster_program("172.20.0.0/16"), CONFIG, "dev"),
        render_program(_cluster_program("172.20.0.0/16", zone="cn-hangzhou-j"), CONFIG, "dev"),
    )
    assert changes(diff) == {"vectors-instance": "replace", "vectors-account": "replace"}
    account = next(c for c in diff.changes if c.name == "vectors-account")
    assert [(p.path, p.new, p.replaces) for p in account.properties] == [
        ("dbInstanceId", "[unknown: vectors-instance is replaced]", True)
    ]


def test_replacing_the_cluster_replaces_node_pools_and_everything_in_it():
    diff = compare(
        render_program(_cluster_program("172.20.0.0/16"), CONFIG, "dev"),
        render_program(_cluster_program("172.24.0.0/16"), CONFIG, "dev"),
    )
    ops = changes(diff)
    assert ops["cluster"] == ops["cluster-gpu-a10"] == ops["k8s"] == ops["kb"] == "replace"
    dangerous = {c.name for c in diff.changes if c.dangers}
    assert {"cluster", "cluster-gpu-a10", "kb"} <= dangerous
    assert "vectors-instance" not in ops
