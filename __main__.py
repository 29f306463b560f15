"""The chatchat stack: load and validate the stack config, build the components, export."""

import pulumi

from components.config import load_config

cfg = load_config()  # fails here, naming every bad key, before any resource is declared

pulumi.export("release", cfg.release)
pulumi.export("llmModel", cfg.llm.model)
