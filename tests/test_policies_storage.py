"""Storage and access policies: private encrypted OSS, scoped RAM, NAS rules not open."""

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from tests.policy_helpers import GOOD, POLICIES, Case, PolicyCases, of, render
from tools.checks.policy_runner import check_rendering

CASES = [
    Case(
        "public-bucket",
        "oss-bucket-private",
        GOOD.but(bucket_acl="public-read"),
        "oss.Bucket models",
        'acl="private"',
    ),
    Case(
        "public-bucket-acl-resource",
        "oss-bucket-private",
        GOOD.but(separate_acl="public-read-write"),
        "oss.BucketAcl models-acl",
        'acl="private"',
        passing=GOOD.but(separate_acl="private"),
    ),
    Case(
        "bucket-unencrypted",
        "oss-bucket-encrypted",
        GOOD.but(bucket_sse=False),
        "oss.Bucket models",
        "BucketServerSideEncryption",
        passing=GOOD.but(bucket_sse=False, separate_sse=True),
    ),
    Case(
        "ram-star-resource",
        "ram-oss-scoped",
        GOOD.but(ram_resources=("*",)),
        "ram.Policy models-read",
        "acs:oss:*:*:<bucket>",
    ),
    Case(
        "ram-every-bucket",
        "ram-oss-scoped",
        GOOD.but(ram_resources=("acs:oss:*:*:*",)),
        "ram.Policy models-read",
        "name the bucket",
    ),
    Case(
        "ram-system-oss-policy",
        "ram-oss-scoped",
        GOOD.but(ram_system_attachment="AliyunOSSFullAccess"),
        "ram.UserPolicyAttachment models-system",
        "custom ram.Policy",
        passing=GOOD.but(ram_system_attachment="AliyunCSReadOnlyAccess"),
    ),
    Case(
        "oss-volume-access-key",
        "oss-volume-rrsa",
        GOOD.but(oss_volume_attributes=(("akId", "LTAI0000"), ("akSecret", "s3cret"))),
        "PersistentVolume models-pv",
        "authType: rrsa",
    ),
    Case(
        "oss-volume-secret-ref",
        "oss-volume-rrsa",
        GOOD.but(oss_volume_attributes=(), oss_volume_secret=True),
        "long-lived AccessKey",
        "roleName",
    ),
    Case(
        "oss-volume-without-role",
        "oss-volume-rrsa",
        GOOD.but(oss_volume_attributes=(("authType", "rrsa"),)),
        "without authType rrsa and a roleName",
        "authType: rrsa",
    ),
    Case(
        "fluid-cache-writable-access-mode",
        "fluid-model-cache-read-only",
        GOOD.but(fluid_access_modes=("ReadWriteMany",)),
        "Dataset chatchat/chatchat-model-cache",
        "accessModes [ReadOnlyMany]",
    ),
    Case(
        "fluid-cache-writable-mount",
        "fluid-model-cache-read-only",
        GOOD.but(fluid_mount_read_only=False),
        "mount oss://chatchat-models/llm-model/ is not readOnly",
        "readOnly: true",
    ),
    Case(
        "fluid-cache-inline-access-key",
        "fluid-model-cache-read-only",
        GOOD.but(fluid_inline_key=True),
        "fs.oss.accesskeyid, fs.oss.accesskeysecret",
        "secretKeyRef",
    ),
    Case(
        "fluid-cache-pvc-mounted-writable",
        "fluid-model-cache-read-only",
        GOOD.but(llm_cache_mount_read_only=False),
        "Deployment chatchat/llm-chatchat mounts chatchat-model-cache",
        "every volumeMount readOnly: true",
    ),
    Case(
        "rrsa-role-any-service-account",
        "ram-role-oidc-scoped",
        GOOD.but(trust_condition=(("oidc:aud", "sts.aliyuncs.com"),)),
        "ram.Role models-reader-role",
        "system:serviceaccount:<ns>:<name>",
    ),
    Case(
        "rrsa-role-wildcard-subject",
        "ram-role-oidc-scoped",
        GOOD.but(
            trust_condition=(
                ("oidc:aud", "sts.aliyuncs.com"),
                ("oidc:sub", "system:serviceaccount:ack-csi-fuse:*"),
            )
        ),
        "any service account of the cluster",
        "StringEquals",
    ),
    Case(
        "nas-open",
        "nas-access-not-open",
        GOOD.but(nas_cidr="0.0.0.0/0"),
        "nas.AccessRule kb-vpc",
        "VPC CIDR",
    ),
]


class TestStoragePolicies(PolicyCases):
    """Each case of CASES: its passing set passes, its broken set is caught."""


def test_separate_encryption_is_matched_while_the_bucket_name_is_unknown():
    """During a real preview a new bucket's name is computed: the policy matches the
    BucketServerSideEncryption to its bucket through the property dependency instead."""
    rendering = render(GOOD.but(bucket_sse=False, separate_sse=True))
    for r in rendering.resources:
        if r.type in (
            "alicloud:oss/bucket:Bucket",
            "alicloud:oss/bucketServerSideEncryption:BucketServerSideEncryption",
        ):
            r.inputs["bucket"] = UNKNOWN_STRING_VALUE
            r.outputs["bucket"] = UNKNOWN_STRING_VALUE
    violations = check_rendering(rendering, POLICIES)
    assert of("oss-bucket-encrypted", violations) == []
    assert not [v for v in violations if "during preview" in v.message]
