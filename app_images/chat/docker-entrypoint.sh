#!/bin/sh
# all: API (7861) and web UI (8501) in one container, as the chart runs them; api / webui: one.
set -eu
case "${1:-all}" in
  api) exec python -m chat_server.api ;;
  webui) exec python -m chat_server.webui.server ;;
  all)
    python -m chat_server.webui.server &
    exec python -m chat_server.api ;;
  *) exec "$@" ;;
esac
