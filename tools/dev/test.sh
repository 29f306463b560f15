#!/usr/bin/env bash
# Fresh machine, one command: set up every environment and run every test.
#   - the Pulumi program, its tools and the policy pack (root .venv, tests/)
#   - the policy check of every shipped stack, offline
#   - lint and types: ruff check, ruff format --check, mypy (pyproject.toml), and hadolint on
#     every Dockerfile in app_images/
#   - each image's own suite in its own environment (app_images/*/ci.sh)
# Every part runs even when an earlier one fails; the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
reports="$repo/.test-reports"
rm -rf "$reports" && mkdir -p "$reports"
failed=()

step() {  # step NAME COMMAND...: run, record a failure, keep going
  local name=$1; shift
  echo
  echo "=== $name"
  if ! "$@"; then
    failed+=("$name")
    echo "=== $name FAILED"
  fi
}

setup_root() {
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
}

step "setup (root venv)" setup_root
step "ruff" .venv/bin/ruff check .
step "ruff format" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy
# The pack's entry is a second `__main__` module: mypy checks it in a run of its own.
step "mypy (policy pack entry)" .venv/bin/mypy policies/__main__.py
step "pytest tests/" .venv/bin/python -m pytest -q -p no:cacheprovider \
  --junitxml="$reports/root.xml" tests
step "policy check (all stacks)" .venv/bin/python -m tools policy --all
step "hadolint" .venv/bin/python -m tools.dev.lint_dockerfiles
for ci in app_images/*/ci.sh; do
  [ -f "$ci" ] || continue
  image=$(basename "$(dirname "$ci")")
  step "image $image" env JUNIT_XML="$reports/$image.xml" bash "$ci"
done

# One closing line over every suite, from the JUnit reports.
python3 - "$reports" <<'PY'
import pathlib, sys, xml.etree.ElementTree as ET
total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for report in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    root = ET.parse(report).getroot()
    for suite in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        for key in total:
            total[key] += int(suite.get(key, 0))
bad = total["failures"] + total["errors"]
print()
print(f"{total['tests'] - bad - total['skipped']} passed, {bad} failed, {total['skipped']} skipped")
PY

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED steps: %s\n' "${failed[*]}"
  exit 1
fi
