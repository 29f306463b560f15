"""Clients of the official Alibaba Cloud SDKs (PyPI `alibabacloud_*`), built one way for the
API-server ACL binding and `tools.preflight`.

Credentials come from the SDK's default chain (`ALIBABA_CLOUD_ACCESS_KEY_ID` /
`ALIBABA_CLOUD_ACCESS_KEY_SECRET`, a profile, ECS RAM role, OIDC/RRSA) or from the variables
the Pulumi provider reads (`ALICLOUD_ACCESS_KEY`, `ALICLOUD_SECRET_KEY`, `ALICLOUD_SECURITY_TOKEN`).
"""

from __future__ import annotations

import os
from typing import Any

PROVIDER_ENV = ("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY")
SDK_ENV = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")


class NoCredentialsError(RuntimeError):
    """No Alibaba Cloud credentials could be found."""


def has_credentials() -> bool:
    """True when an access key (provider's or SDK's variables) or a credentials file is set."""
    return (
        all(os.environ.get(k) for k in PROVIDER_ENV)
        or all(os.environ.get(k) for k in SDK_ENV)
        or bool(os.environ.get("ALIBABA_CLOUD_CREDENTIALS_FILE"))
        or os.path.exists(os.path.expanduser("~/.alibabacloud/credentials"))
    )


def openapi_config(region: str, endpoint: str | None = None) -> Any:
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config as CredentialConfig
    from alibabacloud_tea_openapi.models import Config

    if all(os.environ.get(k) for k in PROVIDER_ENV) and not all(os.environ.get(k) for k in SDK_ENV):
        token = os.environ.get("ALICLOUD_SECURITY_TOKEN")
        credential = CredentialClient(
            CredentialConfig(
                type="sts" if token else "access_key",
                access_key_id=os.environ["ALICLOUD_ACCESS_KEY"],
                access_key_secret=os.environ["ALICLOUD_SECRET_KEY"],
                security_token=token,
            )
        )
    elif has_credentials():
        credential = CredentialClient()
    else:
        raise NoCredentialsError(
            "no Alibaba Cloud credentials: set ALICLOUD_ACCESS_KEY and "
            "ALICLOUD_SECRET_KEY (as for `pulumi up`) or "
            "ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET"
        )
    return Config(credential=credential, region_id=region, endpoint=endpoint)
