"""The VPC the whole stack lives in: one vSwitch per zone, a NAT gateway for outbound traffic and
the security group the cluster nodes share.

Nodes get no public IPs; they pull images and packages through the NAT gateway's EIP (one SNAT
entry per vSwitch). The security group admits traffic from inside the VPC only: nothing from
0.0.0.0/0 (the API server and the web UI are reached over the VPC or `kubectl port-forward`).
"""

from __future__ import annotations

import pulumi
import pulumi_alicloud as alicloud

from components.config import StackConfig

# Enhanced NAT gateways are billed per LCU; an EIP billed by traffic costs nothing while idle.
NAT_PAYMENT = {"payment_type": "PayAsYouGo", "internet_charge_type": "PayByLcu"}
EIP_BANDWIDTH_MBPS = "100"


class Network(pulumi.ComponentResource):
    """VPC, vSwitches, NAT gateway with EIP and SNAT, and the node security group."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    zones: list[str]
    vswitch_ids: list[pulumi.Output[str]]
    pod_vswitch_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]
    nat_gateway_id: pulumi.Output[str]
    egress_ip: pulumi.Output[str]

    def __init__(
        self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("chatchat:network:Network", name, None, opts)
        net = cfg.network
        tags = cfg.resource_tags()
        child = pulumi.ResourceOptions(parent=self)
        prefix = f"{cfg.release}-{cfg.stack}"

        vpc = alicloud.vpc.Network(
            f"{name}-vpc",
            vpc_name=f"{prefix}-vpc",
            cidr_block=net.vpc_cidr,
            description=f"chatchat {cfg.stack}: ACK cluster, model store and vector database",
            tags=tags,
            opts=child,
        )

        vswitches = [
            alicloud.vpc.Switch(
                f"{name}-vswitch-{zone}",
                vswitch_name=f"{prefix}-{zone}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                zone_id=zone,
                tags=tags,
                opts=child,
            )
            for zone, cidr in zip(cfg.zones, net.vswitch_cidrs, strict=True)
        ]

        # Terway pod vSwitches apart from the node vSwitches, when configured (same zones).
        pod_vswitches = (
            [
                alicloud.vpc.Switch(
                    f"{name}-pod-vswitch-{zone}",
                    vswitch_name=f"{prefix}-pods-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=cidr,
                    zone_id=zone,
                    tags=tags,
                    opts=child,
                )
                for zone, cidr in zip(cfg.zones, net.pod_vswitch_cidrs, strict=True)
            ]
            if net.pod_vswitch_cidrs
            else vswitches
        )

        nat = alicloud.vpc.NatGateway(
            f"{name}-nat",
            nat_gateway_name=f"{prefix}-nat",
            vpc_id=vpc.id,
            vswitch_id=vswitches[0].id,
            nat_type="Enhanced",
            network_type="internet",
            deletion_protection=cfg.production,
            tags=tags,
            **NAT_PAYMENT,
            opts=child,
        )
        eip = alicloud.ecs.EipAddress(
            f"{name}-nat-eip",
            address_name=f"{prefix}-nat",
            bandwidth=EIP_BANDWIDTH_MBPS,
            internet_charge_type="PayByTraffic",
            payment_type="PayAsYouGo",
            deletion_protection=cfg.production,
            tags=tags,
            opts=child,
        )
        association = alicloud.ecs.EipAssociation(
            f"{name}-nat-eip-association",
            allocation_id=eip.id,
            instance_id=nat.id,
            instance_type="Nat",
            opts=child,
        )
        snat = [(zone, v, "") for zone, v in zip(cfg.zones, vswitches, strict=True)]
        if pod_vswitches is not vswitches:
            snat += [(zone, v, "pods-") for zone, v in zip(cfg.zones, pod_vswitches, strict=True)]
        for zone, vswitch, role in snat:
            alicloud.vpc.SnatEntry(
                f"{name}-snat-{role}{zone}",
                snat_table_id=nat.snat_table_ids,
                source_vswitch_id=vswitch.id,
                snat_ip=eip.ip_address,
                snat_entry_name=f"{prefix}-{role}{zone}",
                # SNAT needs the EIP bound to the gateway first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[association]),
            )

        group = alicloud.ecs.SecurityGroup(
            f"{name}-nodes",
            security_group_name=f"{prefix}-nodes",
            vpc_id=vpc.id,
            security_group_type="normal",
            inner_access_policy="Accept",
            description="ACK nodes and pods: ingress from inside the VPC only",
            tags=tags,
            opts=child,
        )
        # Terway gives pods VPC addresses, so the VPC CIDR covers nodes, pods and the database.
        alicloud.ecs.SecurityGroupRule(
            f"{name}-nodes-ingress-vpc",
            security_group_id=group.id,
            type="ingress",
            ip_protocol="all",
            port_range="-1/-1",
            cidr_ip=net.vpc_cidr,
            policy="accept",
            nic_type="intranet",
            priority=1,
            description="all traffic from inside the VPC",
            opts=child,
        )

        self.vpc_id = vpc.id
        self.vpc_cidr = net.vpc_cidr
        self.zones = list(cfg.zones)
        self.vswitch_ids = [v.id for v in vswitches]
        self.pod_vswitch_ids = [v.id for v in pod_vswitches]
        self.security_group_id = group.id
        self.nat_gateway_id = nat.id
        self.egress_ip = eip.ip_address
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "vswitchIds": self.vswitch_ids,
                "podVswitchIds": self.pod_vswitch_ids,
                "securityGroupId": self.security_group_id,
                "natGatewayId": self.nat_gateway_id,
                "egressIp": self.egress_ip,
            }
        )
