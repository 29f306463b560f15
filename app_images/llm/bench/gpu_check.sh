#!/usr/bin/env bash
# GPU check of the llm image's serving path, in one run (< 8 minutes), one summary table:
# tokens/s and TTFT p50/p95 at concurrency 1, 8, 32 through our path (the launcher, which execs
# vLLM's own server with our settings as flags, API key on) against `vllm serve` started
# directly with vLLM's defaults. Target: ours >= 0.95x direct tokens/s at every level.
# Downloads nothing from a model hub: a tiny model is built here, or give local weights.
#
#   bash bench/gpu_check.sh                                   # tiny Qwen2, pinned vLLM
#   bash bench/gpu_check.sh --model-dir /llm-model/Qwen-7B-Chat --model qwen-7b-chat
#   bash bench/gpu_check.sh --cpu-smoke                       # no GPU: our CPU engine both sides
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
MODE=gpu
MODEL=qwen-7b-chat
MODEL_DIR=""
WORK="${GPU_CHECK_WORK:-$HERE/.gpu-check}"
KEY=gpu-check-key
PORT_OURS=18888
PORT_DIRECT=18000
CONCURRENCY=(1 8 32)
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) MODE=cpu ;;
    --model) MODEL="$2"; shift ;;
    --model-dir) MODEL_DIR="$2"; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (see the header of this file)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

if [ "$MODE" = gpu ]; then
  command -v nvidia-smi >/dev/null || { echo "gpu_check.sh: no nvidia-smi; try --cpu-smoke" >&2; exit 2; }
  PY="$WORK/venv/bin/python"
  if [ ! -x "$PY" ]; then python3 -m venv "$WORK/venv"; fi
  "$PY" -m pip install --quiet -r requirements-vllm.txt httpx==0.28.1
  ENGINE=vllm
else
  PY="$HERE/.venv/bin/python"
  ENGINE=transformers
  CONCURRENCY=(1 8)
fi

# The catalog name decides the directory the launcher looks for (Qwen-7B-Chat for qwen-7b-chat).
ROOT="$WORK/models"
ENTRY_DIR="$("$PY" -c "from pathlib import Path; from llm_server.catalog import resolve_model; print(resolve_model('$MODEL').path(Path('$ROOT')))")"
if [ -n "$MODEL_DIR" ]; then
  mkdir -p "$ROOT"
  ln -sfn "$(cd "$MODEL_DIR" && pwd)" "$ENTRY_DIR"
elif [ ! -f "$ENTRY_DIR/config.json" ]; then
  HIDDEN=512; LAYERS=8
  if [ "$MODE" = cpu ]; then HIDDEN=64; LAYERS=2; fi
  "$PY" -m llm_server.tiny_model "$ENTRY_DIR" --hidden "$HIDDEN" --layers "$LAYERS"
fi

wait_ready() {  # $1 port, $2 log file
  local deadline=$((SECONDS + 240))
  until "$PY" -c "import httpx,sys; r=httpx.get('http://127.0.0.1:$1/v1/models', headers={'Authorization': 'Bearer $KEY'}, timeout=5); sys.exit(r.status_code != 200)" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
      echo "gpu_check.sh: server on $1 did not become ready; its log:" >&2
      tail -n 40 "$2" >&2
      exit 1
    fi
    sleep 1
  done
}

measure() {  # $1 label, $2 port
  "$PY" bench/load_check.py --base-url "http://127.0.0.1:$2" --model "$MODEL" --api-key "$KEY" \
    --label "$1" --concurrency "${CONCURRENCY[@]}" | tee -a "$RESULTS"
}

export HF_HUB_OFFLINE=1
# Our path: the launcher, as in the pod (it execs `vllm serve` on a GPU).
LLM_MODEL="$MODEL" LLM_MODEL_ROOT="$ROOT" LLM_ENGINE="$ENGINE" LLM_API_KEY="$KEY" \
  LLM_HOST=127.0.0.1 LLM_PORT="$PORT_OURS" LLM_MAX_CONCURRENCY=64 LLM_MAX_QUEUE=256 \
  "$PY" -m llm_server.launcher >"$WORK/ours.log" 2>&1 &
SERVER_PID=$!
wait_ready "$PORT_OURS" "$WORK/ours.log"
measure ours "$PORT_OURS"
stop_server

# Direct: vLLM's server with its own defaults (on CPU: our server again, the plumbing check).
if [ "$MODE" = gpu ]; then
  VLLM_API_KEY="$KEY" "$PY" -m vllm.entrypoints.cli.main serve "$ENTRY_DIR" \
    --served-model-name "$MODEL" --host 127.0.0.1 --port "$PORT_DIRECT" --trust-remote-code \
    >"$WORK/direct.log" 2>&1 &
else
  LLM_MODEL="$MODEL" LLM_MODEL_ROOT="$ROOT" LLM_ENGINE="$ENGINE" LLM_API_KEY="$KEY" \
    LLM_HOST=127.0.0.1 LLM_PORT="$PORT_DIRECT" LLM_MAX_CONCURRENCY=64 LLM_MAX_QUEUE=256 \
    "$PY" -m llm_server.launcher >"$WORK/direct.log" 2>&1 &
fi
SERVER_PID=$!
wait_ready "$PORT_DIRECT" "$WORK/direct.log"
measure direct "$PORT_DIRECT"
stop_server

"$PY" - "$RESULTS" "$MODE" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["label"], r["concurrency"]): r for r in rows}
print(f"\nllm serving check ({sys.argv[2]}): ours = launcher path, direct = vllm serve defaults")
print("conc  ours tok/s  direct tok/s  ratio  ours ttft p50/p95 ms  direct ttft p50/p95 ms")
ok = True
for conc in sorted({c for _, c in by}):
    o, d = by[("ours", conc)], by[("direct", conc)]
    ratio = o["tokens_per_s"] / d["tokens_per_s"]
    ok &= ratio >= 0.95
    print(f"{conc:4d} {o['tokens_per_s']:11.1f} {d['tokens_per_s']:13.1f} {ratio:6.3f}"
          f"  {o['ttft_p50_ms']:9.1f}/{o['ttft_p95_ms']:<9.1f}  {d['ttft_p50_ms']:9.1f}/{d['ttft_p95_ms']:.1f}")
print("target ours >= 0.95x direct:", "met" if ok else "NOT met")
PY
