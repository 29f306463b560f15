"""The offline renderer: run the Pulumi program of a stack under `pulumi.runtime.set_mocks` and
return every resource it declares, as the engine would receive it.

This is the one place the program is run without the Pulumi CLI. Tests, `tools.plan`, the offline
policy runner, `tools.diff` and `tools.model_change` all call `render_stack`.

What a record holds is what the engine sees in a RegisterResource call: the type token, the
logical name, the parent, the inputs under the engine's (camelCase) property names, dependencies
and resource options. Computed outputs (ids, endpoints, kubeconfig, connection strings) come from
`tools.offline_outputs`, shaped like the real providers' outputs.
"""

from __future__ import annotations

import copy
import json
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import PROJECT, ConfigError, StackConfig, parse_config, raw_from_config_map

REPO = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO / "stacks"
PROGRAM = REPO / "__main__.py"
SECRET_MASK = "[secret]"

# Special signatures of the Pulumi property wire format (sdk/go/common/resource/sig).
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# set_mocks configures process-wide state: one rendering at a time.
_LOCK = threading.Lock()


class RenderError(Exception):
    """The program failed while declaring resources (not a config problem)."""


@dataclass(frozen=True)
class Secret:
    """A value the program marked secret; shown as `[secret]`, unwrapped only for policies."""

    value: Any

    def __repr__(self) -> str:
        return SECRET_MASK


@dataclass
class RenderedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def protect(self) -> bool:
        return bool(self.options.get("protect"))

    def masked_inputs(self) -> dict[str, Any]:
        return mask_secrets(self.inputs)

    def plain_inputs(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped, as a policy pack sees `props`."""
        return unwrap_secrets(self.inputs)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape of `tools.plan --json` (urn, type, name, parent, inputs)."""
        return {"urn": self.urn, "type": self.type, "name": self.name, "parent": self.parent,
                "inputs": self.masked_inputs()}


@dataclass
class Rendering:
    stack: str
    config: StackConfig
    resources: list[RenderedResource]
    outputs: dict[str, Any]

    def by_type(self, type_token: str) -> list[RenderedResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> RenderedResource:
        found = [r for r in self.by_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.by_type(type_token)]
            raise LookupError(f"expected one {type_token} named {name!r}, found {names}")
        return found[0]

    def by_urn(self) -> dict[str, RenderedResource]:
        return {r.urn: r for r in self.resources}


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


def _decode_wire(value: Any) -> Any:
    """Turn the wire format of a RegisterResource request into plain data plus `Secret`s."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return Secret(_decode_wire(value.get("value")))
        if sig == _RESOURCE_SIG:
            return value.get("urn")
        return {k: _decode_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_wire(v) for v in value]
    if value == _UNKNOWN:
        return "[unknown]"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Struct carries every number as a double
    return value


# --- stack files -----------------------------------------------------------------------------

def stack_names(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def read_stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> dict[str, Any]:
    """The `config:` map of `stacks/Pulumi.<stack>.yaml`, keys fully qualified."""
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_names(stacks_dir)) or "none"
        raise FileNotFoundError(f"no stack file {path} (stacks: {known})")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([(str(path), f"not valid YAML: {exc}")]) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError([(str(path), "needs a top-level `config:` mapping")])
    return dict(config)


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `{"llm.model": "x", "alicloud:region": "y"}` to a fully qualified config map.

    A key without a namespace is ours (`chatchat:`); dots walk into structured values and create
    what is missing. The input is not modified.
    """
    result = copy.deepcopy(dict(config))
    for dotted, value in overrides.items():
        set_dotted(result, dotted, value)
    return result


def set_dotted(config: MutableMapping[str, Any], dotted: str, value: Any,
               new_map: Callable[[], MutableMapping[str, Any]] = dict) -> None:
    """Set one dotted key in a fully qualified config map, making missing maps with `new_map`
    (a plain dict here; the stack-file writer passes ruamel's comment-keeping map)."""
    namespace, _, path = dotted.rpartition(":")
    head, *rest = path.split(".")
    key = f"{namespace or PROJECT}:{head}"
    if not rest:
        config[key] = value
        return
    node = config.setdefault(key, new_map())
    for part in rest[:-1]:
        if not isinstance(node, MutableMapping):
            raise ValueError(f"cannot set {dotted}: {part} is not a mapping")
        node = node.setdefault(part, new_map())
    if not isinstance(node, MutableMapping):
        raise ValueError(f"cannot set {dotted}: not a mapping")
    node[rest[-1]] = value


def _engine_config(config: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Config as the engine hands it to the program: strings, structured values as JSON."""
    values, secret_keys = {}, []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            value, _ = "[secret]", secret_keys.append(key)  # ciphertext cannot be read offline
        values[key] = value if isinstance(value, str) else json.dumps(value)
    return values, secret_keys


# --- the mock engine -------------------------------------------------------------------------

def _mock_monitor_class():
    from google.protobuf.json_format import MessageToDict
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        """The SDK's mock monitor, also keeping what the engine would receive."""

        def __init__(self, mocks):
            super().__init__(mocks)
            self.records: list[RenderedResource] = []

        def RegisterResource(self, request):
            # The engine returns outputs named in additionalSecretOutputs as secrets; so do we.
            self.mocks.registration.secret_outputs = set(request.additionalSecretOutputs)
            response = super().RegisterResource(request)
            if request.type == "pulumi:pulumi:Stack":
                return response
            raw = MessageToDict(request)
            options = {k: raw[k] for k in (
                "protect", "deleteBeforeReplace", "ignoreChanges", "replaceOnChanges",
                "aliases", "aliasURNs", "aliasSpecs", "provider", "additionalSecretOutputs",
                "customTimeouts", "retainOnDelete", "deletedWith", "version",
            ) if k in raw}
            state = self.resources[response.urn].state if response.urn in self.resources else {}
            self.records.append(RenderedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                custom=bool(request.custom),
                inputs=_decode_wire(raw.get("object", {})),
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in
                                       request.propertyDependencies.items()},
                options=options,
                outputs=_decode_wire(copy.deepcopy(state)),
            ))
            return response

    return RecordingMonitor


def render_config(config: Mapping[str, Any], stack: str) -> Rendering:
    """Render `__main__.py` for an already-read, fully qualified config map."""
    return render_program(lambda: runpy.run_path(str(PROGRAM), run_name="__pulumi_program__"),
                          config, stack)


def render_program(program: Callable[[], None], config: Mapping[str, Any],
                   stack: str) -> Rendering:
    """Render any program (a function declaring resources) under the offline mocks.

    `render_config` runs the real `__main__.py` through this; tests use it to render one
    component, or resources declared by hand, with exactly the same engine stand-in.
    """
    # Raises ConfigError before anything is declared.
    cfg = parse_config(raw_from_config_map(config), stack)

    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from tools.offline_outputs import OfflineMocks

    values, secret_keys = _engine_config(config)
    with _LOCK:
        saved_env = os.environ.pop("PULUMI_CONFIG", None)
        try:
            settings.ROOT.set(None)
            mocks = OfflineMocks()
            monitor = _mock_monitor_class()(mocks)
            pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False,
                                     monitor=monitor)
            pulumi.runtime.set_all_config(values, secret_keys)
            if str(REPO) not in sys.path:
                sys.path.insert(0, str(REPO))
            try:
                _sync_await(run_pulumi_func(program))
                outputs = _resolve_outputs(settings.get_root_resource())
            except Exception as exc:
                if type(exc).__name__ == "ConfigError":
                    raise
                raise RenderError(f"stack {stack}: the program failed: {exc}") from exc
        finally:
            if saved_env is not None:
                os.environ["PULUMI_CONFIG"] = saved_env
    # The SDK registers from several threads; sort so that a rendering is deterministic.
    resources = sorted(monitor.records, key=lambda r: r.urn)
    return Rendering(stack=stack, config=cfg, resources=resources, outputs=outputs)


def _resolve_outputs(root: Any) -> dict[str, Any]:
    from pulumi import Output
    from pulumi.runtime.sync_await import _sync_await

    resolved = {}
    for name, value in (getattr(root, "outputs", None) or {}).items():
        output = Output.from_input(value)
        plain = _sync_await(output.future())
        resolved[name] = Secret(plain) if _sync_await(output.is_secret()) else plain
    return resolved


def render_stack(stack: str, overrides: Mapping[str, Any] | None = None,
                 stacks_dir: Path = STACKS_DIR) -> Rendering:
    """Render `stacks/Pulumi.<stack>.yaml`, with optional dotted-key overrides applied."""
    config = read_stack_file(stack, stacks_dir)
    if overrides:
        config = apply_overrides(config, overrides)
    return render_config(config, stack)


def resource_tree(resources: Iterable[RenderedResource]) -> list[tuple[int, RenderedResource]]:
    """Resources under their parents (siblings in URN order), with their depth."""
    resources = list(resources)
    children: dict[str | None, list[RenderedResource]] = {}
    urns = {r.urn for r in resources}
    for r in resources:
        children.setdefault(r.parent if r.parent in urns else None, []).append(r)
    ordered: list[tuple[int, RenderedResource]] = []

    def walk(parent: str | None, depth: int) -> None:
        for child in children.get(parent, []):
            ordered.append((depth, child))
            walk(child.urn, depth + 1)

    walk(None, 0)
    return ordered
