"""Command line of the preflight (see tools/preflight/__init__.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.aliyun_sdk import has_credentials
from components.config import ConfigError, parse_config, raw_from_config_map
from tools.preflight.account import Account, SdkAccount
from tools.preflight.checks import run_checks
from tools.render import read_stack_file


def main(argv: list[str] | None = None, account: Account | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools preflight", description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--stacks-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    config = read_stack_file(args.stack, args.stacks_dir) if args.stacks_dir else \
        read_stack_file(args.stack)
    try:
        cfg = parse_config(raw_from_config_map(config), args.stack)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if account is None:
        if not has_credentials():
            print("preflight: no Alibaba Cloud credentials (ALICLOUD_ACCESS_KEY / "
                  "ALICLOUD_SECRET_KEY); nothing was checked", file=sys.stderr)
            return 2
        account = SdkAccount()
    findings = run_checks(cfg, account)
    for f in findings:
        print(f"{'ok  ' if f.ok else 'FAIL'} {f.item:18} {f.key}: {f.message}")
    failed = [f for f in findings if not f.ok]
    print(f"preflight {args.stack}: {len(findings) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0
