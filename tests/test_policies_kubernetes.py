"""Kubernetes workload policies."""

from tests.policy_helpers import GOOD, Case, PolicyCases, check, of

DIGEST = "registry-vpc.cn-hangzhou.aliyuncs.com/chatchat/llm@sha256:" + "a" * 64


CASES = [
    # The pod rules read every workload's pod template: a bulk-import Job's too.
    Case(
        "privileged-import-job",
        "k8s-no-privileged",
        GOOD.but(import_parallelism=1, import_privileged=True),
        "Job chatchat/import-manuals",
        "securityContext.privileged",
        passing=GOOD.but(import_parallelism=1),
    ),
    Case(
        "import-job-image-latest",
        "k8s-image-pinned",
        GOOD.but(import_parallelism=1, import_image="chatchat/chat:latest"),
        "Job chatchat/import-manuals",
        "pin a version tag",
        passing=GOOD.but(import_parallelism=1),
    ),
    Case(
        "privileged",
        "k8s-no-privileged",
        GOOD.but(llm_privileged=True),
        "llm-chatchat",
        "securityContext.privileged",
    ),
    Case(
        "no-requests",
        "k8s-resource-requests",
        GOOD.but(llm_requests=False),
        "llm-chatchat",
        "resources.requests.cpu",
    ),
    Case(
        "gpu-pod-without-gpu",
        "k8s-gpu-request",
        GOOD.but(llm_gpu_limit=False),
        "llm-chatchat",
        'resources.limits["nvidia.com/gpu"]',
    ),
    Case(
        # a chat pod may sit on GPU nodes only when it takes a card (GPU embedding)
        "chat-tolerates-gpu-without-a-card",
        "k8s-gpu-request",
        GOOD.but(chat_tolerates_gpu=True),
        "chat-chatchat",
        'resources.limits["nvidia.com/gpu"]',
        passing=GOOD.but(chat_tolerates_gpu=True, chat_gpu=True),
    ),
    Case(
        "latest-tag",
        "k8s-image-pinned",
        GOOD.but(llm_image="chatchat/llm:latest"),
        "llm-chatchat",
        "pin a version tag",
        passing=GOOD.but(llm_image=DIGEST),
    ),
    Case(
        "untagged",
        "k8s-image-pinned",
        GOOD.but(llm_image="registry.example:5000/chatchat/llm"),
        "llm-chatchat",
        "pin a version tag",
    ),
    Case(
        "public-load-balancer",
        "k8s-no-public-load-balancer",
        GOOD.but(chat_service_annotations=()),
        "chat-chatchat",
        "intranet",
    ),
    Case(
        "literal-api-key",
        "k8s-no-literal-secret-env",
        GOOD.but(llm_api_key_literal=True),
        "llm-chatchat",
        "valueFrom.secretKeyRef",
    ),
    Case(
        "no-network-policy",
        "k8s-network-policy",
        GOOD.but(network_policy_namespace=None),
        "namespace chatchat",
        "default-deny NetworkPolicy",
    ),
    Case(
        "network-policy-elsewhere",
        "k8s-network-policy",
        GOOD.but(network_policy_namespace="default"),
        "namespace chatchat",
        "default-deny NetworkPolicy",
    ),
]


class TestKubernetesPolicies(PolicyCases):
    """Each case of CASES: its passing set passes, its broken set is caught."""


def test_public_load_balancer_allowed_by_policy_config():
    config = {"k8s-no-public-load-balancer": {"allowPublicLoadBalancer": True}}
    broken = GOOD.but(chat_service_annotations=())
    assert of("k8s-no-public-load-balancer", check(broken, config=config)) == []


def test_secret_env_names_come_from_the_policy_config():
    # GOOD passes with the default pattern; a pattern naming MODEL catches its literal LLM_MODEL.
    config = {"k8s-no-literal-secret-env": {"secretNamePattern": "^LLM_MODEL$"}}
    found = of("k8s-no-literal-secret-env", check(GOOD, config=config))
    assert sorted(v.message.split(":")[0] for v in found) == [
        "Deployment chatchat/chat-chatchat",
        "Deployment chatchat/llm-chatchat",
    ]
    assert all("sets LLM_MODEL as a literal value" in v.message for v in found)
