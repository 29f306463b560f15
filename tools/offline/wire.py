"""The Pulumi property wire format, as a RegisterResource request carries it, and the `Secret`
marker the offline records use for values the program marked secret.

The signatures are the engine's (sdk/go/common/resource/sig); they are part of the public
protocol, not of the Python SDK's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET_MASK = "[secret]"


@dataclass(frozen=True)
class Secret:
    """A value the program marked secret; shown as `[secret]`, unwrapped only for policies."""

    value: Any

    def __repr__(self) -> str:
        return SECRET_MASK


def secret_envelope(value: Any) -> dict[str, Any]:
    """`value` as the engine sends a secret output back to the program."""
    return {SIG: SECRET_SIG, "value": value}


def _replace_secrets(value: Any, secret: Callable[[Secret], Any]) -> Any:
    if isinstance(value, Secret):
        return secret(value)
    if isinstance(value, dict):
        return {k: _replace_secrets(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secrets(v, secret) for v in value]
    return value


def mask_secrets(value: Any) -> Any:
    """Every secret shown as `[secret]`, as plans and reports print them."""
    return _replace_secrets(value, lambda _: SECRET_MASK)


def unwrap_secrets(value: Any) -> Any:
    """Every secret replaced by its plain value, as a policy pack sees `props`."""
    return _replace_secrets(value, lambda secret: unwrap_secrets(secret.value))


def decode_wire(value: Any) -> Any:
    """Turn the wire format of a RegisterResource request into plain data plus `Secret`s."""
    if isinstance(value, dict):
        sig = value.get(SIG)
        if sig == SECRET_SIG:
            return Secret(decode_wire(value.get("value")))
        if sig == RESOURCE_SIG:
            return value.get("urn")
        return {k: decode_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_wire(v) for v in value]
    if value == UNKNOWN:
        return "[unknown]"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Struct carries every number as a double
    return value
