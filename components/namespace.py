"""The release namespace: every Kubernetes object of the release lives in `cfg.release`."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.config import StackConfig


class ReleaseNamespace(pulumi.ComponentResource):
    """Kubernetes Namespace named after the release, labelled for NetworkPolicy selectors."""

    name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:namespace:ReleaseNamespace", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": cfg.release,
                "labels": {
                    "app.kubernetes.io/part-of": "chatchat",
                    "app.kubernetes.io/instance": cfg.release,
                    # Baseline enforced; restricted (non-root uid 10001, no privilege) reported.
                    "pod-security.kubernetes.io/enforce": "baseline",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.name = namespace.metadata["name"]
        self.register_outputs({"name": self.name})
