"""The Fluid model cache (`modelStore.acceleration.type: fluid`, issue 16 item 3): the ack-fluid
addon, a Dataset over the stack's bucket, a JindoRuntime and a warm-up DataLoad that pass
Fluid's published CRD schemas, the llm reading the model through the PVC Fluid makes, the config
rules, and what `tools model-change` says about the cold start."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from components import cloud_facts, llm_capacity
from components.config import quantity_gib
from components.model_cache import dataset_name
from tests.conftest import ours
from tests.policy_helpers import POLICIES
from tests.test_config import problems_of, with_
from tests.test_infrastructure import ADDON, PVC, variant
from tools.checks import crd_schemas
from tools.checks.policy_runner import check_rendering
from tools.model_change import main as model_change
from tools.offline.stack_files import STACKS_DIR

SECRET = "oss-model-reader"
KEY = "modelStore.acceleration"
FLUID = {"type": "fluid", "fluid": {"credentialsSecret": SECRET}}
DATASET = "kubernetes:data.fluid.io/v1alpha1:Dataset"
RUNTIME = "kubernetes:data.fluid.io/v1alpha1:JindoRuntime"
DATALOAD = "kubernetes:data.fluid.io/v1alpha1:DataLoad"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"


def _fluid(**settings):
    return variant(
        "dev", **{KEY: {"type": "fluid", "fluid": {"credentialsSecret": SECRET, **settings}}}
    )


def _one(rendering, type_token: str):
    found = rendering.by_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def _llm(rendering):
    return next(r for r in rendering.by_type(DEPLOYMENT) if r.name == "llm-deployment")


def _raw(**fluid) -> dict:
    return with_(ours("dev"), modelStore__acceleration={"type": "fluid", "fluid": fluid})


# --- rendered objects -----------------------------------------------------------------------


def test_the_addon_and_the_cache_exist_only_when_acceleration_is_fluid():
    addons = {r.inputs["name"] for r in _fluid().by_type(ADDON)}
    assert cloud_facts.value("storage", "fluidAddon") == "ack-fluid" and "ack-fluid" in addons
    plain = variant("dev")
    assert "ack-fluid" not in {r.inputs["name"] for r in plain.by_type(ADDON)}
    assert not plain.by_type(DATASET) and not plain.by_type(RUNTIME) and not plain.by_type(DATALOAD)


def test_fluid_objects_pass_the_vendored_fluid_crd_schemas():
    rendering = _fluid()
    objects = [_one(rendering, t).plain_inputs() for t in (DATASET, RUNTIME, DATALOAD)]
    for manifest in objects:
        assert crd_schemas.is_custom(manifest), manifest["kind"]
        crd_schemas.validate(manifest)
    mem = _one(_fluid(medium="MEM", quota="20Gi", workers=1), RUNTIME).plain_inputs()
    crd_schemas.validate(mem)


def test_the_schemas_refuse_a_misspelt_field_and_a_wrong_medium():
    runtime = _one(_fluid(), RUNTIME).plain_inputs()
    misspelt = copy.deepcopy(runtime)
    misspelt["spec"]["tieredStore"] = misspelt["spec"].pop("tieredstore")  # Fluid's is lower case
    with pytest.raises(jsonschema.ValidationError, match="tieredStore"):
        crd_schemas.validate(misspelt)
    wrong = copy.deepcopy(runtime)
    wrong["spec"]["tieredstore"]["levels"][0]["mediumtype"] = "NVME"
    with pytest.raises(jsonschema.ValidationError, match="NVME"):
        crd_schemas.validate(wrong)


def test_vendored_fluid_schemas_name_their_pinned_release():
    pinned = cloud_facts.value("storage", "fluidCrds")
    for kind in pinned["kinds"]:
        doc = crd_schemas.vendored()[(pinned["apiVersion"], kind)]
        assert f"@ {pinned['release']} ({pinned['commit']})" in doc["source"], kind


def test_dataset_reads_the_stacks_bucket_prefix_over_the_internal_endpoint_with_the_secret():
    rendering = _fluid()
    dataset = _one(rendering, DATASET).plain_inputs()
    bucket = rendering.by_type("alicloud:oss/bucket:Bucket")[0]
    (mount,) = dataset["spec"]["mounts"]
    assert mount["mountPoint"] == f"oss://{bucket.outputs['bucket']}/llm-model/"
    assert mount["options"] == {"fs.oss.endpoint": "oss-cn-hangzhou-internal.aliyuncs.com"}
    assert mount["path"] == "/" and mount["readOnly"] is True
    assert dataset["spec"]["accessModes"] == ["ReadOnlyMany"]
    refs = {o["name"]: o["valueFrom"]["secretKeyRef"] for o in mount["encryptOptions"]}
    assert refs == {
        "fs.oss.accessKeyId": {"name": SECRET, "key": "fs.oss.accessKeyId"},
        "fs.oss.accessKeySecret": {"name": SECRET, "key": "fs.oss.accessKeySecret"},
    }


def test_the_stack_makes_no_secret_holding_an_access_key():
    secrets = [r.plain_inputs() for r in _fluid().by_type("kubernetes:core/v1:Secret")]
    assert not any(SECRET == s["metadata"]["name"] for s in secrets)
    assert not any("fs.oss.accessKeyId" in (s.get("stringData") or {}) for s in secrets)


def test_the_cache_reader_user_may_only_read_the_model_prefix_and_gets_no_key():
    rendering = _fluid()
    user = _one(rendering, "alicloud:ram/user:User")
    assert rendering.outputs["modelCacheReader"] == user.inputs["name"]
    policy = next(
        r
        for r in rendering.by_type("alicloud:ram/policy:Policy")
        if r.name == "storage-cache-reader-policy"
    )
    statements = json.loads(policy.inputs["policyDocument"])["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert actions and not actions & {"oss:PutObject", "oss:DeleteObject"}
    bucket = rendering.by_type("alicloud:oss/bucket:Bucket")[0].outputs["bucket"]
    assert f"acs:oss:*:*:{bucket}/llm-model/*" in statements[1]["Resource"]
    attachment = _one(rendering, "alicloud:ram/userPolicyAttachment:UserPolicyAttachment")
    assert attachment.inputs["userName"] == user.inputs["name"]
    assert not rendering.by_type("alicloud:ram/accessKey:AccessKey")
    assert "modelCacheReader" not in variant("dev").outputs


def test_runtime_is_named_after_the_dataset_and_places_workers_fuse_and_master():
    rendering = _fluid()
    dataset, runtime = _one(rendering, DATASET), _one(rendering, RUNTIME)
    assert runtime.inputs["metadata"]["name"] == dataset.inputs["metadata"]["name"]
    spec = runtime.plain_inputs()["spec"]
    assert spec["replicas"] == 1
    (level,) = spec["tieredstore"]["levels"]
    assert (level["mediumtype"], level["volumeType"], level["quota"]) == ("SSD", "hostPath", "40Gi")
    assert spec["worker"]["nodeSelector"] == {"chatchat.io/node-pool": "system"}
    assert "tolerations" not in spec["worker"]  # system nodes carry no GPU taint
    # the FUSE client runs beside the llm, on the tainted GPU nodes
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["fuse"][
        "tolerations"
    ]


def test_a_memory_cache_is_an_emptydir_the_worker_requests_as_memory():
    spec = _one(_fluid(medium="MEM", quota="20Gi"), RUNTIME).plain_inputs()["spec"]
    (level,) = spec["tieredstore"]["levels"]
    assert (level["volumeType"], level["path"]) == ("emptyDir", "/dev/shm")
    assert spec["worker"]["resources"]["requests"]["memory"] == "20Gi"


def test_llm_mounts_the_fluid_pvc_read_only_and_the_writers_keep_the_static_volume():
    rendering = _fluid()
    claim = dataset_name(rendering.config)
    pod = _llm(rendering).plain_inputs()["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "llm-model"]
    assert volume["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    mounts = [m for c in pod["containers"] + pod["initContainers"] for m in c["volumeMounts"]]
    assert all(m["readOnly"] for m in mounts if m["name"] == "llm-model")
    # the stack declares no PVC of that name: Fluid makes it
    assert claim not in {r.inputs["metadata"]["name"] for r in rendering.by_type(PVC)}
    job = next(r for r in rendering.by_type(JOB) if r.name.startswith("llm-convert"))
    (writer,) = [
        v
        for v in job.plain_inputs()["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "llm-model"
    ]
    assert writer["persistentVolumeClaim"] == {
        "claimName": "chatchat-model-writer",
        "readOnly": False,
    }
    chat = next(r for r in rendering.by_type(DEPLOYMENT) if r.name == "chat-deployment")
    chat_claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in chat.plain_inputs()["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claim not in chat_claims


def test_warm_up_loads_the_model_directory_after_the_conversion_and_before_the_llm():
    rendering = _fluid()
    load = _one(rendering, DATALOAD)
    spec = load.plain_inputs()["spec"]
    assert spec["dataset"]["name"] == dataset_name(rendering.config)
    assert spec["target"] == [{"path": "/qwen-7b-chat-aiacc", "replicas": 1}]
    assert load.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == (
        "jsonpath={.status.phase}=Complete"
    )
    job = next(r for r in rendering.by_type(JOB) if r.name.startswith("llm-convert"))
    runtime = _one(rendering, RUNTIME)
    assert {job.urn, runtime.urn} <= set(load.dependencies)
    assert {load.urn, runtime.urn} <= set(_llm(rendering).dependencies)
    addon = next(r for r in rendering.by_type(ADDON) if r.inputs["name"] == "ack-fluid")
    assert addon.urn in _one(rendering, DATASET).dependencies


def test_without_warm_up_there_is_no_dataload_and_the_llm_waits_for_the_runtime():
    rendering = _fluid(warmUp=False)
    assert not rendering.by_type(DATALOAD)
    assert _one(rendering, RUNTIME).urn in _llm(rendering).dependencies


def test_the_policy_pack_passes_a_stack_with_the_cache():
    mandatory = [v for v in check_rendering(_fluid(), POLICIES) if v.level == "mandatory"]
    assert mandatory == [], [v.message for v in mandatory]


# --- config rules ---------------------------------------------------------------------------


def test_fluid_needs_the_oss_store():
    raw = with_(ours("dev"), modelStore__type="nas", modelStore__acceleration=FLUID)
    assert "caches an OSS store" in problems_of(raw)[f"{KEY}.type"]


def test_fluid_is_refused_beside_a_user_model_pvc():
    raw = with_(ours("dev"), modelStore__acceleration=FLUID, llm__modelPVC="my-models")
    assert "llm.modelPVC" in problems_of(raw)[f"{KEY}.type"]


def test_fluid_is_refused_for_an_llm_on_eci():
    raw = with_(
        ours("dev"),
        modelStore__acceleration=FLUID,
        llm__model="qwen-7b-chat",
        llm__pod__instanceType="eci",
    )
    assert "eci" in problems_of(raw)[f"{KEY}.type"]


def test_fluid_needs_the_name_of_an_existing_access_key_secret():
    problem = problems_of(_raw())[f"{KEY}.fluid.credentialsSecret"]
    assert "no RRSA" in problem and "fs.oss.accessKeyId" in problem


def test_secret_name_must_be_a_kubernetes_name():
    assert f"{KEY}.fluid.credentialsSecret" in problems_of(_raw(credentialsSecret="Not_A_Name"))


def test_cache_quota_must_hold_the_models_files():
    problem = problems_of(_raw(credentialsSecret=SECRET, quota="10Gi"))[f"{KEY}.fluid.quota"]
    assert "qwen-7b-chat-aiacc (14.3 GiB" in problem
    # two workers of 10Gi hold it together
    assert f"{KEY}.fluid.quota" not in _problems_or_none(
        _raw(credentialsSecret=SECRET, quota="10Gi", workers=2)
    )


def test_workers_must_fit_the_system_pool_one_per_node():
    problem = problems_of(_raw(credentialsSecret=SECRET, workers=3))[f"{KEY}.fluid.workers"]
    assert "system pool has 2 node(s)" in problem


def test_workers_on_a_gpu_pool_must_fit_the_nodes_it_keeps_up():
    problem = problems_of(_raw(credentialsSecret=SECRET, workerPool="a10"))[f"{KEY}.fluid.workers"]
    assert "GPU pool a10 keeps 0 node(s) up (minSize)" in problem


def test_unknown_worker_pool_is_named():
    problem = problems_of(_raw(credentialsSecret=SECRET, workerPool="t4"))[
        f"{KEY}.fluid.workerPool"
    ]
    assert "allowed: system, a10" in problem


def test_an_ssd_cache_must_fit_the_worker_nodes_system_disk():
    problem = problems_of(_raw(credentialsSecret=SECRET, quota="100Gi"))[f"{KEY}.fluid.quota"]
    assert "120 GiB system disk" in problem


def test_unknown_medium_and_key_are_refused():
    problems = problems_of(_raw(credentialsSecret=SECRET, medium="HDD", size="1Gi"))
    assert f"{KEY}.fluid.medium" in problems and f"{KEY}.fluid.size" in problems


def test_quantities_convert_to_gib():
    assert quantity_gib("40Gi") == 40 and quantity_gib("512Mi") == 0.5
    assert quantity_gib("1Ti") == 1024 and quantity_gib("50G") == pytest.approx(46.566, abs=1e-3)


def _problems_or_none(raw: dict) -> dict[str, str]:
    from components.config import ConfigError, parse_config

    try:
        parse_config(raw, "dev")
    except ConfigError as error:
        return dict(error.problems)
    return {}


# --- cold start and model-change ------------------------------------------------------------


def test_cold_start_reads_the_warm_cache_and_states_the_oss_fill():
    from components.config import parse_config

    cfg = parse_config(_raw(credentialsSecret=SECRET), "dev")
    start = llm_capacity.cold_start(cfg)
    figures = cloud_facts.value("serving", "modelStoreReadMBps")
    weights = cfg.llm.catalog_entry.weights_gib(cfg.llm.load8bit)
    assert start.read_mb_per_s == figures["fluid"]["SSD"] and start.warm_up
    assert start.seconds == pytest.approx(weights * 1024**3 / (figures["fluid"]["SSD"] * 1e6), 0.01)
    assert start.fill_mb_per_s == figures["oss"]
    assert start.fill_seconds == pytest.approx(weights * 1024**3 / (figures["oss"] * 1e6), 0.01)
    assert start.seconds < start.fill_seconds


@pytest.fixture
def fluid_stacks(tmp_path: Path) -> Path:
    for path in STACKS_DIR.glob("Pulumi.*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    dev = tmp_path / "Pulumi.dev.yaml"
    document = yaml.safe_load(dev.read_text(encoding="utf-8"))
    document["config"]["chatchat:modelStore"]["acceleration"] = FLUID
    dev.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return tmp_path


def test_model_change_reports_the_cache_and_keeps_the_warm_up_in_scope(fluid_stacks, capsys):
    argv = ["--stack", "dev", "--stacks-dir", str(fluid_stacks), "--no-store-check"]
    code = model_change([*argv, "--model", "qwen-14b-chat-aiacc"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "from the Fluid cache (JindoRuntime, SSD) at ~400 MB/s" in out
    assert "filling the cache reads OSS at ~100 MB/s" in out and "warm-up DataLoad" in out
    assert "+ kubernetes:data.fluid.io/v1alpha1:DataLoad  llm-warm-up-qwen-14b-chat-aiacc" in out
    assert "out of scope" not in out


def test_model_change_to_a_model_the_cache_cannot_hold_names_the_quota(fluid_stacks, capsys):
    document = yaml.safe_load((fluid_stacks / "Pulumi.dev.yaml").read_text(encoding="utf-8"))
    document["config"]["chatchat:modelStore"]["acceleration"]["fluid"]["quota"] = "20Gi"
    (fluid_stacks / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    argv = ["--stack", "dev", "--stacks-dir", str(fluid_stacks), "--no-store-check"]
    code = model_change([*argv, "--model", "qwen-14b-chat-aiacc"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"{KEY}.fluid.quota" in out and "26.4 GiB" in out


# --- preflight ------------------------------------------------------------------------------


class _Catalogue:
    """ListAddons' answer for the cluster (the only call check_addons makes)."""

    def __init__(self, names: list[str]):
        self.names = names

    def addons(self, region: str, spec: str, version: str) -> dict:
        return {"addons": [{"name": n, "version": "v1.33.3-aliyun"} for n in self.names]}


def test_preflight_asks_ack_for_the_fluid_addon():
    from components.cluster import stack_addons
    from components.config import parse_config
    from tools.preflight.checks import check_addons

    cfg = parse_config(_raw(credentialsSecret=SECRET), "dev")
    others = [n for n in stack_addons(cfg) if n != "ack-fluid"]
    assert "ack-fluid" in stack_addons(cfg) and "ack-fluid" not in stack_addons(
        parse_config(ours("dev"), "dev")
    )
    missing = [f for f in check_addons(cfg, _Catalogue(others)) if not f.ok]
    assert len(missing) == 1 and "ACK offers no add-on ack-fluid" in missing[0].message
    assert all(f.ok for f in check_addons(cfg, _Catalogue([*others, "ack-fluid"])))
