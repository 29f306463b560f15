"""The account, as a thin interface: each method returns one API response body in the shape the
API documents (`to_map()` of the official SDK's response). `SdkAccount` calls the SDKs;
`RecordedAccount` replays recorded responses (tests/fixtures/preflight)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class Account(Protocol):
    def kubernetes_versions(self, region: str) -> list[dict[str, Any]]: ...
    def available_instance_type(
        self, region: str, zone: str, instance_type: str
    ) -> dict[str, Any]: ...
    def account_attributes(self, region: str) -> dict[str, Any]: ...
    def adb_resources(self, region: str, zone: str) -> dict[str, Any]: ...
    def role(self, name: str) -> dict[str, Any] | None: ...


class SdkAccount:
    """The real account through alibabacloud_cs20151215, _ecs20140526, _gpdb20160503, _ram."""

    def kubernetes_versions(self, region: str) -> list[dict[str, Any]]:
        from alibabacloud_cs20151215 import models
        from alibabacloud_cs20151215.client import Client

        from components.aliyun_sdk import openapi_config

        response = Client(
            openapi_config(region, f"cs.{region}.aliyuncs.com")
        ).describe_kubernetes_version_metadata(
            models.DescribeKubernetesVersionMetadataRequest(
                region=region, cluster_type="ManagedKubernetes", mode="creatable"
            )
        )
        return [row.to_map() for row in response.body]

    def available_instance_type(self, region: str, zone: str, instance_type: str) -> dict[str, Any]:
        from alibabacloud_ecs20140526 import models
        from alibabacloud_ecs20140526.client import Client

        from components.aliyun_sdk import openapi_config

        return (
            Client(openapi_config(region))
            .describe_available_resource(
                models.DescribeAvailableResourceRequest(
                    region_id=region,
                    zone_id=zone,
                    destination_resource="InstanceType",
                    instance_type=instance_type,
                    io_optimized="optimized",
                    instance_charge_type="PostPaid",
                )
            )
            .body.to_map()
        )

    def account_attributes(self, region: str) -> dict[str, Any]:
        from alibabacloud_ecs20140526 import models
        from alibabacloud_ecs20140526.client import Client

        from components.aliyun_sdk import openapi_config

        return (
            Client(openapi_config(region))
            .describe_account_attributes(
                models.DescribeAccountAttributesRequest(
                    region_id=region,
                    attribute_name=[
                        "max-postpaid-instance-vcpu-count",
                        "used-postpaid-instance-vcpu-count",
                    ],
                )
            )
            .body.to_map()
        )

    def adb_resources(self, region: str, zone: str) -> dict[str, Any]:
        from alibabacloud_gpdb20160503 import models
        from alibabacloud_gpdb20160503.client import Client

        from components.aliyun_sdk import openapi_config

        return (
            Client(openapi_config(region))
            .describe_available_resources(
                models.DescribeAvailableResourcesRequest(
                    region=region, zone_id=zone, charge_type="PostPaid"
                )
            )
            .body.to_map()
        )

    def role(self, name: str) -> dict[str, Any] | None:
        from alibabacloud_ram20150501 import models
        from alibabacloud_ram20150501.client import Client
        from Tea.exceptions import TeaException

        from components.aliyun_sdk import openapi_config

        try:
            return (
                Client(openapi_config("cn-hangzhou", "ram.aliyuncs.com"))
                .get_role(models.GetRoleRequest(role_name=name))
                .body.to_map()
            )
        except TeaException as exc:
            if exc.code == "EntityNotExist.Role":
                return None
            raise


class RecordedAccount:
    """Responses recorded in `<directory>/<operation>.json` (`{"source": url, "response": ...}`);
    per-key answers under `"responses": {key: body}` (zone/instance type, role name)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _load(self, operation: str, key: str | None = None) -> Any:
        data = json.loads((self.directory / f"{operation}.json").read_text(encoding="utf-8"))
        return data["responses"].get(key) if key is not None else data["response"]

    def kubernetes_versions(self, region: str) -> list[dict[str, Any]]:
        return self._load("DescribeKubernetesVersionMetadata")

    def available_instance_type(self, region: str, zone: str, instance_type: str) -> dict[str, Any]:
        return self._load("DescribeAvailableResource", f"{zone}/{instance_type}") or {
            "AvailableZones": {"AvailableZone": []}
        }

    def account_attributes(self, region: str) -> dict[str, Any]:
        return self._load("DescribeAccountAttributes")

    def adb_resources(self, region: str, zone: str) -> dict[str, Any]:
        return self._load("DescribeAvailableResources", zone) or {"Resources": []}

    def role(self, name: str) -> dict[str, Any] | None:
        return self._load("GetRole", name)
