"""A document-parse worker process: `python -m chat_server.kb.parse_worker MEMORY_BYTES`.

It limits its own address space (RLIMIT_AS) to MEMORY_BYTES, then reads jobs (file name,
path, ParseLimits fields) from stdin and answers each on its original stdout, both as
length-prefixed pickles (see `chat_server.kb.parse_pool`, which starts, times and kills it).
It exits at the end of stdin (its parent is gone) and with MEMORY_EXIT after a MemoryError.
"""

from __future__ import annotations

import os
import pickle
import resource
import struct
import sys
from pathlib import Path
from typing import IO, Any

HEADER = struct.Struct("!Q")
MEMORY_EXIT = 86  # the exit status of a worker that ran out of its address space
# Parsing is background work, like ingestion's embedding (chat_server.kb.embeddings
# BACKGROUND_NICE, the same value): the kernel gives the cores to searches and chats first.
WORKER_NICE = 19


def write_frame(out: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(data)) + data)
    out.flush()


def read_frame(inp: IO[bytes]) -> Any:
    header = inp.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    return pickle.loads(inp.read(size))  # noqa: S301 - our parent's frames only


def main(memory_bytes: int) -> int:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, WORKER_NICE)
    except OSError as exc:
        print(f"parse worker keeps normal priority: {exc}", file=sys.stderr)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what a library prints goes to stderr, never into the answers
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    # The parser libraries are imported before the limit, so a document is charged only
    # with what parsing it allocates. The OCR engine (rapidocr, onnxruntime, its models) is
    # not: it is loaded on the first image, under the limit (chat_server.kb.ocr).
    import bs4  # noqa: F401
    import docx  # noqa: F401
    import ebooklib.epub  # noqa: F401
    import extract_msg  # noqa: F401
    import lxml.etree  # noqa: F401
    import openpyxl  # noqa: F401
    import PIL.Image  # noqa: F401
    import pptx  # noqa: F401
    import pypdf  # noqa: F401
    import pypdfium2  # noqa: F401
    import srt  # noqa: F401
    import striprtf.striprtf  # noqa: F401
    import xlrd  # noqa: F401

    from chat_server.kb.loaders import DocumentError, ParseLimits, load_text

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    write_frame(out, ("ready", os.getpid()))
    while True:
        job = read_frame(inp)
        if job is None:
            return 0
        name, path, limits = job
        try:
            text = load_text(name, Path(path), ParseLimits(**limits))
        except DocumentError as exc:
            write_frame(out, ("error", exc.status, exc.message))
        except MemoryError:
            # Nothing that allocates: the exit status is the answer, and the pool starts a
            # fresh process for the next document.
            os._exit(MEMORY_EXIT)
        else:
            try:
                write_frame(out, ("ok", text))
            except MemoryError:
                os._exit(MEMORY_EXIT)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
