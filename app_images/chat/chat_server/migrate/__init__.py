"""`python -m chat_server.migrate`: import a Langchain-Chatchat 0.2 knowledge-base volume into
this service through its own HTTP API (chat README, "Migrating from Chatchat 0.2")."""
