"""Container Registry namespace and the private chat and llm repositories, the image references
the workloads run (always a pinned tag or a digest from config), and how nodes get to pull them.

Personal Edition (default): the stack makes the namespace and repositories, and a
`kubernetes.io/dockerconfigjson` Secret from `registry.pullUsername` / `registry.pullPassword`
that every workload pod names in `imagePullSecrets` (aliyun-acr-credential-helper serves only
Enterprise Edition and Personal Edition instances made on or before 2024-09-08: cloud facts
registry.credentialHelperServes). Enterprise Edition: an existing instance's namespace and
repositories (`cs.RegistryEnterpriseNamespace` / `Repo`), pulled through the credential helper.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import pulumi
import pulumi_alicloud as alicloud
import pulumi_kubernetes as k8s

from components.config import Image, StackConfig
from components.contract import Side

IMAGES: dict[Side, str] = {
    "chat": "RAG application: web UI 8501, API 7861",
    "llm": "OpenAI-compatible model API",
}


def pull_secret_name(cfg: StackConfig) -> str | None:
    """The docker-registry Secret the pods name, when the stack makes one."""
    if cfg.registry.edition == "personal" and cfg.registry.pull_password:
        return f"{cfg.release}-registry-pull"
    return None


def image_pull_secrets(cfg: StackConfig) -> list[dict[str, str]]:
    """`imagePullSecrets` of every workload pod (empty with the credential helper)."""
    name = pull_secret_name(cfg)
    return [{"name": name}] if name else []


def docker_config(server: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps(
        {"auths": {server: {"username": username, "password": password, "auth": auth}}},
        sort_keys=True,
    )


def image_reference(repository: str, image: Image) -> str:
    """`repo@sha256:...` when a digest is pinned (immutable), else `repo:tag`."""
    return f"{repository}@{image.digest}" if image.digest else f"{repository}:{image.tag}"


class Registry(pulumi.ComponentResource):
    """CR namespace with private repositories; `.chat_image` / `.llm_image` to deploy."""

    chat_repository: pulumi.Output[str]
    llm_repository: pulumi.Output[str]
    chat_image: pulumi.Output[str]
    llm_image: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        provider: k8s.Provider | None = None,
        namespace: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:registry:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        release_namespace = namespace  # the Kubernetes namespace
        if cfg.registry.edition == "enterprise":
            self._enterprise(name, cfg)
            return
        # Personal-edition namespaces are unique per region: one per stack, so that dev, staging
        # and prod can live in one account (share images by setting `*.image.repository`).
        acr_namespace = alicloud.cr.Namespace(
            f"{name}-namespace",
            name=f"{cfg.registry.namespace}-{cfg.stack}"[:30].rstrip("-_"),
            auto_create=False,
            default_visibility="PRIVATE",
            opts=child,
        )

        repositories: dict[str, pulumi.Output[str]] = {}
        references: dict[str, pulumi.Output[str]] = {}
        for role, summary in IMAGES.items():
            image: Image = cfg.image(role)
            repo = alicloud.cr.Repo(
                f"{name}-{role}",
                namespace=acr_namespace.name,
                name=f"{cfg.release}-{role}",
                repo_type="PRIVATE",
                summary=f"chatchat {role}: {summary}",
                opts=child,
            )
            # Nodes pull over the VPC endpoint: no NAT traffic, no public exposure.
            repositories[role] = pulumi.Output.all(
                repo.domain_lists, acr_namespace.name, repo.name
            ).apply(lambda a: f"{a[0][0]['vpc']}/{a[1]}/{a[2]}")
            source = (
                pulumi.Output.from_input(image.repository)
                if image.repository
                else repositories[role]
            )
            references[role] = source.apply(functools.partial(image_reference, image=image))

        self.chat_repository, self.llm_repository = repositories["chat"], repositories["llm"]
        self.chat_image, self.llm_image = references["chat"], references["llm"]
        secret_name = pull_secret_name(cfg)
        if secret_name and provider is not None and release_namespace is not None:
            username, password = cfg.registry.pull_username or "", cfg.registry.pull_password or ""
            llm_repository: pulumi.Output[str] = pulumi.Output.secret(repositories["llm"])
            config_json = llm_repository.apply(
                lambda r: docker_config(r.split("/")[0], username, password)
            )
            k8s.core.v1.Secret(
                f"{name}-pull",
                metadata={"name": secret_name, "namespace": release_namespace},
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": config_json},
                opts=pulumi.ResourceOptions(parent=self, provider=provider),
            )
        self._outputs()

    def _enterprise(self, name: str, cfg: StackConfig) -> None:
        """Namespace and repositories in an existing ACR Enterprise Edition instance."""
        registry, child = cfg.registry, pulumi.ResourceOptions(parent=self)
        namespace = alicloud.cs.RegistryEnterpriseNamespace(
            f"{name}-ee-namespace",
            instance_id=registry.instance_id,
            name=f"{registry.namespace}-{cfg.stack}"[:30].rstrip("-_"),
            auto_create=False,
            default_visibility="PRIVATE",
            opts=child,
        )
        references: dict[str, Any] = {}
        for role, summary in IMAGES.items():
            image = cfg.image(role)
            repo = alicloud.cs.RegistryEnterpriseRepo(
                f"{name}-ee-{role}",
                instance_id=registry.instance_id,
                namespace=namespace.name,
                name=f"{cfg.release}-{role}",
                repo_type="PRIVATE",
                summary=f"chatchat {role}: {summary}",
                opts=child,
            )
            own = pulumi.Output.concat(registry.endpoint or "", "/", namespace.name, "/", repo.name)
            references[role] = (
                pulumi.Output.from_input(image.repository) if image.repository else own,
                own,
            )
        self.chat_repository, self.llm_repository = references["chat"][1], references["llm"][1]
        self.chat_image = references["chat"][0].apply(
            lambda r: image_reference(r, cfg.image("chat"))
        )
        self.llm_image = references["llm"][0].apply(lambda r: image_reference(r, cfg.image("llm")))
        self._outputs()

    def _outputs(self) -> None:
        self.register_outputs(
            {
                "chatRepository": self.chat_repository,
                "llmRepository": self.llm_repository,
                "chatImage": self.chat_image,
                "llmImage": self.llm_image,
            }
        )
