"""Tags on taggable Alibaba Cloud resources, and the pack's list of taggable types."""

import importlib

import pulumi_alicloud
import pytest

from tests.policy_helpers import GOOD, Case, PolicyCases
from tools.checks.policy_runner import load_policies

load_policies()
TAGS = importlib.import_module("chatchat_policies.tags")


CASES = [
    Case(
        "no-owner",
        "required-tags",
        GOOD.but(tags={"project": "chatchat", "stack": "prod"}),
        "lacks tag(s) owner",
        "cfg.resource_tags()",
    ),
    Case(
        "configured-keys",
        "required-tags",
        GOOD,
        "lacks tag(s) cost-center",
        "resource_tags",
        passing=GOOD.but(tags={"cost-center": "rag"}),
        config={"required-tags": {"requiredTags": ["cost-center"]}},
    ),
]


class TestTagsPolicies(PolicyCases):
    """Each case of CASES: its passing set passes, its broken set is caught."""


@pytest.mark.parametrize("type_token", TAGS.TAGGABLE_TYPES)
def test_every_listed_type_takes_tags_in_the_provider(type_token):
    _, module_path, class_name = type_token.split(":")
    module, _ = module_path.split("/")
    cls = getattr(getattr(pulumi_alicloud, module), class_name)
    assert "tags" in cls._internal_init.__code__.co_varnames, type_token
