"""Bulk imports (`chat.imports`): the config rules name the key, the rendered Indexed Job is what
the worker's contract says and what the cluster's Kubernetes accepts, the policy pack passes it,
and the diff tools call a change of it an import, not a workload change."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from components.config import ConfigError
from tests.conftest import rendered
from tests.test_config import MINIMAL, problems_of, with_
from tests.workload_harness import container, env_of, objects_of, one_object, render_workloads
from tools.checks.policy_runner import check_rendering, load_policies, parse_policy_config
from tools.offline.engine import render_config
from tools.offline.stack_files import apply_overrides, read_stack_file
from tools.preview.plan_diff import compare, in_import, in_llm_workload

OSS = {"oss": {"bucket": "corp-docs", "prefix": "manuals/2026"}}
KB = "企业产品手册"


def imports(*items: dict) -> dict:
    return {"chat.imports": list(items)}


def an_import(**fields) -> dict:
    return {"knowledgeBase": KB, "source": OSS, **fields}


def job_of(rendering) -> dict:
    """The one bulk-import Job (an aiacc llm adds its conversion Job beside it)."""
    (job,) = [
        j
        for j in objects_of(rendering, "Job")
        if j["metadata"]["labels"].get("app.kubernetes.io/component") == "import"
    ]
    return job


def _schema_version(rendering) -> str:
    return rendering.config.cluster.version.split("-")[0]


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "key", "says"),
    [
        (
            {"knowledgeBase": "docs", "source": {}},
            "chat.imports[0].source",
            "give exactly one of oss",
        ),
        (
            {"knowledgeBase": "docs", "source": {**OSS, "pvc": "corpus"}},
            "chat.imports[0].source",
            "oss and pvc given",
        ),
        (
            {"knowledgeBase": "docs", "source": {"oss": {"bucket": "Corp_Docs"}}},
            "chat.imports[0].source.oss.bucket",
            "not an OSS bucket name",
        ),
        (
            {"knowledgeBase": "docs", "source": {"oss": {"bucket": "docs", "prefix": "a/../b"}}},
            "chat.imports[0].source.oss.prefix",
            "'..' segment",
        ),
        (
            {"knowledgeBase": "docs", "source": {"nas": {"server": "x.nas.aliyuncs.com"}}},
            "chat.imports[0].source.nas.path",
            "Field required",
        ),
        (
            {"knowledgeBase": "docs", "source": {"oss": {"bucket": "docs"}, "subPath": "a"}},
            "chat.imports[0].source",
            "subPath only applies to a pvc source",
        ),
        ({"knowledgeBase": "a/b", "source": OSS}, "chat.imports[0].knowledgeBase", "separator"),
        ({"knowledgeBase": "..", "source": OSS}, "chat.imports[0].knowledgeBase", "'..'"),
        ({"knowledgeBase": "a\x07b", "source": OSS}, "chat.imports[0].knowledgeBase", "control"),
        ({"knowledgeBase": "知" * 101, "source": OSS}, "chat.imports[0].knowledgeBase", "100"),
        (
            {"knowledgeBase": "docs", "source": OSS, "parallelism": 4, "shards": 2},
            "chat.imports[0].shards",
            "at least as many shards",
        ),
        (
            {"knowledgeBase": "docs", "source": OSS, "parallelism": 0},
            "chat.imports[0].parallelism",
            "greater than or equal to 1",
        ),
        (
            {"knowledgeBase": "docs", "source": OSS, "gpu": True, "parallelism": 2},
            "chat.imports[0].parallelism",
            "the GPU pools grow to 1 node(s) (a10 (maxSize 1))",
        ),
        (
            {
                "knowledgeBase": "docs",
                "source": OSS,
                "resources": {"limits": {"nvidia.com/gpu": "2"}},
            },
            "chat.imports[0].resources.limits.nvidia.com/gpu",
            "set by gpu: true",
        ),
        (
            {"knowledgeBase": "docs", "source": OSS, "unknownKey": 1},
            "chat.imports[0].unknownKey",
            "unknown key",
        ),
    ],
)
def test_bad_import_config_is_refused_naming_the_key(item, key, says):
    problems = problems_of(with_(MINIMAL, chat__imports=[item]))
    assert key in problems, problems
    assert says in problems[key]


def test_gpu_import_needs_a_gpu_pool():
    raw = with_(MINIMAL, cluster__gpuPools=[], llm__pod={"instanceType": "eci"})
    raw["llm"]["model"] = "qwen-7b-chat"
    problems = problems_of(with_(raw, chat__imports=[an_import(gpu=True)]))
    assert "needs a GPU pool" in problems["chat.imports[0].gpu"]


def test_the_same_import_twice_is_refused():
    problems = problems_of(with_(MINIMAL, chat__imports=[an_import(), an_import(parallelism=2)]))
    assert "raise that one's rerun" in problems["chat.imports[1]"]


def test_gpu_import_next_to_a_digest_pinned_cpu_chat_image_is_refused():
    digest = "sha256:" + "0" * 64
    raw = with_(MINIMAL, chat__image={"digest": digest}, chat__imports=[an_import(gpu=True)])
    assert "pins the CPU build" in problems_of(raw)["chat.imports[0].gpu"]


# --- the rendered Job ------------------------------------------------------------------------


def test_chinese_knowledge_base_gets_a_dns_label_job_name_and_a_stable_import_id():
    first = job_of(render_workloads("dev", imports(an_import())))
    again = job_of(render_workloads("dev", imports(an_import(parallelism=2, rerun=3))))
    other = job_of(render_workloads("dev", imports(an_import(knowledgeBase="企业产品手册v2"))))
    name = first["metadata"]["name"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name), name
    import_id = first["metadata"]["labels"]["chatchat.io/import-id"]
    assert name == f"import-{import_id[:10]}"  # no ASCII in the name: the id alone
    assert again["metadata"]["labels"]["chatchat.io/import-id"] == import_id  # sizing, rerun
    other_id = other["metadata"]["labels"]["chatchat.io/import-id"]
    assert other_id != import_id
    assert other["metadata"]["name"] == f"import-v2-{other_id[:10]}"  # its ASCII part
    assert first["metadata"]["annotations"]["chatchat.io/knowledge-base"] == KB


def test_job_runs_the_workers_contract():
    rendering = render_workloads("staging")  # ADB, an OSS import of 8 shards, 2 at a time
    job = job_of(rendering)
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"]) == (8, 2)
    assert spec["backoffLimitPerIndex"] == 2 and "maxFailedIndexes" not in spec
    assert "ttlSecondsAfterFinished" not in spec
    assert pod["restartPolicy"] == "Never"
    worker = container(job)
    import_id = job["metadata"]["labels"]["chatchat.io/import-id"]
    assert worker["command"] == [
        "python",
        "-m",
        "chat_server.bulk_import",
        "run",
        "--knowledge-base",
        "产品手册",
        "--source",
        "/import",
        "--import-id",
        import_id,
    ]
    env = env_of(worker)
    chat_env = env_of(container(one_object(rendering, "Deployment", "chat-chatchat")))
    assert env["IMPORT_SHARD_COUNT"] == "8" and "JOB_COMPLETION_INDEX" not in env
    for key in ("EMBEDDING_MODEL", "MODEL_ROOT", "DEFAULT_VS_TYPE", "CHAT_API_KEY"):
        assert env[key] == chat_env[key], key
    for key in ("PG_HOST", "PG_PORT", "PG_DATABASE", "PG_USER", "PG_PASSWORD"):
        assert env[key] == chat_env[key], key
    assert env["CHAT_API_URL"] == "http://chat-chatchat:7861"
    assert "EMBEDDING_DEVICE" not in env  # a CPU import
    mounts = {m["mountPath"]: m for m in worker["volumeMounts"]}
    assert set(mounts) == {"/llm-model", "/import", "/tmp"}  # no KB volume
    assert mounts["/llm-model"]["readOnly"] and mounts["/import"]["readOnly"]
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"chatchat.io/node-pool": "system"}


def test_oss_source_is_a_read_only_rrsa_volume_of_the_prefix():
    rendering = render_workloads("staging")
    job = job_of(rendering)
    claim_name = next(
        v["persistentVolumeClaim"]["claimName"]
        for v in job["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "source"
    )
    claim = one_object(rendering, "PersistentVolumeClaim", claim_name)
    volume = one_object(rendering, "PersistentVolume", claim["spec"]["volumeName"])
    assert claim["spec"]["accessModes"] == volume["spec"]["accessModes"] == ["ReadOnlyMany"]
    csi = volume["spec"]["csi"]
    assert csi["driver"] == "ossplugin.csi.alibabacloud.com" and csi["readOnly"] is True
    attributes = csi["volumeAttributes"]
    assert attributes["bucket"] == "chatchat-staging-corpus"
    assert attributes["path"] == "/manuals"
    assert attributes["url"] == "oss-cn-hangzhou-internal.aliyuncs.com"
    assert attributes["authType"] == "rrsa" and attributes["roleName"]
    assert " -o ro" in attributes["otherOpts"]
    assert not {"akId", "akSecret"} & attributes.keys()


def test_nas_and_pvc_sources_mount_read_only():
    nas = {"nas": {"server": "0c1a2b-xyz.cn-hangzhou.nas.aliyuncs.com", "path": "/corpus"}}
    rendering = render_workloads("dev", imports(an_import(source=nas)))
    (volume,) = [
        v
        for v in objects_of(rendering, "PersistentVolume")
        if v["spec"]["csi"]["driver"] == "nasplugin.csi.alibabacloud.com"
    ]
    assert volume["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert volume["spec"]["csi"]["volumeAttributes"]["path"] == "/corpus"
    pvc = render_workloads("dev", imports(an_import(source={"pvc": "corpus", "subPath": "a/b"})))
    pod = job_of(pvc)["spec"]["template"]["spec"]
    source = next(v for v in pod["volumes"] if v["name"] == "source")
    assert source["persistentVolumeClaim"] == {"claimName": "corpus", "readOnly": True}
    mount = next(m for m in container(job_of(pvc))["volumeMounts"] if m["name"] == "source")
    assert mount == {"name": "source", "mountPath": "/import", "readOnly": True, "subPath": "a/b"}
    assert not objects_of(pvc, "PersistentVolume")


def test_gpu_import_lands_on_the_gpu_pools_like_a_gpu_chat_pod():
    gpu_chat = {"chat.pod.resources": {"limits": {"nvidia.com/gpu": "1"}}}
    chat_pod = one_object(render_workloads("prod", gpu_chat), "Deployment", "chat-chatchat")
    rendering = render_workloads("prod", imports(an_import(gpu=True, parallelism=2, shards=6)))
    job = job_of(rendering)
    pod, worker = job["spec"]["template"]["spec"], container(job)
    chat_spec = chat_pod["spec"]["template"]["spec"]
    assert pod["affinity"] == chat_spec["affinity"]
    assert pod["tolerations"] == chat_spec["tolerations"]
    assert "nodeSelector" not in pod
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert env_of(worker)["EMBEDDING_DEVICE"] == "cuda"
    assert worker["image"].endswith(":0.1.0-cuda")  # chat itself runs the CPU build here


def test_changed_import_replaces_its_job_delete_first():
    rendering = render_workloads("staging")
    (record,) = [
        r for r in rendering.resources if r.type == "kubernetes:batch/v1:Job" and in_import(r.urn)
    ]
    assert record.options["deleteBeforeReplace"] is True
    replaced = set(record.options["replaceOnChanges"])
    assert {"spec.template", "spec.completions", "spec.backoffLimitPerIndex"} <= replaced
    assert "spec.parallelism" not in replaced  # mutable: resized in place
    # `pulumi up` does not wait hours for the import
    assert record.plain_inputs()["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # staging's OSS import into ADB
        imports(an_import(gpu=True, parallelism=2, maxFailedShards=1, shards=4)),
        imports(an_import(source={"pvc": "corpus", "subPath": "x"})),
    ],
    ids=["staging-oss", "gpu", "pvc"],
)
def test_rendered_import_objects_validate_strictly(overrides):
    stack = "staging" if not overrides else "prod"
    rendering = render_workloads(stack, overrides)
    version = _schema_version(rendering)
    kinds = {"Job", "PersistentVolume", "PersistentVolumeClaim", "NetworkPolicy", "ServiceAccount"}
    checked = 0
    for kind in kinds:
        for manifest in objects_of(rendering, kind):
            kubernetes_validate.validate(manifest, version, strict=True)
            checked += 1
    assert job_of(rendering) and checked > 5


def test_strict_schema_refuses_a_misspelt_job_field():
    job = job_of(render_workloads("staging"))
    job["spec"]["backoffLimitPerIndexes"] = job["spec"].pop("backoffLimitPerIndex")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.36.1", strict=True)


# --- the policy pack and the diff tools ------------------------------------------------------


@pytest.mark.parametrize("gpu", [False, True])
def test_policy_pack_passes_the_stack_with_an_import(gpu):
    config = apply_overrides(read_stack_file("staging"), imports(an_import(gpu=gpu)))
    rendering = render_config(config, "staging")
    policies = load_policies()
    violations = check_rendering(rendering, policies, parse_policy_config({}, policies))
    assert [v.message for v in violations] == []


def test_policy_pack_refuses_a_gpu_import_wider_than_the_pools():
    # past the config rules (which refuse it first): the pack judges what is declared
    config = apply_overrides(read_stack_file("staging"), imports(an_import(gpu=True)))
    rendering = render_config(config, "staging")
    for record in rendering.resources:
        if record.type == "kubernetes:batch/v1:Job" and in_import(record.urn):
            for state in (record.inputs, record.outputs):
                if state:
                    state["spec"]["parallelism"] = 4  # staging's a10 pool grows to 3
    policies = load_policies()
    found = [
        v
        for v in check_rendering(rendering, policies, parse_policy_config({}, policies))
        if v.policy == "gpu-pods-fit-gpu-pools"
    ]
    assert len(found) == 1 and "lower parallelism" in found[0].message


def test_an_import_change_is_an_import_job_change_not_a_workload_change():
    before = rendered("staging")
    config = read_stack_file("staging")
    (item,) = config["chatchat:chat"]["imports"]
    after = render_config(apply_overrides(config, imports({**item, "rerun": 1})), "staging")
    diff = compare(before, after)
    (change,) = diff.changes
    assert change.op == "replace" and change.type == "kubernetes:batch/v1:Job"
    assert change.bulk_import and not change.llm_workload and change.scope == "import"
    assert not diff.dangerous  # a re-run is idempotent: nothing stateful goes
    model_diff = compare(before, after, model_scope=True)
    assert model_diff.dangerous  # a model change must not re-run imports


def test_only_a_parallelism_change_keeps_the_job():
    config = read_stack_file("staging")
    (item,) = config["chatchat:chat"]["imports"]
    before = rendered("staging")
    wider = render_config(apply_overrides(config, imports({**item, "parallelism": 4})), "staging")
    (change,) = compare(before, wider).changes
    assert change.op == "update"
    retries = render_config(
        apply_overrides(config, imports({**item, "retriesPerShard": 5})), "staging"
    )
    (change,) = compare(before, retries).changes
    assert change.op == "replace"


def test_import_membership_is_read_from_the_urn():
    base = "urn:pulumi:staging::chatchat::"
    assert in_import(base + "chatchat:chat_imports:ChatImports$kubernetes:batch/v1:Job::imports-x")
    assert in_import(base + "chatchat:chat_imports:ChatImports$alicloud:ram/role:Role::imports-r")
    assert not in_import(
        base + "chatchat:chat_workload:ChatWorkload$kubernetes:apps/v1:Deployment::c"
    )
    assert not in_llm_workload(
        base + "chatchat:chat_imports:ChatImports$kubernetes:batch/v1:Job::imports-x"
    )


def test_an_invalid_import_fails_before_rendering():
    with pytest.raises(ConfigError, match=r"chat\.imports\[0\]\.source"):
        render_workloads("dev", imports({"knowledgeBase": "docs", "source": {}}))
