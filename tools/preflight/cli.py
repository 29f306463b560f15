"""Command line of the preflight (see tools/preflight/__init__.py)."""

from __future__ import annotations

import sys

from components.aliyun_sdk import has_credentials
from components.config import ConfigError, parse_config, raw_from_config_map
from tools.cli import add_set_argument, add_stack_arguments, command_parser, parse_assignments
from tools.offline.stack_files import apply_overrides, read_stack_file
from tools.preflight.account import Account, SdkAccount
from tools.preflight.checks import run_checks


def main(argv: list[str] | None = None, account: Account | None = None) -> int:
    import tools.preflight as package

    parser = command_parser("preflight", package.__doc__)
    add_stack_arguments(parser)
    add_set_argument(
        parser,
        help_text="override a stack config key for this check, e.g. "
        "registry.pullPassword (a secret the stack file lacks)",
    )
    args = parser.parse_args(argv)
    try:
        config = apply_overrides(
            read_stack_file(args.stack, args.stacks_dir), parse_assignments(args.assignments)
        )
        cfg = parse_config(raw_from_config_map(config), args.stack)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if account is None:
        if not has_credentials():
            print(
                "preflight: no Alibaba Cloud credentials (ALICLOUD_ACCESS_KEY / "
                "ALICLOUD_SECRET_KEY); nothing was checked",
                file=sys.stderr,
            )
            return 2
        account = SdkAccount()
    findings = run_checks(cfg, account)
    for f in findings:
        print(f"{'ok  ' if f.ok else 'FAIL'} {f.item:18} {f.key}: {f.message}")
    failed = [f for f in findings if not f.ok]
    print(f"preflight {args.stack}: {len(findings) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0
