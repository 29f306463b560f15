"""`python -m tools preflight --stack prod`: asks the Alibaba Cloud account whether the stack can
be created. Exit 0: every item passed; 1: an item failed (each names its config key and the fix);
2: no credentials (nothing was asked)."""

from tools.preflight.cli import main

__all__ = ["main"]
