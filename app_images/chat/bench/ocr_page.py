"""OCR cost of one page in a real parse worker: time, and the worker's memory after it.

    cd app_images/chat && PYTHONPATH=. .venv/bin/python bench/ocr_page.py [--pages 3]

Builds an A4 page at 150 dpi (1240x1754) of 30 lines of DejaVu Sans text with Pillow, saves it
as a PNG and as an image-only PDF (no text layer), and parses each through `ParsePool` (one
worker, default limits): the first parse includes loading the OCR models, the next ones do
not. Prints seconds per parse and the worker's VmRSS / VmHWM (peak resident) / VmPeak
(peak address space, what PARSE_MAX_MEMORY_BYTES bounds) from /proc after each.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from chat_server.kb.parse_pool import ParsePool

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def page_image() -> Image.Image:
    image = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 28)
    for i in range(30):
        draw.text(
            (90, 90 + 52 * i),
            f"Line {i + 1}: the quarterly report of the river survey",
            font=font,
            fill="black",
        )
    return image


def memory(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {k: int(v) // 1024 for k, v in re.findall(r"^(Vm\w+):\s+(\d+) kB", status, re.M)}
    return (
        f"VmRSS {fields['VmRSS']} MiB, VmHWM {fields['VmHWM']} MiB, VmPeak {fields['VmPeak']} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3, help="parses of each file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        png, pdf = Path(tmp, "page.png"), Path(tmp, "page.pdf")
        page_image().save(png)
        page_image().save(pdf, "PDF", resolution=150)
        pool = ParsePool(workers=1)
        try:
            for name, path in (("page.png", png), ("page.pdf", pdf)):
                for n in range(args.pages):
                    started = time.perf_counter()
                    text = pool.parse(name, path)
                    seconds = time.perf_counter() - started
                    worker = pool._idle[0].proc.pid  # noqa: SLF001 - a measurement, not API
                    lines = text.count("\n") + 1
                    took = f"{seconds:.2f} s, {lines} lines"
                    print(f"{name} parse {n + 1}: {took}; worker {memory(worker)}")
        finally:
            pool.close()


if __name__ == "__main__":
    main()
