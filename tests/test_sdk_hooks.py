"""The Pulumi SDK internals the offline tools rely on (`tools/offline/sdk_hooks.py`), each one
exercised on the installed SDKs: an upgrade that breaks a hook fails here, naming it."""

from __future__ import annotations

import importlib.metadata
import re

import pulumi
import pulumi_random as random
import pytest
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs

from tests.conftest import REPO
from tools.offline import sdk_hooks
from tools.offline.engine import render_program
from tools.offline.stack_files import read_stack_file

CONFIG = read_stack_file("dev")
HOOKS_FILE = "tools/offline/sdk_hooks.py"


def _pins(requirements: str) -> dict[str, str]:
    text = (REPO / requirements).read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, flags=re.M))


@pytest.mark.parametrize("dist", sorted(sdk_hooks.VERIFIED_WITH))
def test_hooks_were_verified_with_the_installed_and_pinned_sdk(dist):
    verified = sdk_hooks.VERIFIED_WITH[dist]
    installed = importlib.metadata.version(dist)
    assert installed == verified, (
        f"{dist} {installed} is installed, but the private hooks in {HOOKS_FILE} were checked "
        f"against {verified}: run tests/test_sdk_hooks.py, fix the hooks that fail, then update "
        "VERIFIED_WITH"
    )
    pins = {**_pins("requirements.txt"), **_pins("requirements-dev.txt")}
    pinned = pins.get(dist)
    assert pinned == verified, f"requirements pin {dist}=={pinned}; hooks checked: {verified}"


def test_hook_sync_await_runs_a_coroutine_to_its_result():
    async def answer() -> int:
        return 42

    assert sdk_hooks.sync_await(answer()) == 42, "sdk hook sync_await (_sync_await) broke"


def test_hook_root_resource_holds_this_renderings_exports_only():
    def first() -> None:
        pulumi.export("first", 1)

    def second() -> None:
        pulumi.export("second", 2)

    render_program(first, CONFIG, "dev")
    outputs = render_program(second, CONFIG, "dev").outputs
    assert outputs == {"second": 2}, (
        "sdk hooks reset_root_resource / root_resource (settings.ROOT) broke"
    )


def test_hook_recording_monitor_keeps_the_state_the_mocks_returned():
    def program() -> None:
        random.RandomPassword("pw", length=12)

    rendering = render_program(program, CONFIG, "dev")
    password = rendering.one("random:index/randomPassword:RandomPassword")
    assert password.inputs == {"length": 12}
    assert password.outputs["length"] == 12 and password.outputs["result"], (
        "sdk hooks RecordingMonitorBase / registered_state (MockMonitor.resources) broke"
    )


def _resource_args() -> ResourceValidationArgs:
    return ResourceValidationArgs(
        "random:index/randomId:RandomId",
        {},
        "urn:x",
        "x",
        PolicyResourceOptions(False, [], None, [], None, [], None),
        None,
        {},
    )


def test_hook_policy_not_applicable_is_what_args_not_applicable_raises():
    with pytest.raises(sdk_hooks.PolicyNotApplicable):
        _resource_args().not_applicable("no GPU here")


def test_hook_policy_properties_raises_policy_unknown_value_on_an_unknown():
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    props = sdk_hooks.policy_properties({"known": "a", "later": UNKNOWN_STRING_VALUE})
    assert props["known"] == "a"
    with pytest.raises(sdk_hooks.PolicyUnknownValue):
        props["later"]
