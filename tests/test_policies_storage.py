"""Storage and access policies: private encrypted OSS, scoped RAM, NAS rules not open."""

import pytest

from tests.policy_helpers import GOOD, Case, assert_caught, assert_passes

CASES = [
    Case("public-bucket", "oss-bucket-private", GOOD.but(bucket_acl="public-read"),
         "oss.Bucket models", 'acl="private"'),
    Case("public-bucket-acl-resource", "oss-bucket-private",
         GOOD.but(separate_acl="public-read-write"), "oss.BucketAcl models-acl", 'acl="private"',
         passing=GOOD.but(separate_acl="private")),
    Case("bucket-unencrypted", "oss-bucket-encrypted", GOOD.but(bucket_sse=False),
         "oss.Bucket models", "BucketServerSideEncryption",
         passing=GOOD.but(bucket_sse=False, separate_sse=True)),
    Case("ram-star-resource", "ram-oss-scoped", GOOD.but(ram_resources=("*",)),
         "ram.Policy models-read", "acs:oss:*:*:<bucket>"),
    Case("ram-every-bucket", "ram-oss-scoped", GOOD.but(ram_resources=("acs:oss:*:*:*",)),
         "ram.Policy models-read", "name the bucket"),
    Case("ram-system-oss-policy", "ram-oss-scoped",
         GOOD.but(ram_system_attachment="AliyunOSSFullAccess"),
         "ram.UserPolicyAttachment models-system", "custom ram.Policy",
         passing=GOOD.but(ram_system_attachment="AliyunCSReadOnlyAccess")),
    Case("nas-open", "nas-access-not-open", GOOD.but(nas_cidr="0.0.0.0/0"),
         "nas.AccessRule kb-vpc", "VPC CIDR"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_passing_resource_set_is_not_reported(case):
    assert_passes(case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_violation_names_resource_and_fix(case):
    assert_caught(case)
