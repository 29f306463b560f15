"""Sentence-transformers embeddings from a local model directory, batched and counted."""

from __future__ import annotations

import copy
import ctypes
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from chat_server.kb.splitter import TokenWindow

log = logging.getLogger(__name__)


class EmbeddingModelMissing(RuntimeError):
    pass


class EmbeddingDeviceUnavailable(RuntimeError):
    """EMBEDDING_DEVICE=cuda on a pod or host where torch sees no CUDA device."""


DeviceSetting = Literal["auto", "cpu", "cuda"]


def resolve_device(setting: str, cuda_available: bool) -> str:
    """The torch device for EMBEDDING_DEVICE: `auto` takes cuda when torch sees a GPU, else cpu;
    an explicit `cuda` without one is refused (a GPU pod whose card is missing must not embed
    on the CPU unnoticed)."""
    if setting not in ("auto", "cpu", "cuda"):
        raise ValueError(f"EMBEDDING_DEVICE must be auto, cpu or cuda, not {setting!r}")
    if setting == "auto":
        return "cuda" if cuda_available else "cpu"
    if setting == "cuda" and not cuda_available:
        raise EmbeddingDeviceUnavailable(
            "EMBEDDING_DEVICE=cuda but torch sees no CUDA device (torch.cuda.is_available() is "
            "False): give the pod an nvidia.com/gpu and run the CUDA image variant, or set "
            "EMBEDDING_DEVICE=auto or cpu"
        )
    return setting


# Niceness of the thread that embeds ingestion batches (and of the torch threads it starts):
# the kernel then gives the cores to a query's encode first, whatever batch is running.
BACKGROUND_NICE = 19


# Padded tokens per batch (a batch's size times its longest text, in the model's tokens) when
# EMBEDDING_BATCH_TOKENS is unset: best of those tried on CPU (README "Ingestion at scale",
# batching); a GPU takes bigger batches.
DEFAULT_BATCH_TOKENS = {"cpu": 4096, "cuda": 32768}


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc `malloc_trim(0)`).

    Why, measured (README "Ingestion at scale", memory): CPU torch embeds every batch in a
    tensor shape of its own (token-count batching makes many), oneDNN keeps a small primitive
    per shape for the life of the process, and those long-lived allocations among the freed
    activations keep glibc from shrinking the heap: one process embedding 10,000 chunks grew
    from 855 to 1,267 MiB and kept growing with the corpus. Trimmed after each CPU batch, it
    goes back to ~615 MiB between batches and peaks at one batch's activations (bounded by
    EMBEDDING_BATCH_TOKENS), for 2-6% of encode throughput (pages returned are faulted in
    again by the next batch); a trim itself takes ~1 ms, ~25 ms when it has pages to return."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def cpu_threads(setting: int | None) -> int:
    """torch's intra-op threads: EMBEDDING_THREADS, else the CPUs this process may use. torch's
    own default is the machine's cores, which in a pod with a CPU limit on a large node means
    dozens of threads sharing a few CPUs of quota, throttled by the kernel; joblib.cpu_count
    reads the cgroup's quota (cpu.max) and the affinity mask."""
    if setting is not None:
        return setting
    import joblib

    return max(1, int(joblib.cpu_count()))


def token_batches(lengths: list[int], max_batch: int, max_tokens: int) -> list[list[int]]:
    """Indices grouped into batches, longest first by token count: a batch holds at most
    `max_batch` texts and at most `max_tokens` padded tokens (its size times its longest text;
    a text longer than that goes alone). Sorting by tokens, not characters, matters: a Chinese
    chunk of 250 characters is about 230 tokens, an English one about 55, so character order
    mixes them and every text is padded to the longest of its batch."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (
            len(current) >= max_batch or (len(current) + 1) * lengths[current[0]] > max_tokens
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class QueryFirst:
    """Queries' encodes run at once; a background batch starts only while none is running."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queries = 0

    @contextmanager
    def query(self) -> Iterator[None]:
        with self._cond:
            self._queries += 1
        try:
            yield
        finally:
            with self._cond:
                self._queries -= 1
                self._cond.notify_all()

    def wait_idle(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._queries == 0)


def lower_priority() -> None:
    """Run the calling thread (and the threads it starts) at BACKGROUND_NICE."""
    # Linux nice values are per thread; threads this one starts (torch's OpenMP team) inherit it.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except OSError as exc:
        log.warning("ingestion embedding thread keeps normal priority", extra={"error": str(exc)})


class Embedder:
    """Encodes texts into L2-normalised float32 vectors; counts every text it embeds.

    Both cut their texts into `token_batches` (at most `batch_size` texts and `batch_tokens`
    padded tokens each). `encode` is for queries and small edits; `encode_background` for
    ingestion: on one low-priority thread, each batch waiting until no query is encoding, so
    that searches and chats stay fast while a large upload embeds.
    """

    def __init__(
        self,
        model_dir: Path,
        batch_size: int = 64,
        device: DeviceSetting = "auto",
        batch_tokens: int | None = None,
        threads: int | None = None,
    ) -> None:
        if not (model_dir / "config.json").exists() and not (model_dir / "modules.json").exists():
            raise EmbeddingModelMissing(
                f"embedding model directory {model_dir} has no sentence-transformers model "
                "(set EMBEDDING_MODEL to a directory under MODEL_ROOT)"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device, torch.cuda.is_available())
        self.threads = cpu_threads(threads)
        torch.set_num_threads(self.threads)  # process-wide: queries and ingestion alike
        # fp16 on a GPU halves the weights' memory and runs on the tensor cores; the vectors
        # come back as float32 (encode below), so stores and indexes see no difference. On the
        # CPU the model loads as it always has.
        model_kwargs = {"dtype": torch.float16} if self.device == "cuda" else None
        self.model = SentenceTransformer(
            str(model_dir), device=self.device, local_files_only=True, model_kwargs=model_kwargs
        )
        self.dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        self.name = model_dir.name
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens or DEFAULT_BATCH_TOKENS[self.device]
        self._max_length = int(self.model.max_seq_length or self.model.tokenizer.model_max_length)
        # A fast tokenizer sets its padding and truncation on its Rust backend at each call
        # whose settings differ from the last. The model's own is left to `model.encode`
        # (always padded, truncated alike); counting (splitting, batching) on other threads
        # with it made concurrent encodes build unpadded batches ("ValueError: Unable to
        # create tensor": a 500 for an upload beside another upload or a search). Counting
        # uses a copy of its own, one call at a time.
        self._counter = copy.deepcopy(self.model.tokenizer)
        self._counter_lock = threading.Lock()
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"embedding model {model_dir} does not state its dimension")
        self.dim = int(dim)
        self.texts_embedded = 0
        self._count_lock = threading.Lock()
        self._query_first = QueryFirst()
        self._background = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="embed-bulk", initializer=lower_priority
        )
        log.info(
            "embedding model loaded",
            extra={
                "model": str(model_dir),
                "dim": self.dim,
                "device": self.device,
                "dtype": self.dtype,
                "batch_size": self.batch_size,
                "batch_tokens": self.batch_tokens,
                "threads": self.threads,
            },
        )

    def token_window(self) -> TokenWindow:
        """What the model reads of a text (`max_seq_length`, its special tokens left out),
        counted by its own tokenizer."""
        specials = len(self._count_ids([""])[0])

        def count(texts: list[str]) -> list[int]:
            if not texts:
                return []
            return [len(i) for i in self._count_ids(texts, add_special_tokens=False)]

        window = self.model.max_seq_length or self.model.tokenizer.model_max_length
        return TokenWindow(int(window) - specials, count)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """One batch, as it is (the caller cut it)."""
        with self._count_lock:
            self.texts_embedded += len(texts)
        vectors = self.model.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        if len(texts) > 1 and self.device == "cpu":  # a batch, not a query's one text
            release_freed_memory()
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def batches(self, texts: list[str]) -> list[list[int]]:
        """`token_batches` of the texts, counted by the model's tokenizer as it will cut them."""
        if len(texts) == 1:
            return [[0]]
        ids = self._count_ids(texts, truncation=True, max_length=self._max_length)
        return token_batches([len(i) for i in ids], self.batch_size, self.batch_tokens)

    def _count_ids(self, texts: list[str], **options: Any) -> list[list[int]]:
        """Token ids of each text from the counting tokenizer (see `__init__`)."""
        with self._counter_lock:
            ids: list[list[int]] = self._counter(texts, verbose=False, **options)["input_ids"]
        return ids

    def _encode_all(self, texts: list[str], run: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for part in self.batches(texts):
            out[part] = run([texts[i] for i in part])
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._query_first.query():
            return self._encode_all(texts, self._encode)

    def encode_background(self, texts: list[str]) -> np.ndarray:
        """`encode` for ingestion: yields to queries between batches (see the class doc)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode_all(
            texts, lambda batch: self._background.submit(self._encode_after_queries, batch).result()
        )

    def _encode_after_queries(self, texts: list[str]) -> np.ndarray:
        self._query_first.wait_idle()
        return self._encode(texts)

    @property
    def max_tokens(self) -> int | None:
        """The model's window in tokens (texts beyond it are cut before they are embedded)."""
        length = getattr(self.model, "max_seq_length", None)
        return int(length) if length else None

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens of each text as the model's tokenizer counts them, special tokens included."""
        ids = self._count_ids(texts, add_special_tokens=True, truncation=False)
        return [len(i) for i in ids]
