"""`python -m tools <verb>`: see `tools/cli.py` for the verbs and how to add one."""

import sys

from tools.cli import main

sys.exit(main())
