"""Streamed chat load against one OpenAI-compatible server: tokens/s and TTFT p50/p95.

    python bench/load_check.py --base-url http://127.0.0.1:8888 --model qwen-7b-chat \\
        --api-key KEY --label ours --concurrency 1 8 32

Greedy, fixed-length generations (``ignore_eos``, which our server and vLLM both take) so
both sides do the same work. Prints one JSON line per concurrency level. Standard library
plus httpx only, so it runs in the vLLM venv and in ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

PROMPT = "Kubernetes schedules pods on nodes with enough memory and GPUs. Tell me more."


async def one(http: httpx.AsyncClient, model: str, max_tokens: int) -> tuple[float, int]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.monotonic()
    ttft = None
    tokens = 0
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if ttft is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                ttft = time.monotonic() - started
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return (ttft if ttft is not None else time.monotonic() - started), tokens


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def level(args: argparse.Namespace, concurrency: int) -> dict[str, object]:
    requests = max(args.min_requests, concurrency * args.waves)
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(
        base_url=args.base_url, headers=headers, timeout=300, limits=limits
    ) as http:

        async def guarded() -> tuple[float, int]:
            async with gate:
                return await one(http, args.model, args.max_tokens)

        started = time.monotonic()
        results = await asyncio.gather(*(guarded() for _ in range(requests)))
        wall = time.monotonic() - started
    ttfts = [t for t, _ in results]
    return {
        "label": args.label,
        "concurrency": concurrency,
        "requests": requests,
        "tokens_per_s": round(sum(n for _, n in results) / wall, 1),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1),
        "ttft_p95_ms": round(percentile(ttfts, 0.95) * 1000, 1),
    }


async def main_async(args: argparse.Namespace) -> None:
    await level(args, 1)  # warm-up (CUDA graphs, caches), not reported
    for concurrency in args.concurrency:
        print(json.dumps(await level(args, concurrency)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--label", required=True)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--waves", type=int, default=4, help="requests = concurrency x waves")
    parser.add_argument("--min-requests", type=int, default=16)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
