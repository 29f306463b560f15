"""The account, as a thin interface: each method returns one API response body in the shape the
API documents (`to_map()` of the official SDK's response). `SdkAccount` calls the SDKs;
`RecordedAccount` replays recorded responses (tests/fixtures/preflight)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from xml.etree import ElementTree


class Account(Protocol):
    def kubernetes_versions(self, region: str) -> list[dict[str, Any]]: ...
    def available_instance_type(
        self, region: str, zone: str, instance_type: str
    ) -> dict[str, Any]: ...
    def account_attributes(self, region: str) -> dict[str, Any]: ...
    def adb_resources(self, region: str, zone: str) -> dict[str, Any]: ...
    def role(self, name: str) -> dict[str, Any] | None: ...
    def product_quotas(self, region: str, product_code: str) -> dict[str, Any]: ...
    def addons(self, region: str, cluster_spec: str, version: str) -> dict[str, Any]: ...
    def bucket_info(self, region: str, bucket: str) -> BucketAnswer: ...


@dataclass(frozen=True)
class BucketAnswer:
    """What OSS answered to GetBucketInfo: the HTTP status and the error code (None on 200)."""

    status: int
    code: str | None = None


def bucket_answer(status: int, body: str) -> BucketAnswer:
    """A GetBucketInfo answer from its HTTP status and XML body (`<Error><Code>` on errors)."""
    if status == 200:
        return BucketAnswer(200)
    code = ElementTree.fromstring(body.strip()).findtext("Code") if body.strip() else None
    return BucketAnswer(status, code.strip() if code else None)


class SdkAccount:
    """The real account through alibabacloud_cs20151215, _ecs20140526, _gpdb20160503, _ram,
    _quotas20200510 and the OSS SDK V2 (alibabacloud_oss_v2). `oss_endpoint` replaces the
    region's OSS endpoint (path-style), e.g. a local server in tests."""

    def __init__(self, oss_endpoint: str | None = None) -> None:
        self.oss_endpoint = oss_endpoint

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

    def product_quotas(self, region: str, product_code: str) -> dict[str, Any]:
        from alibabacloud_quotas20200510 import models
        from alibabacloud_quotas20200510.client import Client

        from components.aliyun_sdk import openapi_config

        return (
            Client(openapi_config(region, "quotas.aliyuncs.com"))
            .list_product_quotas(
                models.ListProductQuotasRequest(
                    product_code=product_code,
                    quota_category="CommonQuota",
                    max_results=100,
                    dimensions=[
                        models.ListProductQuotasRequestDimensions(key="regionId", value=region)
                    ],
                )
            )
            .body.to_map()
        )

    def addons(self, region: str, cluster_spec: str, version: str) -> dict[str, Any]:
        from alibabacloud_cs20151215 import models
        from alibabacloud_cs20151215.client import Client

        from components.aliyun_sdk import openapi_config

        return (
            Client(openapi_config(region, f"cs.{region}.aliyuncs.com"))
            .list_addons(
                models.ListAddonsRequest(
                    region_id=region,
                    cluster_type="ManagedKubernetes",
                    profile="Default",
                    cluster_spec=cluster_spec,
                    cluster_version=version,
                )
            )
            .body.to_map()
        )

    def bucket_info(self, region: str, bucket: str) -> BucketAnswer:
        import alibabacloud_oss_v2 as oss

        from components.aliyun_sdk import openapi_config

        # The same credentials as every other call (the provider's variables or the SDK chain).
        chain = openapi_config(region).credential

        def credentials() -> Any:
            current = chain.get_credential()
            return oss.credentials.Credentials(
                access_key_id=current.access_key_id,
                access_key_secret=current.access_key_secret,
                security_token=current.security_token,
            )

        config = oss.config.load_default()
        config.credentials_provider = oss.credentials.CredentialsProviderFunc(credentials)
        config.region = region
        if self.oss_endpoint:
            config.endpoint, config.use_path_style = self.oss_endpoint, True
            config.retry_max_attempts = 1
        try:
            oss.Client(config).get_bucket_info(oss.GetBucketInfoRequest(bucket=bucket))
        except oss.exceptions.OperationError as exc:
            error = exc.unwrap()
            if isinstance(error, oss.exceptions.ServiceError):
                return BucketAnswer(error.status_code, error.code)
            raise
        return BucketAnswer(200)


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

    def product_quotas(self, region: str, product_code: str) -> dict[str, Any]:
        return self._load("ListProductQuotas", f"{region}/{product_code}") or {"Quotas": []}

    def addons(self, region: str, cluster_spec: str, version: str) -> dict[str, Any]:
        return self._load("ListAddons", f"{cluster_spec}/{version}") or {"addons": []}

    def bucket_info(self, region: str, bucket: str) -> BucketAnswer:
        answer = self._load("GetBucketInfo", bucket)
        if answer is None:
            raise KeyError(f"GetBucketInfo.json records no answer for bucket {bucket}")
        return bucket_answer(answer["status"], answer["body"])
