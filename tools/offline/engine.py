"""The offline renderer: run the Pulumi program of a stack under `pulumi.runtime.set_mocks` and
return every resource it declares, as the engine would receive it.

This is the one place the program is run without the Pulumi CLI. Tests, `plan`, the offline policy
runner, `diff` and `model-change` all call `render_stack`.

What a record holds is what the engine sees in a RegisterResource call: the type token, the
logical name, the parent, the inputs under the engine's (camelCase) property names, dependencies
and resource options. Computed outputs (ids, endpoints, kubeconfig, connection strings) come from
`tools.offline.outputs`, shaped like the real providers' outputs, for the stack's region. The SDK
internals this needs are in `tools.offline.sdk_hooks`.
"""

from __future__ import annotations

import copy
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import PROJECT, ConfigError, StackConfig, parse_config, raw_from_config_map
from tools.offline.stack_files import (
    REPO,
    STACKS_DIR,
    apply_overrides,
    engine_config,
    read_stack_file,
)
from tools.offline.wire import Secret, decode_wire, mask_secrets, unwrap_secrets

if TYPE_CHECKING:
    from tools.offline.outputs import OfflineMocks

PROGRAM = REPO / "__main__.py"

# set_mocks configures process-wide state: one rendering at a time.
_LOCK = threading.Lock()


class RenderError(Exception):
    """The program failed while declaring resources (not a config problem)."""


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
        """The stable JSON shape of `plan --json` (urn, type, name, parent, inputs)."""
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "inputs": self.masked_inputs(),
        }


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


# --- the mock engine -------------------------------------------------------------------------

_OPTIONS = (
    "protect",
    "deleteBeforeReplace",
    "ignoreChanges",
    "replaceOnChanges",
    "aliases",
    "aliasURNs",
    "aliasSpecs",
    "provider",
    "additionalSecretOutputs",
    "customTimeouts",
    "retainOnDelete",
    "deletedWith",
    "version",
)


def _recording_monitor(mocks: OfflineMocks) -> Any:
    from google.protobuf.json_format import MessageToDict

    from tools.offline.sdk_hooks import RecordingMonitorBase, registered_state

    class RecordingMonitor(RecordingMonitorBase):
        """The SDK's mock monitor, also keeping what the engine would receive."""

        def __init__(self, mocks: OfflineMocks) -> None:
            super().__init__(mocks)
            self.offline_mocks = mocks
            self.records: list[RenderedResource] = []

        def RegisterResource(self, request: Any) -> Any:
            # The engine returns outputs named in additionalSecretOutputs as secrets; so do we.
            self.offline_mocks.registration.secret_outputs = set(request.additionalSecretOutputs)
            response = super().RegisterResource(request)
            if request.type == "pulumi:pulumi:Stack":
                return response
            raw = MessageToDict(request)
            self.records.append(
                RenderedResource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent or None,
                    custom=bool(request.custom),
                    inputs=decode_wire(raw.get("object", {})),
                    dependencies=list(request.dependencies),
                    property_dependencies={
                        k: list(v.urns) for k, v in request.propertyDependencies.items()
                    },
                    options={k: raw[k] for k in _OPTIONS if k in raw},
                    outputs=decode_wire(copy.deepcopy(registered_state(self, response.urn))),
                )
            )
            return response

    return RecordingMonitor(mocks)


def render_config(config: Mapping[str, Any], stack: str) -> Rendering:
    """Render `__main__.py` for an already-read, fully qualified config map."""
    return render_program(
        lambda: runpy.run_path(str(PROGRAM), run_name="__pulumi_program__"), config, stack
    )


def render_program(
    program: Callable[[], object], config: Mapping[str, Any], stack: str
) -> Rendering:
    """Render any program (a function declaring resources) under the offline mocks.

    `render_config` runs the real `__main__.py` through this; tests use it to render one
    component, or resources declared by hand, with exactly the same engine stand-in.
    """
    # Raises ConfigError before anything is declared.
    cfg = parse_config(raw_from_config_map(config), stack)

    import pulumi

    from tools.offline import sdk_hooks
    from tools.offline.outputs import OfflineMocks

    values, secret_keys = engine_config(config)
    with _LOCK:
        saved_env = os.environ.pop("PULUMI_CONFIG", None)
        try:
            sdk_hooks.reset_root_resource()
            mocks = OfflineMocks(region=cfg.region, stack=stack)
            monitor = _recording_monitor(mocks)
            pulumi.runtime.set_mocks(
                mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor
            )
            pulumi.runtime.set_all_config(values, secret_keys)
            if str(REPO) not in sys.path:
                sys.path.insert(0, str(REPO))
            try:
                sdk_hooks.run_program(program)
                outputs = _resolve_outputs(sdk_hooks.root_resource())
            except ConfigError:
                raise
            except Exception as exc:
                raise RenderError(f"stack {stack}: the program failed: {exc}") from exc
        finally:
            if saved_env is not None:
                os.environ["PULUMI_CONFIG"] = saved_env
    # The SDK registers from several threads; sort so that a rendering is deterministic.
    resources = sorted(monitor.records, key=lambda r: r.urn)
    return Rendering(stack=stack, config=cfg, resources=resources, outputs=outputs)


def _resolve_outputs(root: Any) -> dict[str, Any]:
    from pulumi import Output

    from tools.offline.sdk_hooks import sync_await

    resolved = {}
    for name, value in (getattr(root, "outputs", None) or {}).items():
        output = Output.from_input(value)
        plain = sync_await(output.future())
        resolved[name] = Secret(plain) if sync_await(output.is_secret()) else plain
    return resolved


def render_stack(
    stack: str, overrides: Mapping[str, Any] | None = None, stacks_dir: Path = STACKS_DIR
) -> Rendering:
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
