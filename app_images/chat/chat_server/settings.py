"""Configuration from the chart's environment variables, parsed once at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
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
    # Padded tokens per embedding batch (texts sorted by tokens); unset: 4096 on CPU, 32768 on
    # a GPU (kb/embeddings.py DEFAULT_BATCH_TOKENS).
    embedding_batch_tokens: int | None = Field(default=None, ge=64)
    # auto: the GPU when torch sees one (fp16), else the CPU; cuda without a GPU fails start-up.
    embedding_device: Literal["auto", "cpu", "cuda"] = "auto"
    # torch's CPU threads; unset: the CPUs this container may use, its cgroup CPU limit
    # included (joblib.cpu_count), not the node's cores (kb/embeddings.py cpu_threads).
    embedding_threads: int | None = Field(default=None, ge=1)

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

    # Sign-in for people (README "Sign-in and permissions"): off while OIDC_ISSUER is empty.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr | None = None
    # The `aud` the API requires of access tokens; the client id when empty.
    oidc_audience: str = ""
    oidc_scopes: str = "openid profile email"
    oidc_groups_claim: str = "groups"
    oidc_roles_claim: str = "roles"
    oidc_name_claim: str = "name"
    oidc_algorithms: str = "RS256,ES256,PS256"
    oidc_jwks_cache_s: float = Field(default=300.0, gt=0)
    # Clock skew allowed when checking a token's exp/iat (seconds).
    oidc_leeway_s: float = Field(default=30.0, ge=0)
    # Where the web UI is reached (https://chat.example.com); the redirect URI is
    # <this>/auth/callback. Derived from the request when empty.
    webui_public_url: str = ""
    # JSON: a group or role claim value to a global role ("admin", "creator") or a list of them.
    auth_role_map: str = "{}"
    # Roles every signed-in user has (comma-separated); "creator" lets them create KBs.
    auth_default_roles: str = "creator"
    personal_token_max_days: int = Field(default=90, ge=1)

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
    # OCR (images, PDF pages without a text layer, pptx pictures; README "File types").
    parse_max_ocr_pages: int = Field(default=50, ge=1)
    parse_max_image_pixels: int = Field(default=50_000_000, ge=1)
    # Parsing runs in worker processes: killed PARSE_KILL_GRACE_S after the deadline, and
    # limited to PARSE_MAX_MEMORY_BYTES of address space (RLIMIT_AS) each.
    parse_workers: int = Field(default=2, ge=1)
    parse_max_memory_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=64 * 1024 * 1024)
    parse_kill_grace_s: float = Field(default=5.0, ge=0)
    # Bounds on one request: a body over its cap is refused (413) before it is buffered.
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_request_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_json_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1)
    max_upload_files: int = Field(default=32, ge=1)
    # File chat (upload_temp_docs): temporary knowledge bases held in memory.
    temp_docs_max: int = Field(default=64, ge=1)
    temp_docs_ttl_s: float = Field(default=3600.0, gt=0)
    # Where uploads are spooled while a request runs: local disk, never the KB volume.
    upload_spool_dir: Path | None = None
    chunk_size: int = 250
    chunk_overlap: int = 50
    top_k: int = 3
    score_threshold: float = 1.0
    # Retrieval (README "Retrieval"): vector (as 0.2), keyword (BM25) or hybrid (both, fused by
    # reciprocal rank fusion); each request may choose otherwise (`search_mode`, `rerank`).
    search_mode: Literal["vector", "keyword", "hybrid"] = "vector"
    search_candidates: int = Field(default=20, ge=1, le=1000)
    search_rrf_k: int = Field(default=60, ge=1)
    # An optional cross-encoder under MODEL_ROOT (Chatchat 0.2's setting names);
    # USE_RERANKER=true reranks every search unless a request says rerank=false.
    reranker_model: str = ""
    use_reranker: bool = False
    reranker_max_length: int = Field(default=512, ge=16)
    api_base_url: str = "http://127.0.0.1:7861"
    # Bulk imports (README "Bulk import"): the largest import_shard body the API takes (and the
    # worker sends), chunks embedded per batch, and where a worker finds the chat API.
    import_shard_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)
    import_batch_chunks: int = Field(default=256, ge=1)
    chat_api_url: str = "http://127.0.0.1:7861"
    # Tries of a store call while the database or the chat API is down (waits 1, 2, 4... s).
    import_retries: int = Field(default=6, ge=1)

    @property
    def oidc_api_audience(self) -> str:
        return self.oidc_audience or self.oidc_client_id

    @property
    def oidc_algorithm_list(self) -> list[str]:
        return [a.strip() for a in self.oidc_algorithms.split(",") if a.strip()]

    @model_validator(mode="after")
    def _sign_in_complete(self) -> Settings:
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("OIDC_ISSUER is set but OIDC_CLIENT_ID is not: sign-in needs both")
        if self.oidc_issuer and not self.oidc_issuer.startswith(("https://", "http://")):
            raise ValueError(f"OIDC_ISSUER={self.oidc_issuer!r} is not an http(s) URL")
        return self

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
    def reranker_model_path(self) -> Path | None:
        if not self.reranker_model:
            return None
        path = Path(self.reranker_model)
        return path if path.is_absolute() else self.model_root / self.reranker_model

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
