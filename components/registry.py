"""Container Registry (personal edition) namespace and the private chat and llm repositories,
and the image references the workloads run: always a pinned tag or a digest from config.
"""

from __future__ import annotations

import functools

import pulumi
import pulumi_alicloud as alicloud

from components.config import Image, StackConfig

IMAGES = {"chat": "RAG application: web UI 8501, API 7861", "llm": "OpenAI-compatible model API"}


def image_reference(repository: str, image: Image) -> str:
    """`repo@sha256:...` when a digest is pinned (immutable), else `repo:tag`."""
    return f"{repository}@{image.digest}" if image.digest else f"{repository}:{image.tag}"


class Registry(pulumi.ComponentResource):
    """CR namespace with private repositories; `.chat_image` / `.llm_image` to deploy."""

    chat_repository: pulumi.Output[str]
    llm_repository: pulumi.Output[str]
    chat_image: pulumi.Output[str]
    llm_image: pulumi.Output[str]

    def __init__(self, name: str, cfg: StackConfig,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chatchat:registry:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Personal-edition namespaces are unique per region: one per stack, so that dev, staging
        # and prod can live in one account (share images by setting `*.image.repository`).
        namespace = alicloud.cr.Namespace(
            f"{name}-namespace", name=f"{cfg.registry.namespace}-{cfg.stack}"[:30].rstrip("-_"),
            auto_create=False,
            default_visibility="PRIVATE", opts=child)

        repositories, references = {}, {}
        for role, summary in IMAGES.items():
            image: Image = getattr(cfg, role).image
            repo = alicloud.cr.Repo(
                f"{name}-{role}", namespace=namespace.name, name=f"{cfg.release}-{role}",
                repo_type="PRIVATE", summary=f"chatchat {role}: {summary}", opts=child)
            # Nodes pull over the VPC endpoint: no NAT traffic, no public exposure.
            repositories[role] = pulumi.Output.all(repo.domain_lists, namespace.name, repo.name) \
                .apply(lambda a: f"{a[0][0]['vpc']}/{a[1]}/{a[2]}")
            source = pulumi.Output.from_input(image.repository) if image.repository \
                else repositories[role]
            references[role] = source.apply(functools.partial(image_reference, image=image))

        self.chat_repository, self.llm_repository = repositories["chat"], repositories["llm"]
        self.chat_image, self.llm_image = references["chat"], references["llm"]
        self.register_outputs({"chatRepository": self.chat_repository,
                               "llmRepository": self.llm_repository,
                               "chatImage": self.chat_image, "llmImage": self.llm_image})
