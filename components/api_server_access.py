"""Who may reach the ACK API server: a CLB access control list (whitelist) on the API server's
listener (6443), so that the first `pulumi up` can run from outside Alibaba Cloud with the API
server open to `cluster.apiServerAllowedCidrs` only.

ACK sets access control on the 6443 listener of the API server's private CLB, and the rule holds
for its internal and public endpoints alike (ACK: "Configure access control policies for the API
server"). pulumi-alicloud 4.0.0 has no argument for it on `cs.ManagedKubernetes`, and ACK's
`ModifyCluster access_control_list` no longer takes effect (cloud facts:
ack.apiServerAclOnProvider),
so the stack makes the ACL with the provider (`slb.Acl`, one `slb.AclEntryAttachment` per CIDR) and
binds it to the listener with CLB's `SetLoadBalancerTCPListenerAttribute` in a small dynamic
resource. The Kubernetes provider waits for the binding.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_alicloud as alicloud
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from components import cloud_facts

LISTENER_PORT: int = cloud_facts.value("ack", "apiServerListenerPort")


def _set_listener_acl(region: str, load_balancer_id: str, acl_id: str | None) -> None:
    from alibabacloud_slb20140515.client import Client
    from alibabacloud_slb20140515.models import SetLoadBalancerTCPListenerAttributeRequest

    from components.aliyun_sdk import openapi_config

    request = SetLoadBalancerTCPListenerAttributeRequest(
        region_id=region,
        load_balancer_id=load_balancer_id,
        listener_port=LISTENER_PORT,
        acl_status="on" if acl_id else "off",
        acl_type="white" if acl_id else None,
        acl_id=acl_id,
    )
    Client(openapi_config(region)).set_load_balancer_tcplistener_attribute(request)


class _ListenerAclProvider(ResourceProvider):
    """Turns the whitelist on at create and update, and off again at delete."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        _set_listener_acl(props["region"], props["loadBalancerId"], props["aclId"])
        return CreateResult(f"{props['loadBalancerId']}:{LISTENER_PORT}", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("region", "loadBalancerId", "aclId")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        return DiffResult(
            changes=bool(changed),
            replaces=["loadBalancerId"] if "loadBalancerId" in changed else [],
            delete_before_replace=False,
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        _set_listener_acl(news["region"], news["loadBalancerId"], news["aclId"])
        return UpdateResult(outs=news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        _set_listener_acl(props["region"], props["loadBalancerId"], None)


class ListenerAcl(Resource):
    """The API server listener's whitelist binding (type `pulumi-python:dynamic:Resource`)."""

    def __init__(
        self,
        name: str,
        *,
        region: str,
        load_balancer_id: pulumi.Input[str],
        acl_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            _ListenerAclProvider(),
            name,
            {
                "region": region,
                "loadBalancerId": load_balancer_id,
                "aclId": acl_id,
                "listenerPort": LISTENER_PORT,
                "purpose": "ack-api-server-acl",
            },
            opts,
        )


class ApiServerAccess(pulumi.ComponentResource):
    """A whitelist of CIDRs on the API server's CLB listener; `.ready` to depend on."""

    acl_id: pulumi.Output[str]
    ready: pulumi.Resource

    def __init__(
        self,
        name: str,
        *,
        region: str,
        load_balancer_id: pulumi.Input[str],
        allowed_cidrs: list[str],
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("chatchat:cluster:ApiServerAccess", name, None, opts)
        if not allowed_cidrs or any(c.endswith("/0") for c in allowed_cidrs):
            raise ValueError(
                f"cluster.apiServerAllowedCidrs: {allowed_cidrs} must list the "
                "deployer's egress CIDRs, none of them /0"
            )
        child = pulumi.ResourceOptions(parent=self)
        acl = alicloud.slb.Acl(
            f"{name}-acl", name=f"{name}-api-server", ip_version="ipv4", tags=tags, opts=child
        )
        entries = [
            alicloud.slb.AclEntryAttachment(
                f"{name}-acl-{cidr.replace('/', '-')}",
                acl_id=acl.id,
                entry=cidr,
                comment="cluster.apiServerAllowedCidrs",
                opts=child,
            )
            for cidr in allowed_cidrs
        ]
        self.ready = ListenerAcl(
            f"{name}-listener-acl",
            region=region,
            load_balancer_id=load_balancer_id,
            acl_id=acl.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=entries),
        )
        self.acl_id = acl.id
        self.register_outputs({"aclId": self.acl_id})
