"""Configuration from the chart's environment variables, parsed once at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    llm_model: str = "qwen-7b-chat-aiacc"
    llm_host: str = "127.0.0.1"
    llm_port: int = 8888
    llm_api_key: str = "EMPTY"
    llm_timeout_s: float = 120.0
    llm_connect_timeout_s: float = 5.0

    embedding_model: str = "text2vec-bge-large-chinese"
    model_root: Path = Path("/llm-model")
    embedding_batch_size: int = Field(default=64, ge=1)
    # auto: the GPU when torch sees one (fp16), else the CPU; cuda without a GPU fails start-up.
    embedding_device: Literal["auto", "cpu", "cuda"] = "auto"

    default_vs_type: Literal["faiss", "adb", "pg"] = "faiss"
    kb_root: Path = Path("/kb")

    pg_host: str = ""
    pg_port: int = 5432
    pg_database: str = "postgres"
    pg_user: str = "postgres"
    pg_password: str = ""

    # The one credential of both ports; the service refuses to start without it.
    chat_api_key: SecretStr | None = None
    # Signs web UI session cookies; derived from the API key when unset, so replicas agree.
    webui_session_secret: SecretStr | None = None
    webui_session_ttl_s: int = Field(default=8 * 3600, ge=60)
    # Set where the web UI is served over HTTPS (an ingress with TLS), so the cookie is Secure.
    webui_cookie_secure: bool = False

    api_host: str = "0.0.0.0"
    api_port: int = Field(default=7861, ge=1, le=65535)
    webui_host: str = "0.0.0.0"
    webui_port: int = Field(default=8501, ge=1, le=65535)

    # Replicas of the chat Deployment (the stack sets it): faiss KBs need exactly one writer.
    chat_replicas: int = Field(default=1, ge=1)
    faiss_lease_ttl_s: float = Field(default=30.0, gt=0)
    pg_timeout_s: float = Field(default=3.0, gt=0)
    pg_retry_after_s: int = Field(default=5, ge=1)
    # Bounds on parsing one document (README "Failure behaviour").
    parse_max_unzipped_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    parse_max_zip_members: int = Field(default=2_000, ge=1)
    parse_max_elements: int = Field(default=1_000_000, ge=1)
    parse_max_pdf_pages: int = Field(default=2_000, ge=1)
    parse_max_text_chars: int = Field(default=20_000_000, ge=1)
    parse_deadline_s: float = Field(default=60.0, gt=0)
    # Parsing runs in worker processes: killed PARSE_KILL_GRACE_S after the deadline, and
    # limited to PARSE_MAX_MEMORY_BYTES of address space (RLIMIT_AS) each.
    parse_workers: int = Field(default=2, ge=1)
    parse_max_memory_bytes: int = Field(default=1024 * 1024 * 1024, ge=64 * 1024 * 1024)
    parse_kill_grace_s: float = Field(default=5.0, ge=0)
    # Bounds on one request: a body over its cap is refused (413) before it is buffered.
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_request_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_json_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1)
    max_upload_files: int = Field(default=32, ge=1)
    # Where uploads are spooled while a request runs: local disk, never the KB volume.
    upload_spool_dir: Path | None = None
    chunk_size: int = 250
    chunk_overlap: int = 50
    top_k: int = 3
    score_threshold: float = 1.0
    api_base_url: str = "http://127.0.0.1:7861"

    @property
    def llm_base_url(self) -> str:
        host = self.llm_host
        if host.startswith(("http://", "https://")):
            return host.rstrip("/") + "/v1"
        return f"http://{host}:{self.llm_port}/v1"

    @property
    def embedding_model_path(self) -> Path:
        path = Path(self.embedding_model)
        return path if path.is_absolute() else self.model_root / self.embedding_model

    @property
    def pg_conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.pg_host,
            port=self.pg_port,
            dbname=self.pg_database,
            user=self.pg_user,
            password=self.pg_password,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
