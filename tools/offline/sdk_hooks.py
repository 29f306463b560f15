"""Every private or undocumented part of the Pulumi SDKs that the offline tools rely on.

The offline engine runs a program the way `pulumi up` would, without the CLI; the offline policy
runner calls the pack's policies the way the analyzer would. Both need a few SDK internals. They
are all here, behind names of our own, so that an SDK upgrade has one place to check:
`tests/test_sdk_hooks.py` exercises each hook and names the one that broke. The versions below are
the ones the hooks were checked against (requirements.txt pins them); the test fails while the
installed SDK differs, until someone re-checks the hooks and updates `VERIFIED_WITH`.
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime import settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

VERIFIED_WITH = {"pulumi": "3.272.0", "pulumi-policy": "1.21.0"}

# What `args.not_applicable()` raises inside a policy; the analyzer treats it as "no verdict".
PolicyNotApplicable = _NotApplicableError
# What reading an unknown (computed) value through `unknown_checking_proxy` raises.
PolicyUnknownValue = UnknownValueError
# The proxy the analyzer wraps a resource's properties in before a policy sees them.
policy_properties = unknown_checking_proxy
# The SDK's own in-process engine stand-in, subclassed to record each registration.
RecordingMonitorBase = MockMonitor


def sync_await(awaitable: Any) -> Any:
    """Run a coroutine or future to completion on the SDK's own event loop."""
    return _sync_await(awaitable)


def reset_root_resource() -> None:
    """Forget the previous rendering's stack resource (the SDK keeps one per process)."""
    settings.ROOT.set(None)


def root_resource() -> Any:
    """The stack resource of the program just run; its `outputs` are the stack's exports."""
    return settings.get_root_resource()


def run_program(program: Any) -> Any:
    """Run `program` as the SDK runs `__main__.py`, waiting for every registration to finish."""
    return sync_await(run_pulumi_func(program))


def registered_state(monitor: MockMonitor, urn: str) -> dict[str, Any]:
    """The state the mock monitor keeps for a registered resource (empty if it kept none)."""
    registration = monitor.resources.get(urn)
    return dict(registration.state) if registration is not None else {}
