#!/usr/bin/env bash
# Fresh machine, one command: set up the Pulumi program's virtualenv and print the offline plan.
#   bash tools/plan.sh [STACK] [--json]      (STACK defaults to dev)
set -euo pipefail
cd "$(dirname "$0")/.."
stack="${1:-dev}"
[ $# -gt 0 ] && shift
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
exec .venv/bin/python -m tools plan --stack "$stack" "$@"
