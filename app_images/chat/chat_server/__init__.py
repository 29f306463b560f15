"""Knowledge-base chat service compatible with Langchain-Chatchat 0.2's HTTP API."""
