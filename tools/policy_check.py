"""`python -m tools.policy_check`: the old name of `python -m tools policy`, for one release."""

import sys

from tools.cli import legacy_entry

if __name__ == "__main__":
    sys.exit(legacy_entry("policy", "tools.policy_check"))
