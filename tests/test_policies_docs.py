"""docs/policies.md and the example CI workflow stay true to the pack."""

import re

import yaml

from tests.conftest import REPO, SHIPPED_STACKS
from tests.policy_helpers import POLICIES

DOC = (REPO / "docs" / "policies.md").read_text(encoding="utf-8")
WORKFLOW = yaml.safe_load((REPO / "docs" / "ci-policy-workflow.yml").read_text(encoding="utf-8"))


def test_doc_lists_every_policy_with_its_level():
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (mandatory|advisory) \|", DOC, re.MULTILINE))
    assert rows == {p.name: p.enforcement_level.value for p in POLICIES}


def test_doc_names_every_config_key():
    for policy in POLICIES:
        for key in policy.config_schema.properties if policy.config_schema else {}:
            assert f"`{key}`" in DOC, f"{policy.name}.{key} is not documented"


def test_workflow_previews_every_shipped_stack_with_its_policy_config():
    preview = WORKFLOW["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == list(SHIPPED_STACKS)
    step = next(s for s in preview["steps"] if str(s.get("uses", "")).startswith("pulumi/actions"))
    assert step["with"]["policyPacks"] == "policies"
    assert step["with"]["comment-on-pr"] is True
    for stack in SHIPPED_STACKS:
        config = step["with"]["policyPackConfigs"].replace("${{ matrix.stack }}", stack)
        assert (REPO / config).is_file(), config


def test_workflow_runs_the_offline_check_of_every_stack():
    commands = [s.get("run", "") for s in WORKFLOW["jobs"]["offline"]["steps"]]
    assert any("-m tools policy --all --format markdown" in c for c in commands)
    assert any("-m tools policy --all --format sarif" in c for c in commands)
