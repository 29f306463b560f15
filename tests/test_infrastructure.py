"""The Alibaba Cloud infrastructure as the engine would receive it, rendered offline.

Each shipped stack is rendered once (tests.conftest.rendered); overrides render a variant once
per module. Assertions read the registered inputs and options, as a policy or a reviewer would.
"""

from __future__ import annotations

import inspect
import json
import re

import pulumi_alicloud
import pytest

from components import cloud_facts
from components.catalog import gpu_family_of
from components.config import ConfigError
from tests.conftest import SHIPPED_STACKS, rendered
from tools.offline.engine import Rendering, render_stack
from tools.offline.stack_files import REPO
from tools.offline.wire import Secret
from tools.plan import format_tree

NODE_POOL = "alicloud:cs/nodePool:NodePool"
CLUSTER = "alicloud:cs/managedKubernetes:ManagedKubernetes"
ADDON = "alicloud:cs/kubernetesAddon:KubernetesAddon"
ADB = "alicloud:gpdb/instance:Instance"
BUCKET = "alicloud:oss/bucket:Bucket"
NAS = "alicloud:nas/fileSystem:FileSystem"
RAM_POLICY = "alicloud:ram/policy:Policy"
RAM_ROLE = "alicloud:ram/role:Role"
PV = "kubernetes:core/v1:PersistentVolume"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
K8S_SECRET = "kubernetes:core/v1:Secret"
WRITE_ACTIONS = {"oss:PutObject", "oss:DeleteObject", "oss:AbortMultipartUpload"}

_VARIANTS: dict[tuple, Rendering] = {}


def variant(stack: str, **overrides) -> Rendering:
    """A shipped stack with config overrides (dotted keys), rendered once per test run."""
    key = (stack, tuple(sorted((k, json.dumps(v)) for k, v in overrides.items())))
    if key not in _VARIANTS:
        _VARIANTS[key] = render_stack(
            stack, {k.replace("__", "."): v for k, v in overrides.items()}
        )
    return _VARIANTS[key]


def gpu_pools(rendering: Rendering) -> dict[str, dict]:
    pools = {}
    for pool in rendering.by_type(NODE_POOL):
        labels = {label["key"]: label["value"] for label in pool.inputs.get("labels", [])}
        pools[labels["chatchat.io/node-pool"]] = {**pool.inputs, "labelMap": labels}
    return pools


# --- node pools ------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_gpu_pools_run_only_the_configured_v100_or_a10_types(stack):
    rendering = rendered(stack)
    pools = gpu_pools(rendering)
    for configured in rendering.config.cluster.gpu_pools:
        types = pools[configured.name]["instanceTypes"]
        assert types == configured.instance_types
        assert {gpu_family_of(t).family for t in types} <= {"ecs.gn6v", "ecs.gn6e", "ecs.gn7i"}
    assert set(pools) == {"system"} | {p.name for p in rendering.config.cluster.gpu_pools}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_gpu_pools_are_tainted_and_labelled_for_the_llm_only(stack):
    rendering = rendered(stack)
    pools = gpu_pools(rendering)
    for configured in rendering.config.cluster.gpu_pools:
        pool = pools[configured.name]
        family = gpu_family_of(configured.instance_types[0])
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in pool["taints"]
        assert pool["labelMap"]["chatchat.io/gpu-family"] == family.label
        assert pool["labelMap"]["chatchat.io/gpu-memory-gib"] == str(family.gpu_memory_gib)
        driver = pool["labelMap"].get("ack.aliyun.com/nvidia-driver-version")
        assert driver == configured.driver_version
    assert "taints" not in pools["system"]


def test_prod_has_both_gpu_families_and_leaves_the_driver_to_ack():
    pools = gpu_pools(rendered("prod"))
    assert pools["a10"]["labelMap"]["chatchat.io/gpu-memory-gib"] == "24"
    assert pools["v100"]["labelMap"]["chatchat.io/gpu-family"] == "gn6e"
    # 535.161.07 is not in ACK's driver list for 1.34+: no pin until one from the table is chosen
    assert "ack.aliyun.com/nvidia-driver-version" not in pools["v100"]["labelMap"]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_gpu_pools_autoscale_within_the_configured_bounds(stack):
    rendering = rendered(stack)
    pools = gpu_pools(rendering)
    for configured in rendering.config.cluster.gpu_pools:
        scaling = pools[configured.name]["scalingConfig"]
        assert scaling == {
            "enable": True,
            "minSize": configured.min_size,
            "maxSize": configured.max_size,
            "type": "gpu",
        }
    system = pools["system"]
    assert system["desiredSize"] == str(rendering.config.cluster.system_pool.size)
    assert "scalingConfig" not in system


def test_spot_pool_bids_up_to_on_demand_price_unless_capped():
    assert gpu_pools(rendered("dev"))["a10"]["spotStrategy"] == "SpotAsPriceGo"
    assert gpu_pools(rendered("prod"))["a10"]["spotStrategy"] == "NoSpot"
    capped_pools = [
        {
            "name": "a10",
            "instanceTypes": ["ecs.gn7i-c8g1.2xlarge"],
            "maxSize": 1,
            "spot": True,
            "spotPriceLimit": 3.5,
        }
    ]
    capped = gpu_pools(variant("dev", cluster__gpuPools=capped_pools))["a10"]
    assert capped["spotStrategy"] == "SpotWithPriceLimit"
    assert capped["spotPriceLimits"] == [
        {"instanceType": "ecs.gn7i-c8g1.2xlarge", "priceLimit": "3.5000"}
    ]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_node_pool_names_carry_a_random_suffix_so_a_replacement_never_collides(stack):
    rendering = rendered(stack)
    by_urn = rendering.by_urn()
    for pool in rendering.by_type(NODE_POOL):
        suffixes = [
            by_urn[u]
            for u in pool.dependencies
            if by_urn[u].type == "random:index/randomId:RandomId"
        ]
        assert len(suffixes) == 1, pool.name
        base = pool.inputs["nodePoolName"].rsplit("-", 1)[0]
        assert pool.inputs["nodePoolName"] == f"{base}-{suffixes[0].outputs['hex']}"
        # a new suffix whenever the cluster (which forces a new pool) changes
        assert "clusterId" in suffixes[0].inputs["keepers"]


# --- cluster and addons ----------------------------------------------------------------------


def _addons(rendering: Rendering) -> set[str]:
    return {a.inputs["name"] for a in rendering.by_type(ADDON)}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_shipped_stacks_without_eci_have_no_virtual_node(stack):
    assert "ack-virtual-node" not in _addons(rendered(stack))


def test_virtual_node_addon_is_installed_exactly_when_a_pod_runs_on_eci():
    eci = variant("dev", chat__pod__instanceType="eci")
    assert sorted(_addons(eci)) == [
        "ack-arms-prometheus",  # monitoring (on in every stack)
        "ack-keda",  # dev's llm autoscaler
        "ack-node-problem-detector",
        "ack-virtual-node",
    ]
    cluster_addons = {a["name"] for a in eci.one(CLUSTER).inputs["addons"]}
    assert "ack-virtual-node" not in cluster_addons  # day-2 only, never create-time


def test_cluster_is_ack_pro_with_terway_and_csi_at_create():
    cluster = rendered("prod").one(CLUSTER)
    assert cluster.inputs["clusterSpec"] == "ack.pro.small"
    assert cluster.inputs["version"] == rendered("prod").config.cluster.version
    names = {a["name"] for a in cluster.inputs["addons"] if not a.get("disabled")}
    assert {"terway-eniip", "csi-plugin", "csi-provisioner"} <= names
    terway = next(a for a in cluster.inputs["addons"] if a["name"] == "terway-eniip")
    assert json.loads(terway["config"])["NetworkPolicy"] == "true"
    assert cluster.inputs["deletionProtection"] is True
    assert "addons" in cluster.options["ignoreChanges"]


def test_api_server_is_public_only_behind_the_allowed_cidrs():
    dev = rendered("dev")
    assert dev.one(CLUSTER).inputs["slbInternetEnabled"] is True
    entries = [
        e.inputs["entry"] for e in dev.by_type("alicloud:slb/aclEntryAttachment:AclEntryAttachment")
    ]
    assert entries == dev.config.cluster.api_server_allowed_cidrs
    (binding,) = dev.by_type("pulumi-python:dynamic:Resource")
    assert binding.inputs["purpose"] == "ack-api-server-acl"
    assert binding.inputs["listenerPort"] == 6443
    assert binding.inputs["loadBalancerId"] == dev.one(CLUSTER).outputs["slbId"]


def test_without_allowed_cidrs_the_api_server_is_private_and_kubeconfig_intranet():
    private = variant("dev", cluster__apiServerAllowedCidrs=[])
    assert private.one(CLUSTER).inputs["slbInternetEnabled"] is False
    assert not private.by_type("pulumi-python:dynamic:Resource")
    kubeconfig = private.outputs["kubeconfig"]
    assert ".vpc.cs.aliyuncs.com:6443" in getattr(kubeconfig, "value", kubeconfig)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_gpu_pools_scale_with_cluster_autoscaling_and_auto_repair_addon(stack):
    rendering = rendered(stack)
    scaler = rendering.one("alicloud:cs/autoscalingConfig:AutoscalingConfig").inputs
    assert scaler["scaleUpFromZero"] is True and scaler["scalerType"] == "cluster-autoscaler"
    assert "ack-node-problem-detector" in _addons(rendering)
    assert "node-lifecycle-controller" not in _addons(rendering)  # no such ACK add-on is documented


# --- network ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_security_group_admits_the_vpc_only(stack):
    rendering = rendered(stack)
    rules = rendering.by_type("alicloud:ecs/securityGroupRule:SecurityGroupRule")
    ingress = [r.inputs for r in rules if r.inputs["type"] == "ingress"]
    assert ingress and all(r["cidrIp"] == rendering.config.network.vpc_cidr for r in ingress)


def test_prod_has_a_vswitch_and_snat_entry_per_zone():
    rendering = rendered("prod")
    zones = {s.inputs["zoneId"] for s in rendering.by_type("alicloud:vpc/switch:Switch")}
    assert zones == {"cn-hangzhou-j", "cn-hangzhou-k"}
    # node and Terway pod vSwitches, one SNAT entry each
    assert len(rendering.by_type("alicloud:vpc/snatEntry:SnatEntry")) == 4
    cluster = rendering.one(CLUSTER).inputs
    assert set(cluster["podVswitchIds"]).isdisjoint(cluster["vswitchIds"])
    assert rendering.one("alicloud:vpc/natGateway:NatGateway").inputs["natType"] == "Enhanced"


# --- vector database -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_adb_has_vector_optimisation_and_admits_the_vpc_only(stack):
    rendering = rendered(stack)
    adb = rendering.one(ADB).inputs
    assert adb["vectorConfigurationStatus"] == "enabled"
    cores, memory = adb["instanceSpec"].rstrip("G").split("C")
    assert int(cores) >= 4 and int(memory) >= 16
    assert [w["securityIpList"] for w in adb["ipWhitelists"]] == [rendering.config.network.vpc_cidr]
    assert adb["paymentType"] == "PayAsYouGo" and adb["engine"] == "gpdb"


def test_faiss_stack_has_no_database():
    assert not rendered("dev").by_type(ADB)
    assert "adbHost" not in rendered("dev").outputs


def test_pg_secret_carries_every_key_and_the_password_stays_secret():
    rendering = rendered("prod")
    account = rendering.one("alicloud:gpdb/account:Account")
    assert isinstance(account.inputs["accountPassword"], Secret)
    secret = next(s for s in rendering.by_type(K8S_SECRET) if s.name.endswith("-pg"))
    assert isinstance(secret.inputs["stringData"], Secret)
    data = secret.plain_inputs()["stringData"]
    assert set(data) == {"PG_HOST", "PG_PORT", "PG_DATABASE", "PG_USER", "PG_PASSWORD"}
    assert data["PG_PASSWORD"] == account.plain_inputs()["accountPassword"]
    assert data["PG_HOST"] == rendering.outputs["adbHost"]


# --- model storage ---------------------------------------------------------------------------


def test_bucket_is_private_and_encrypted_and_versioned_only_in_production():
    dev = rendered("dev").one(BUCKET)
    assert "acl" not in dev.inputs  # deprecated: oss.BucketAcl
    assert rendered("dev").one("alicloud:oss/bucketAcl:BucketAcl").inputs["acl"] == "private"
    assert dev.inputs["serverSideEncryptionRule"]["sseAlgorithm"] in {"AES256", "KMS"}
    assert "versioning" not in dev.inputs and not dev.protect
    # production keeps an llm replica: no scale to zero
    prod_like = variant("dev", production=True, llm__autoscaling__minReplicas=1).one(BUCKET)
    assert prod_like.inputs["versioning"] == {"status": "Enabled"} and prod_like.protect


def test_ram_policies_reach_only_the_model_bucket_and_the_reader_cannot_write():
    rendering = rendered("dev")
    bucket = rendering.one(BUCKET).outputs["bucket"]
    policies = {
        p.name: json.loads(p.inputs["policyDocument"]) for p in rendering.by_type(RAM_POLICY)
    }
    assert len(policies) == 2
    for name, document in policies.items():
        resources = [r for s in document["Statement"] for r in s["Resource"]]
        assert all(
            r == f"acs:oss:*:*:{bucket}" or r.startswith(f"acs:oss:*:*:{bucket}/llm-model/")
            for r in resources
        ), name
        actions = {a for s in document["Statement"] for a in s["Action"]}
        assert "oss:*" not in actions
        assert bool(actions & WRITE_ACTIONS) == name.endswith("model-writer-policy"), name


def test_oss_volumes_use_rrsa_and_no_long_lived_keys():
    rendering = rendered("dev")
    assert not rendering.by_type("alicloud:ram/accessKey:AccessKey")
    assert not rendering.by_type("alicloud:ram/user:User")
    assert not [s for s in rendering.by_type(K8S_SECRET) if "oss" in s.name]
    roles = {r.plain_inputs()["roleName"]: r for r in rendering.by_type(RAM_ROLE)}
    oss_volumes = [
        pv.plain_inputs()["spec"]["csi"]
        for pv in rendering.by_type(PV)
        if pv.plain_inputs()["spec"]["csi"]["driver"] == "ossplugin.csi.alibabacloud.com"
    ]
    assert len(oss_volumes) == 2
    for csi in oss_volumes:
        assert "nodePublishSecretRef" not in csi
        attributes = csi["volumeAttributes"]
        assert attributes["authType"] == "rrsa"
        assert not {"akId", "akSecret"} & attributes.keys()
        assert attributes["roleName"] in roles


def test_oss_roles_trust_only_the_csi_fuse_service_account_of_this_cluster():
    rendering = rendered("dev")
    cluster = rendering.one(CLUSTER).outputs["rrsaMetadata"]
    facts = cloud_facts.value("storage", "ossRrsaVolume")
    roles = rendering.by_type(RAM_ROLE)
    assert len(roles) == 2
    for role in roles:
        (statement,) = json.loads(role.plain_inputs()["assumeRolePolicyDocument"])["Statement"]
        assert statement["Principal"] == {"Federated": [cluster["ramOidcProviderArn"]]}
        assert statement["Action"] == "sts:AssumeRole"
        assert statement["Condition"] == {
            "StringEquals": {
                "oidc:aud": "sts.aliyuncs.com",
                "oidc:iss": cluster["rrsaOidcIssuerUrl"],
                "oidc:sub": f"system:serviceaccount:{facts['fuseNamespace']}:"
                f"{facts['fuseServiceAccount']}",
            }
        }


def test_each_oss_role_gets_only_its_own_policy():
    rendering = rendered("dev")
    attachments = {
        a.plain_inputs()["roleName"]: a.plain_inputs()["policyName"]
        for a in rendering.by_type("alicloud:ram/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert attachments == {
        "chatchat-dev-model-oss": "chatchat-dev-model-oss",
        "chatchat-dev-model-writer-oss": "chatchat-dev-model-writer-oss",
    }
    assert all(
        a.plain_inputs()["policyType"] == "Custom"
        for a in rendering.by_type("alicloud:ram/rolePolicyAttachment:RolePolicyAttachment")
    )


def test_rrsa_trust_policy_refuses_a_cluster_without_rrsa():
    from components.storage import rrsa_trust_policy

    with pytest.raises(ValueError, match="rrsa_metadata has no ram_oidc_provider_arn"):
        rrsa_trust_policy({"enabled": False})


def test_kubeconfig_output_is_secret():
    assert isinstance(rendered("dev").outputs["kubeconfig"], Secret)


def test_model_volume_is_read_only_and_the_writer_volume_is_separate():
    rendering = rendered("dev")
    volumes = {v.inputs["metadata"]["name"]: v.inputs["spec"] for v in rendering.by_type(PV)}
    reader, writer = volumes["chatchat-dev-model"], volumes["chatchat-dev-model-writer"]
    assert reader["csi"]["driver"] == "ossplugin.csi.alibabacloud.com"
    assert reader["accessModes"] == ["ReadOnlyMany"] and reader["csi"]["readOnly"] is True
    assert "-o ro" in reader["csi"]["volumeAttributes"]["otherOpts"]
    assert writer["accessModes"] == ["ReadWriteMany"] and writer["csi"]["readOnly"] is False
    assert reader["csi"]["volumeAttributes"]["path"] == "/llm-model"
    assert (
        reader["csi"]["volumeAttributes"]["roleName"]
        != (writer["csi"]["volumeAttributes"]["roleName"])
    )


def test_kb_volume_is_a_disk_in_dev_and_shared_nas_in_prod():
    claims = {c.inputs["metadata"]["name"]: c.inputs["spec"] for c in rendered("dev").by_type(PVC)}
    assert claims["chatchat-kb"]["accessModes"] == ["ReadWriteOnce"]
    assert claims["chatchat-kb"]["storageClassName"] == "alicloud-disk-essd"
    prod = {c.inputs["metadata"]["name"]: c.inputs["spec"] for c in rendered("prod").by_type(PVC)}
    assert prod["chatchat-kb"]["accessModes"] == ["ReadWriteMany"]


def test_nas_admits_only_the_node_vswitches_never_the_pod_vswitches():
    rendering = rendered("prod")
    network = rendering.config.network
    assert network.pod_vswitch_cidrs  # prod runs Terway pods on vSwitches of their own
    rules = rendering.by_type("alicloud:nas/accessRule:AccessRule")
    sources = [r.inputs["sourceCidrIp"] for r in rules]
    assert sources == network.vswitch_cidrs
    assert not set(sources) & set(network.pod_vswitch_cidrs)
    target = rendering.one("alicloud:nas/mountTarget:MountTarget")
    first_zone = rendering.one(
        "alicloud:vpc/switch:Switch", f"network-vswitch-{rendering.config.zones[0]}"
    )
    assert target.property_dependencies["vswitchId"] == [first_zone.urn]
    assert target.inputs["networkType"] == "Vpc"


def test_user_pvcs_replace_the_stacks_own_volumes():
    given = variant("dev", llm__modelPVC="team-models", chat__kbPVC="team-kb")
    assert not given.by_type(PV) and not given.by_type(PVC) and not given.by_type(BUCKET)
    assert given.outputs["modelStoreId"] == "team-models"
    on_nas = variant("prod", llm__modelPVC="team-models", chat__kbPVC="team-kb")
    assert not on_nas.by_type(NAS) and not on_nas.by_type(PV)


def test_production_adb_needs_segments_in_steps_of_four():
    with pytest.raises(ConfigError) as caught:
        render_stack("prod", {"db.adb.segNodeNum": 6})
    assert "6 must be a multiple of 4" in dict(caught.value.problems)["db.adb.segNodeNum"]


def test_adb_segment_storage_other_than_essd_is_refused_by_name():
    with pytest.raises(ConfigError) as caught:
        render_stack("staging", {"db.adb.segStorageType": "cloud_efficiency"})
    assert "'cloud_essd'" in dict(caught.value.problems)["db.adb.segStorageType"]


# --- the installed provider -----------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _init_parameters(type_token: str) -> dict[str, inspect.Parameter]:
    _, module, name = type_token.split(":")
    cls = getattr(getattr(pulumi_alicloud, module.split("/")[0]), name)
    return dict(inspect.signature(cls._internal_init).parameters)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_argument_exists_in_the_installed_provider_with_its_scalar_type(stack):
    for resource in rendered(stack).resources:
        if not resource.type.startswith("alicloud:"):
            continue
        parameters = _init_parameters(resource.type)
        for key, value in resource.plain_inputs().items():
            assert _snake(key) in parameters, f"{resource.type} has no argument {key}"
            annotation = str(parameters[_snake(key)].annotation)
            expected = {bool: "bool", int: "int", str: "str"}.get(type(value))
            assert expected is None or expected in annotation, (
                f"{resource.type}.{key} is {type(value).__name__}, provider wants {annotation}"
            )


# --- protection, tags, determinism, outputs --------------------------------------------------


def test_prod_protects_its_stateful_resources_and_dev_does_not():
    prod = rendered("prod")
    assert prod.one(ADB).protect and prod.one(NAS).protect
    assert not rendered("dev").one(BUCKET).protect
    assert not rendered("staging").one(ADB).protect and not rendered("staging").one(NAS).protect


def _takes_tags(type_token: str) -> bool:
    return "tags" in _init_parameters(type_token)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_taggable_alibaba_resource_carries_the_stack_tags(stack):
    rendering = rendered(stack)
    expected = rendering.config.resource_tags()
    taggable = [
        r for r in rendering.resources if r.type.startswith("alicloud:") and _takes_tags(r.type)
    ]
    assert len(taggable) >= 8
    for resource in taggable:
        assert resource.inputs.get("tags") == expected, resource.name


def test_renaming_the_release_keeps_every_cloud_resource():
    renamed = variant("dev", release="rag")
    cloud = {r.urn for r in rendered("dev").resources if r.type.startswith("alicloud:")}
    assert cloud == {r.urn for r in renamed.resources if r.type.startswith("alicloud:")}
    assert renamed.outputs["portForward"] == "kubectl port-forward -n rag svc/chat-rag 8501:8501"


def test_rendering_prod_twice_gives_identical_resources():
    first, second = render_stack("prod"), render_stack("prod")
    assert [(r.to_json(), r.options) for r in first.resources] == [
        (r.to_json(), r.options) for r in second.resources
    ]


def test_outputs_name_the_cluster_store_images_and_port_forward():
    outputs = rendered("prod").outputs
    assert outputs["portForward"] == "kubectl port-forward -n chatchat svc/chat-chatchat 8501:8501"
    assert rendered("dev").outputs["modelStoreId"] == rendered("dev").one(BUCKET).outputs["bucket"]
    assert (
        outputs["chatImage"]
        == "registry-vpc.cn-hangzhou.aliyuncs.com/chatchat-prod/chatchat-chat:0.1.0"
    )
    assert outputs["clusterId"] and outputs["adbHost"].endswith(".rds.aliyuncs.com")


def test_image_digest_and_repository_overrides_are_honoured():
    digest = "sha256:" + "a" * 64
    pinned = variant(
        "dev", llm__image__digest=digest, chat__image__repository="registry.example.com/team/chat"
    )
    assert pinned.outputs["llmImage"].endswith(f"/chatchat-dev/chatchat-llm@{digest}")
    assert pinned.outputs["chatImage"] == "registry.example.com/team/chat:0.1.0"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_docs_resource_map_is_current(stack):
    tree = format_tree(rendered(stack)).split("\n\nResources per type:")[0]
    doc = (REPO / "docs" / "infrastructure.md").read_text(encoding="utf-8")
    stale = f"docs/infrastructure.md is stale: paste `python -m tools plan --stack {stack}`"
    assert tree in doc, stale


def _pv_of_claim(rendering, claim_name: str):
    claim = next(c for c in rendering.by_type(PVC) if c.inputs["metadata"]["name"] == claim_name)
    resources = rendering.by_urn()
    (volume,) = [
        resources[urn]
        for urn in claim.property_dependencies["spec"]
        if resources[urn].type == "kubernetes:core/v1:PersistentVolume"
    ]
    return volume.inputs["spec"]


def test_shared_kb_volume_mounts_nfs_v4_so_locks_hold_across_nodes():
    spec = _pv_of_claim(rendered("prod"), "chatchat-kb")
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["csi"]["volumeAttributes"]["vers"] == "4.0"
    assert "vers=4.0" in spec["mountOptions"]
    assert not any("nolock" in option for option in spec["mountOptions"])
    model = _pv_of_claim(rendered("prod"), "chatchat-model")  # read-only: v3 is fine
    assert model["csi"]["volumeAttributes"]["vers"] == "3"


def test_sign_in_reaches_the_chat_pod_and_its_secret_never_the_pod_spec():
    r = variant(
        "dev",
        chat__signIn={
            "issuer": "https://idp.example.com/realms/chat",
            "clientId": "chatchat-dev",
            "publicUrl": "https://chat.example.com",
            "roleMap": {"chat-admins": ["admin"]},
        },
        oidcClientSecret="not-in-the-pod-spec",
    )
    chat = r.one("kubernetes:apps/v1:Deployment", "chat-deployment").inputs
    env = {e["name"]: e for e in chat["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OIDC_ISSUER"]["value"] == "https://idp.example.com/realms/chat"
    assert env["OIDC_CLIENT_ID"]["value"] == "chatchat-dev"
    assert json.loads(env["AUTH_ROLE_MAP"]["value"]) == {"chat-admins": ["admin"]}
    assert env["WEBUI_COOKIE_SECURE"]["value"] == "true"
    ref = env["OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    secret = next(
        s.inputs
        for s in r.by_type("kubernetes:core/v1:Secret")
        if s.inputs["metadata"]["name"] == ref["name"]
    )
    assert isinstance(secret["stringData"], Secret)  # masked in plans and state
    assert secret["stringData"].value[ref["key"]] == "not-in-the-pod-spec"
    assert "not-in-the-pod-spec" not in json.dumps(chat)


def test_without_sign_in_the_chat_pod_has_no_oidc_settings():
    chat = rendered("dev").one("kubernetes:apps/v1:Deployment", "chat-deployment").inputs
    names = {e["name"] for e in chat["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not {n for n in names if n.startswith("OIDC_")}


def test_signed_in_users_stay_on_one_chat_pod_when_there_are_several():
    service = rendered("prod").one("kubernetes:core/v1:Service", "chat-service").inputs
    assert service["spec"]["sessionAffinity"] == "ClientIP"  # prod: sign-in and 2 replicas
    dev = rendered("dev").one("kubernetes:core/v1:Service", "chat-service").inputs
    assert "sessionAffinity" not in dev["spec"]
