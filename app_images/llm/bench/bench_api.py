"""Throughput and time to first token: through our HTTP API vs the engine called in-process.

    .venv/bin/python bench/bench_api.py                      # tiny model, transformers, CPU

Both sides run the same engine class on the same model with the same greedy, fixed-length
generations (ignore_eos), one after the other so they never share the CPU/GPU. The API side
runs the real launcher in a child process (as in the pod) and streams over HTTP with httpx.
The server's concurrency limit is raised above the highest level so the ratio measures API
overhead, not the queueing policy. Direct and API runs alternate, round after round, and the
medians are reported, because other processes may share the machine. Results: printed table
and a JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

APP_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(APP_DIR))

from llm_server.catalog import resolve_model  # noqa: E402
from llm_server.engines.base import SamplingOptions  # noqa: E402
from llm_server.launcher import build_engine, plan_launch  # noqa: E402
from llm_server.settings import Settings  # noqa: E402
from llm_server.tiny_model import build_tiny_model  # noqa: E402

PROMPT = "Kubernetes schedules pods on nodes with enough memory and GPUs. Tell me more."


def summarise(label: str, concurrency: int, wall: float, results: list[tuple[float, int]]):
    tokens = sum(n for _, n in results)
    ttfts = sorted(t for t, _ in results)
    return {
        "mode": label,
        "concurrency": concurrency,
        "requests": len(results),
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 1),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1),
        "ttft_max_ms": round(ttfts[-1] * 1000, 1),
    }


async def run_level(one_request, concurrency: int, requests: int) -> tuple[float, list]:
    gate = asyncio.Semaphore(concurrency)

    async def guarded():
        async with gate:
            return await one_request()

    started = time.perf_counter()
    results = await asyncio.gather(*(guarded() for _ in range(requests)))
    return time.perf_counter() - started, results


async def direct_request(engine, prompt: str, max_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    ttft = None
    tokens = 0
    options = SamplingOptions(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    async for chunk in engine.generate(prompt, options):
        if ttft is None and chunk.tokens:
            ttft = time.perf_counter() - started
        tokens += chunk.tokens
    return ttft or 0.0, tokens


async def api_request(http: httpx.AsyncClient, model: str, max_tokens: int) -> tuple[float, int]:
    body = {
        "model": model,
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft = None
    tokens = 0
    async with http.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if ttft is None and event["choices"] and event["choices"][0]["text"]:
                ttft = time.perf_counter() - started
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    return ttft or 0.0, tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_api(args, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "LLM_MODEL": args.model,
        "LLM_MODEL_ROOT": str(args.model_root),
        "LLM_ENGINE": args.engine,
        "LLM_PORT": str(port),
        "LLM_HOST": "127.0.0.1",
        "LLM_MAX_CONCURRENCY": str(max(args.concurrency) * 2),
        "LLM_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_server.launcher"],
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"launcher exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("API server did not become ready")


async def bench(args) -> tuple[list[dict], list[dict], list[dict]]:
    """Alternate direct and API runs per level, several rounds, so noise hits both alike."""
    settings = Settings(
        llm_model=args.model, llm_model_root=args.model_root, llm_engine=args.engine
    )
    engine = build_engine(plan_launch(settings), settings)
    await asyncio.to_thread(engine.load)
    port = free_port()
    proc = start_api(args, port)
    direct_rows, api_rows, ratio_rows = [], [], []
    try:
        limits = httpx.Limits(max_connections=max(args.concurrency) + 4)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=600, limits=limits
        ) as http:
            # /v1/completions sends the prompt as is, so both sides generate from the same text
            await direct_request(engine, PROMPT, args.max_tokens)  # warm-up
            await api_request(http, args.model, args.max_tokens)
            for c in args.concurrency:
                n = args.requests or max(2, c)
                rounds = []
                for _ in range(args.rounds):
                    wall, res = await run_level(
                        lambda: direct_request(engine, PROMPT, args.max_tokens), c, n
                    )
                    direct = summarise("direct", c, wall, res)
                    wall, res = await run_level(
                        lambda: api_request(http, args.model, args.max_tokens), c, n
                    )
                    api = summarise("api", c, wall, res)
                    rounds.append((direct, api))
                direct_rows += [d for d, _ in rounds]
                api_rows += [a for _, a in rounds]
                per_round = [a["tokens_per_s"] / d["tokens_per_s"] for d, a in rounds]
                ratio_rows.append(
                    {
                        "concurrency": c,
                        "direct_tokens_per_s_median": statistics.median(
                            d["tokens_per_s"] for d, _ in rounds
                        ),
                        "api_tokens_per_s_median": statistics.median(
                            a["tokens_per_s"] for _, a in rounds
                        ),
                        "api_over_direct_median": round(statistics.median(per_round), 3),
                        "api_over_direct_rounds": [round(r, 3) for r in per_round],
                        "direct_ttft_p50_ms_median": statistics.median(
                            d["ttft_p50_ms"] for d, _ in rounds
                        ),
                        "api_ttft_p50_ms_median": statistics.median(
                            a["ttft_p50_ms"] for _, a in rounds
                        ),
                    }
                )
    finally:
        proc.terminate()
        proc.wait(60)
        await engine.close()
    return direct_rows, api_rows, ratio_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-root", type=Path, help="default: build a tiny model in a tmp dir")
    parser.add_argument("--model", default="qwen-7b-chat", help="catalog name to serve")
    parser.add_argument("--engine", default="transformers", choices=["transformers"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, help="requests per round (default: one wave)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=11, help="alternating rounds per level")
    parser.add_argument("--hidden", type=int, default=512, help="tiny model width")
    parser.add_argument("--layers", type=int, default=8, help="tiny model depth")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="CPU threads per side; more than the free cores makes OpenMP "
        "spin-waits of the two processes fight and swamps the measurement",
    )
    parser.add_argument("--out", type=Path, default=APP_DIR / ".bench-out" / "bench_api.json")
    args = parser.parse_args()
    if args.engine == "transformers":
        import torch

        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)  # inherited by the server
        torch.set_num_threads(args.torch_threads)

    with tempfile.TemporaryDirectory() as tmp:
        if args.model_root is None:
            args.model_root = Path(tmp)
            target = resolve_model(args.model).path(args.model_root)
            build_tiny_model(target, hidden=args.hidden, layers=args.layers)
        direct, api, ratios = asyncio.run(bench(args))

    print(
        f"{'conc':>4} {'direct tok/s':>12} {'api tok/s':>10} {'ratio':>6} "
        f"{'direct ttft p50':>15} {'api ttft p50':>12}   (medians of {args.rounds} rounds)"
    )
    for r in ratios:
        print(
            f"{r['concurrency']:>4} {r['direct_tokens_per_s_median']:>12} "
            f"{r['api_tokens_per_s_median']:>10} {r['api_over_direct_median']:>6} "
            f"{r['direct_ttft_p50_ms_median']:>13}ms {r['api_ttft_p50_ms_median']:>10}ms"
        )
    report = {
        "engine": args.engine,
        "model": args.model,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "torch_threads": args.torch_threads,
        "tiny_model": {"hidden": args.hidden, "layers": args.layers}
        if str(args.model_root).startswith(tempfile.gettempdir())
        else None,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "direct": direct,
        "api": api,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
