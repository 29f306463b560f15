"""HTTP API on 7861, compatible with Langchain-Chatchat 0.2's paths, fields and envelopes."""

from chat_server.api.app import DOCS_PATHS, create_app, main

__all__ = ["DOCS_PATHS", "create_app", "main"]
