"""Issue 13 through the rendered objects: images reach the cluster, uid 10001 can write the
volumes, the Terway pod vSwitches and the ACK version are what the cloud accepts."""

from __future__ import annotations

import base64
import json

from components import cloud_facts
from tests.conftest import rendered
from tests.test_infrastructure import CLUSTER, PV, variant

DEPLOYMENT, JOB = "kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"
PULL = {"registry__pullUsername": "deployer@1234", "registry__pullPassword": "s3cret"}


def _pod_specs(rendering):
    return [
        r.plain_inputs()["spec"]["template"]["spec"]
        for r in rendering.by_type(DEPLOYMENT) + rendering.by_type(JOB)
    ]


def test_personal_registry_pods_name_the_stack_made_pull_secret():
    rendering = variant("dev", **PULL)
    (secret,) = [
        s
        for s in rendering.by_type("kubernetes:core/v1:Secret")
        if s.inputs.get("type") == "kubernetes.io/dockerconfigjson"
    ]
    name = secret.inputs["metadata"]["name"]
    config = json.loads(secret.plain_inputs()["stringData"][".dockerconfigjson"])
    (server,) = config["auths"]
    assert server == "registry-vpc.cn-hangzhou.aliyuncs.com"  # the repositories' VPC endpoint
    assert base64.b64decode(config["auths"][server]["auth"]).decode() == "deployer@1234:s3cret"
    specs = _pod_specs(rendering)
    assert specs and all(s["imagePullSecrets"] == [{"name": name}] for s in specs)


def test_personal_registry_does_not_install_the_credential_helper():
    names = {
        a.inputs["name"]
        for a in variant("dev", **PULL).by_type("alicloud:cs/kubernetesAddon:KubernetesAddon")
    }
    assert cloud_facts.value("registry", "credentialHelperAddon") not in names


def test_enterprise_registry_uses_the_helper_and_no_pull_secret():
    rendering = variant(
        "dev",
        registry__edition="enterprise",
        registry__instanceId="cri-abc123",
        registry__endpoint="myreg-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
    )
    names = {
        a.inputs["name"] for a in rendering.by_type("alicloud:cs/kubernetesAddon:KubernetesAddon")
    }
    assert "aliyun-acr-credential-helper" in names
    assert rendering.by_type("alicloud:cs/registryEnterpriseRepo:RegistryEnterpriseRepo")
    assert all("imagePullSecrets" not in s for s in _pod_specs(rendering))
    image = rendering.outputs["llmImage"]
    assert image.startswith("myreg-registry-vpc.cn-hangzhou.cr.aliyuncs.com/chatchat-dev/")


def test_ossfs_mounts_as_the_images_user():
    for pv in rendered("dev").by_type(PV):
        opts = pv.plain_inputs()["spec"]["csi"]["volumeAttributes"]["otherOpts"]
        assert "-o uid=10001" in opts and "-o gid=10001" in opts and "umask=022" in opts


def test_writable_nas_volumes_are_opened_for_uid_10001_read_only_ones_untouched():
    pvs = {
        pv.inputs["metadata"]["name"]: pv.plain_inputs()["spec"]
        for pv in rendered("prod").by_type(PV)
    }
    for name, spec in pvs.items():
        attributes = spec["csi"]["volumeAttributes"]
        if spec["csi"]["readOnly"]:
            assert "mode" not in attributes, name
        else:
            assert (attributes["mode"], attributes["modeType"]) == ("0777", "non-recursive"), name
            assert attributes["path"] != "/"  # the driver refuses a mode on the NAS root


def test_shipped_clusters_pin_a_creatable_version_and_rrsa():
    for stack in ("dev", "staging", "prod"):
        cluster = rendered(stack).one(CLUSTER).inputs
        assert cloud_facts.ack_minor(cluster["version"]) in cloud_facts.creatable_ack_minors()
        assert cluster["enableRrsa"] is True


def _llm_images(rendering):
    return {
        c["image"]
        for r in rendering.by_type(DEPLOYMENT) + rendering.by_type(JOB)
        if r.name.startswith("llm-")
        for c in [
            *r.plain_inputs()["spec"]["template"]["spec"].get("initContainers", []),
            *r.plain_inputs()["spec"]["template"]["spec"]["containers"],
        ]
    }


def test_aiacc_and_open_source_models_run_their_own_llm_builds():
    """`Dockerfile.aiacc` (DeepGPU-LLM) and `Dockerfile` (vLLM) are different images: an aiacc
    model runs `<tag>-aiacc`, an open-source one the tag as given, in every llm container."""
    aiacc = variant("dev", llm__model="qwen-7b-chat-aiacc")
    open_source = variant("dev", llm__model="qwen-7b-chat")
    repository = "registry-vpc.cn-hangzhou.aliyuncs.com/chatchat-dev/chatchat-llm"
    assert aiacc.outputs["llmImage"] == f"{repository}:0.1.0-aiacc"
    assert open_source.outputs["llmImage"] == f"{repository}:0.1.0"
    assert _llm_images(aiacc) == {f"{repository}:0.1.0-aiacc"}  # server and conversion Job
    assert _llm_images(open_source) == {f"{repository}:0.1.0"}


def test_a_tag_that_names_the_aiacc_build_is_not_suffixed_twice():
    rendering = variant("dev", llm__image={"tag": "0.2.0-aiacc"})
    assert rendering.outputs["llmImage"].endswith(":0.2.0-aiacc")
