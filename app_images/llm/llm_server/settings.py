"""Configuration from the chart's environment variables, parsed once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineChoice = Literal["auto", "transformers", "vllm", "deepgpu"]
# vLLM's --dtype choices (vllm 0.33.0, vllm/config/model.py ModelDType); fp16 suits V100 and A10.
DType = Literal["auto", "half", "float16", "bfloat16", "float", "float32"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class Settings(BaseSettings):
    """Every knob of the llm server; names match the chart (``LLM_MODEL``, ``LOAD_8BIT``)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    llm_model: str = Field("qwen-7b-chat-aiacc", description="catalog name of the model")
    load_8bit: bool = Field(True, description="int8 weights (forced false for open-source qwen)")
    llm_model_root: Path = Field(Path("/llm-model"), description="where model directories live")
    llm_engine: EngineChoice = Field("auto", description="engine override; auto picks per model")
    llm_api_key: SecretStr | None = Field(None, description="Bearer key required on /v1 calls")
    llm_host: str = "0.0.0.0"
    llm_port: int = Field(8888, ge=1, le=65535)
    llm_max_concurrency: int = Field(8, ge=1, description="generations running at once")
    llm_max_queue: int = Field(32, ge=0, description="requests waiting before 429")
    llm_default_max_tokens: int = Field(512, ge=1, description="max_tokens when none is given")
    llm_shutdown_grace_s: float = Field(30.0, ge=0, description="time streams get to finish")
    llm_log_level: LogLevel = "info"
    llm_retry_after_s: int = Field(2, ge=1, description="Retry-After on 429 and 503 answers")
    # vLLM's own server only (open-source models on a GPU):
    llm_dtype: DType = Field("float16", description="vLLM --dtype")
    llm_gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vLLM --gpu-memory-utilization: share of the card it takes"
    )
    llm_vllm_extra_args: str = Field(
        "", description="more `vllm serve` flags, shell-quoted (e.g. tool-call parser)"
    )

    @field_validator("llm_log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("llm_api_key", mode="before")
    @classmethod
    def _empty_key_means_none(cls, value: object) -> object:
        # A Secret mounted as an empty env var must not lock everyone out with key "".
        return None if value == "" else value


def load_settings() -> Settings:
    return Settings()
