"""Is the model actually in the model store? Checked before anyone switches `llm.model`.

Two stores, one check:
- OSS through its S3-compatible API (boto3 with endpoint `https://oss-<region>.aliyuncs.com`,
  virtual-hosted addressing as OSS requires). Credentials from the environment:
  `ALIBABA_CLOUD_ACCESS_KEY_ID`/`ALIBABA_CLOUD_ACCESS_KEY_SECRET`, else
  `OSS_ACCESS_KEY_ID`/`OSS_ACCESS_KEY_SECRET`, else the provider's `ALICLOUD_ACCESS_KEY`/
  `ALICLOUD_SECRET_KEY`, else boto3's own chain (`AWS_*`, profiles).
- NAS through a directory where the file system is mounted (`--nas-path`), the same tree the pods
  see at `/llm-model`.

A model directory (`<prefix>/<directory>/` on OSS, `<nas-path>/<directory>/` on NAS) is usable
when it holds a Hugging Face layout (`config.json` plus weight files) or, for a DeepGPU-LLM
(`*-aiacc`) model, the converted layout that `llm_server.convert` finishes with its completion
marker. An aiacc model that is not converted yet but whose Hugging Face source is present is fine:
the conversion Job converts it on first start.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from components.catalog import MODELS, Model

# The llm image's converter writes this file last (app_images/llm/llm_server/convert.py); the
# Pulumi code may not import the image's package, so the name is repeated here.
CONVERTED_MARKER = ".aiacc-conversion-complete.json"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


class ModelStoreError(Exception):
    """The store cannot be read at all (bucket missing, access denied, no credentials)."""


class Store(Protocol):
    def files(self, directory: str) -> list[str] | None:
        """Names of the files directly in `directory`, or None when it does not exist."""

    def where(self, directory: str) -> str:
        """The directory as a user would type it (`s3://bucket/prefix/dir/`, `/mnt/nas/dir`)."""


@dataclass
class StoreCheck:
    model: str
    ok: bool
    location: str
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    conversion_needed: bool = False


def _weights(files: list[str]) -> list[str]:
    return [f for f in files if any(fnmatch.fnmatch(f, p) for p in WEIGHT_PATTERNS)]


def hugging_face_problem(files: list[str] | None, where: str) -> str | None:
    """Why `files` is not a loadable Hugging Face model directory, or None when it is."""
    if files is None:
        return f"model directory {where} does not exist"
    if "config.json" not in files:
        return f"{where} has no config.json (found: {_sample(files)})"
    if not _weights(files):
        return (
            f"{where} has no weight files ({', '.join(WEIGHT_PATTERNS)}); found: {_sample(files)}"
        )
    return None


def _sample(files: list[str]) -> str:
    if not files:
        return "nothing"
    shown = ", ".join(sorted(files)[:6])
    return shown + (f" and {len(files) - 6} more" if len(files) > 6 else "")


def check_model(model: Model, store: Store) -> StoreCheck:
    """Check that `model` can be served from `store` (converted on first start if need be)."""
    where = store.where(model.directory)
    files = store.files(model.directory)
    result = StoreCheck(model=model.name, ok=False, location=where)
    if not model.is_aiacc:
        problem = hugging_face_problem(files, where)
        result.ok = problem is None
        result.problems += [problem] if problem else []
        if result.ok:
            result.notes.append(
                f"{where}: config.json and {len(_weights(files or []))} weight file(s)"
            )
        return result

    if files is not None and CONVERTED_MARKER in files:
        result.ok = True
        result.notes.append(f"{where}: DeepGPU-LLM converted weights ({CONVERTED_MARKER})")
        return result
    source = MODELS.get(model.source_model or "")
    if source is None:
        result.problems.append(
            f"{where}: no converted weights and the catalog names no source model to convert from"
        )
        return result
    source_where = store.where(source.directory)
    source_problem = hugging_face_problem(store.files(source.directory), source_where)
    state = "does not exist" if files is None else f"is not converted (no {CONVERTED_MARKER})"
    if source_problem:
        result.problems.append(
            f"{where} {state}, and its Hugging Face source cannot be converted: {source_problem}"
        )
        return result
    result.ok = True
    result.conversion_needed = True
    result.notes.append(
        f"{where} {state}; the Hugging Face source {source_where} is present: "
        "the conversion Job will run before the llm pod starts"
    )
    return result


# --- OSS --------------------------------------------------------------------------------------


def oss_endpoint(region: str) -> str:
    return f"https://oss-{region}.aliyuncs.com"


def _credentials() -> dict[str, str]:
    for key_id, secret in (
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"),
        ("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY"),
    ):  # the provider's
        if os.environ.get(key_id) and os.environ.get(secret):
            return {
                "aws_access_key_id": os.environ[key_id],
                "aws_secret_access_key": os.environ[secret],
            }
    return {}  # boto3's own chain


class OssStore:
    """An OSS bucket read through the S3-compatible API."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        region: str,
        endpoint: str | None = None,
        addressing_style: str = "virtual",
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint = endpoint or oss_endpoint(region)
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=region,
            **_credentials(),
            config=Config(
                s3={"addressing_style": addressing_style},
                signature_version="s3v4",
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )
        self._bucket_checked = False

    def _key(self, directory: str) -> str:
        return f"{self.prefix}/{directory}/" if self.prefix else f"{directory}/"

    def where(self, directory: str) -> str:
        return f"s3://{self.bucket}/{self._key(directory)}"

    def _check_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise ModelStoreError(
                "no credentials for OSS: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET (or OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET), "
                "or pass --no-store-check"
            ) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise ModelStoreError(
                    f"bucket {self.bucket!r} does not exist at "
                    f"{self.endpoint} (NoSuchBucket); check --bucket or the "
                    "stack's model bucket output"
                ) from None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise ModelStoreError(
                    f"access denied to bucket {self.bucket!r} at "
                    f"{self.endpoint} (403): the credentials may not read it, "
                    "or the bucket belongs to another account"
                ) from None
            raise ModelStoreError(
                f"cannot read bucket {self.bucket!r} at {self.endpoint}: {exc}"
            ) from None
        except BotoCoreError as exc:
            raise ModelStoreError(f"cannot reach {self.endpoint}: {exc}") from None
        self._bucket_checked = True

    def files(self, directory: str) -> list[str] | None:
        from botocore.exceptions import ClientError

        self._check_bucket()
        key = self._key(directory)
        names: list[str] = []
        subdirs = False
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=key, Delimiter="/"
            )
            for page in pages:
                names += [o["Key"][len(key) :] for o in page.get("Contents", [])]
                subdirs = subdirs or bool(page.get("CommonPrefixes"))
        except ClientError as exc:
            raise ModelStoreError(f"cannot list {self.where(directory)}: {exc}") from None
        names = [n for n in names if n]  # the "directory object" some upload tools create
        return names if names or subdirs else None


# --- NAS --------------------------------------------------------------------------------------


class NasStore:
    """A NAS file system mounted at `root` (the directory the pods see as /llm-model)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ModelStoreError(
                f"--nas-path {self.root} is not a directory: mount the NAS "
                "file system there first (mount -t nfs <mount target>:/ ...)"
            )

    def where(self, directory: str) -> str:
        return str(self.root / directory)

    def files(self, directory: str) -> list[str] | None:
        path = self.root / directory
        if not path.is_dir():
            return None
        return [p.name for p in path.iterdir() if p.is_file()]


def bucket_from_outputs(outputs: dict) -> str | None:
    """The model bucket among stack outputs: the first string output whose name mentions a bucket
    (`modelBucket`, `bucketName`, ...), also inside a `modelStore` map."""
    for name, value in outputs.items():
        if isinstance(value, dict):
            found = bucket_from_outputs(value)
            if found:
                return found
        elif isinstance(value, str) and "bucket" in name.lower():
            return value
    return None
