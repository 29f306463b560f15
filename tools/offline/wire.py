"""The Pulumi property wire format, as a RegisterResource request carries it, and the `Secret`
marker the offline records use for values the program marked secret.

The signatures are the engine's (sdk/go/common/resource/sig); they are part of the public
protocol, not of the Python SDK's internals.
"""

from __future__ import annotations

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


def mask_secrets(value: Any) -> Any:
    if isinstance(value, Secret):
        return SECRET_MASK
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def unwrap_secrets(value: Any) -> Any:
    if isinstance(value, Secret):
        return unwrap_secrets(value.value)
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


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
