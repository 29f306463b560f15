"""Ingestion at scale: a generated corpus of small Chinese and English documents, stored in
PostgreSQL+pgvector through a real `python -m chat_server.api` process, against bare batched
`encode` of the same chunks in the same run.

Reports chunks/s, the ratio to bare encode, the speed of the first vs the last 10% of files
(a store that slows as it grows shows here), the service's peak RSS, and search p50/p95 on
another knowledge base idle vs while the ingestion runs. Each tenth of the work is split into
where its time went (`Timeline`: the service's stage seconds, each process tree's CPU, the
machine's steal), and a machine gauge embeds fixed chunks before and after each path
(`MachineGauge`), so that a slower machine is not read as a store that slows as it grows.

Paths (`--paths`, functions `(Bench, Corpus, probe kb, queries) -> PathResult` in PATHS):
`http` (upload_docs requests), `bulk1` and `bulk2` (the bulk-import worker,
`python -m chat_server.bulk_import run`, as 1 or 2 processes each taking a shard of the same
files written to a directory, writing to the same PostgreSQL as the service, as an Indexed Job
does; its throughput is over the shards' own time, the model load left out, as bare encode's).

Run: app_images/chat/.venv/bin/python app_images/chat/bench/ingest_scale.py --docs 5000 \
         --paths http bulk1 bulk2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent
CHAT_DIR = HERE.parent
sys.path.insert(0, str(CHAT_DIR))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from chat_server.kb.embeddings import Embedder  # noqa: E402
from chat_server.kb.service import SplitParams  # noqa: E402
from chat_server.kb.splitter import split_document  # noqa: E402
from tests.conftest import minilm_dir  # noqa: E402
from tests.stub_llm import free_port  # noqa: E402

PARAMS = SplitParams(250, 50, False)
API_KEY = "bench-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

EN_WORDS = [
    "cluster",
    "node",
    "pod",
    "volume",
    "index",
    "vector",
    "query",
    "latency",
    "replica",
    "backup",
    "network",
    "gateway",
    "policy",
    "quota",
    "budget",
    "invoice",
    "customer",
    "order",
    "shipment",
    "warehouse",
    "contract",
    "release",
    "incident",
    "report",
    "sensor",
    "firmware",
    "battery",
    "voltage",
    "schedule",
    "meeting",
    "project",
    "review",
    "design",
    "storage",
    "bucket",
    "region",
    "zone",
    "account",
    "token",
    "permission",
    "audit",
    "metric",
    "alert",
]
EN_VERBS = [
    "keeps",
    "checks",
    "moves",
    "stores",
    "sends",
    "builds",
    "reports",
    "limits",
    "restores",
    "measures",
]
ZH_WORDS = [
    "集群",
    "节点",
    "存储",
    "索引",
    "向量",
    "查询",
    "延迟",
    "副本",
    "备份",
    "网络",
    "网关",
    "策略",
    "配额",
    "预算",
    "发票",
    "客户",
    "订单",
    "物流",
    "仓库",
    "合同",
    "发布",
    "事故",
    "报告",
    "传感器",
    "固件",
    "电池",
    "电压",
    "排班",
    "会议",
    "项目",
    "评审",
    "设计",
    "区域",
    "账号",
    "权限",
    "审计",
    "指标",
    "告警",
    "产品",
    "手册",
    "服务",
    "用户",
    "数据",
    "模型",
    "知识库",
    "文档",
]
ZH_LINKS = ["的", "和", "在", "对", "将", "需要", "可以", "负责", "根据", "通过"]


def english_sentence(rng: random.Random) -> str:
    words = [rng.choice(EN_WORDS) for _ in range(rng.randint(6, 16))]
    words.insert(rng.randint(1, len(words) - 1), rng.choice(EN_VERBS))
    return " ".join(words).capitalize() + f" {rng.randint(1, 9999)}."


def chinese_sentence(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(4, 10)):
        parts.append(rng.choice(ZH_WORDS))
        parts.append(rng.choice(ZH_LINKS))
    return "".join(parts[:-1]) + f"{rng.randint(1, 9999)}。"


def document(seed: int, i: int) -> tuple[str, bytes]:
    """Document i of the corpus: its own generator, so any document is made alone, the same
    every time. 60% English (300-2,000 characters), 40% Chinese (150-1,000), a title line
    and paragraphs: the lengths of FAQ entries, tickets and manual sections."""
    rng = random.Random(seed * 1_000_003 + i)
    zh = rng.random() < 0.4
    target = rng.randint(150, 1000) if zh else rng.randint(300, 2000)
    sentence = chinese_sentence if zh else english_sentence
    lines = [f"# {'文档' if zh else 'Document'} {i}"]
    size = 0
    while size < target:
        paragraph = ("" if zh else " ").join(sentence(rng) for _ in range(rng.randint(2, 5)))
        lines.append(paragraph)
        size += len(paragraph)
    return f"doc{i:06d}.md", "\n\n".join(lines).encode()


@dataclass(frozen=True)
class Corpus:
    seed: int
    docs: int

    def files(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, bytes]]:
        for i in range(start, self.docs if stop is None else stop):
            yield document(self.seed, i)


@dataclass
class PathResult:
    name: str
    files: int
    chunks: int
    seconds: float
    chunks_per_s: float
    first_10pct_files_per_s: float
    last_10pct_files_per_s: float
    peak_rss_mib: dict[str, float]
    search_during_ms: dict[str, float]
    notes: list[str] = field(default_factory=list)
    tenths: list[dict[str, float]] = field(default_factory=list)  # Timeline.tenths
    last_over_first: dict[str, float] = field(default_factory=dict)  # slowdown(tenths)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RssSampler:
    """Peak resident memory of a process and of its children (the parse workers)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_main = 0
        self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.peak_main = max(self.peak_main, self.proc.memory_info().rss)
                kids = sum(c.memory_info().rss for c in self.proc.children(recursive=True))
                self.peak_children = max(self.peak_children, kids)
            except psutil.Error:
                return

    def reset(self) -> None:
        self.peak_main = self.peak_children = 0

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.peaks()

    def peaks(self) -> dict[str, float]:
        return {
            "service": round(self.peak_main / 2**20, 1),
            "parse_workers": round(self.peak_children / 2**20, 1),
        }


def _machine_ticks() -> dict[str, int]:
    """The machine's CPU time since boot, in clock ticks, from /proc/stat's `cpu` line."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return dict(zip(names, (int(x) for x in fields), strict=False))


def _cpu_s(proc: psutil.Process, reaped: bool = True) -> float:
    t = proc.cpu_times()
    return t.user + t.system + (t.children_user + t.children_system if reaped else 0.0)


def _cpu_by_root(roots: dict[str, int]) -> dict[str, float] | None:
    """CPU seconds of each root's process tree (its live descendants, and those it reaped),
    and `bench`: this process and its descendants that are in no root's tree (the probe).
    None once a root is gone: its CPU time then moves to whoever reaps it."""
    trees: dict[str, list[psutil.Process]] = {}
    try:
        for name, pid in roots.items():
            root = psutil.Process(pid)
            trees[name] = [root, *root.children(recursive=True)]
        me = psutil.Process()
        rest = [p for p in me.children(recursive=True)]
    except psutil.Error:
        return None
    taken = {p.pid for procs in trees.values() for p in procs}
    out: dict[str, float] = {}
    for name, procs in trees.items():
        total = 0.0
        for proc in procs:
            try:
                total += _cpu_s(proc)
            except psutil.Error:
                if proc.pid == roots[name]:
                    return None
        out[name] = total
    bench = _cpu_s(me, reaped=False)
    for proc in rest:
        if proc.pid not in taken:
            with contextlib.suppress(psutil.Error):
                bench += _cpu_s(proc)
    out["bench"] = bench
    return out


def _stage_seconds(url: str) -> dict[str, float]:
    """The service's `chat_ingest_stage_seconds_sum` by stage, from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    return {
        s.labels["stage"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "chat_ingest_stage_seconds_sum"
    }


BATCH_S = 0.05  # events closer than this are one batch's


@dataclass(frozen=True)
class Sample:
    t: float
    cpu_s: dict[str, float] | None  # process trees (`_cpu_by_root`); None: a root was gone
    stage_s: dict[str, float]  # the service's ingestion stages, wall seconds
    ticks: dict[str, int]  # the whole machine's


class Timeline:
    """Samples, every `every_s`, the CPU time of the process trees that ingest (the service,
    the PostgreSQL server, the bulk workers, and the bench with its search probe), the
    service's ingestion stage seconds and the machine's CPU ticks, so that a tenth of an
    ingestion can be split into where its time went: the store (write), the model (embed),
    or a machine that had less to give (steal, other processes)."""

    def __init__(self, url: str | None, pids: dict[str, int], every_s: float = 1.0) -> None:
        """`url`: the service whose stage seconds to scrape (None: it does not ingest)."""
        self.url = url
        self.pids = dict(pids)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._every = every_s
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> Sample:
        s = Sample(
            time.perf_counter(),
            _cpu_by_root(self.pids),
            _stage_seconds(self.url) if self.url else {},
            _machine_ticks(),
        )
        self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def at(self, t: float) -> Sample:
        """The sample nearest to `t` taken while every root process ran."""
        return min((s for s in self.samples if s.cpu_s), key=lambda s: abs(s.t - t))

    def tenths(self, begin: float, given: list[tuple[float, int]]) -> list[dict[str, float]]:
        """`events` (when a unit of work was done, its chunks), split into ten runs of equal
        count; for each: chunks/s and, per 1,000 chunks, each stage's seconds and each process
        tree's CPU seconds; the machine's steal and the cores others used. Events less than
        `BATCH_S` apart are one (a bulk worker logs a batch's files at once): a tenth never
        ends inside a batch."""
        events = []
        for t, chunks in sorted(given):
            if events and t - events[-1][0] < BATCH_S:
                events[-1] = (t, events[-1][1] + chunks)
            else:
                events.append((t, chunks))
        n = len(events)
        out = []
        start = begin
        for k in range(10):
            part = events[k * n // 10 : (k + 1) * n // 10]
            if not part:
                continue
            end = part[-1][0]
            a, b = self.at(start), self.at(end)
            chunks = sum(c for _, c in part)
            wall = b.t - a.t
            per_k = 1000 / chunks if chunks else float("nan")
            ticks = {key: b.ticks[key] - a.ticks[key] for key in b.ticks}
            total_ticks = sum(ticks.values()) or 1
            busy_cores = (1 - (ticks["idle"] + ticks["iowait"]) / total_ticks) * len(
                os.sched_getaffinity(0)
            )
            assert a.cpu_s and b.cpu_s
            ours = sum(b.cpu_s[p] - a.cpu_s[p] for p in b.cpu_s)
            row: dict[str, float] = {
                "seconds": round(end - start, 1),
                "chunks": chunks,
                "chunks_per_s": round(chunks / (end - start), 1) if end > start else float("nan"),
            }
            for stage in sorted(b.stage_s):
                row[f"{stage}_s_per_1k"] = round(
                    (b.stage_s[stage] - a.stage_s.get(stage, 0)) * per_k, 2
                )
            for proc in sorted(b.cpu_s):
                row[f"cpu_{proc}_s_per_1k"] = round((b.cpu_s[proc] - a.cpu_s[proc]) * per_k, 2)
            row["steal_pct"] = round(100 * ticks.get("steal", 0) / total_ticks, 1)
            row["other_cores"] = round(max(0.0, busy_cores - ours / wall), 2) if wall else 0.0
            out.append(row)
            start = end
        return out


def slowdown(tenths: list[dict[str, float]]) -> dict[str, float]:
    """Last tenth over first, for every figure of `Timeline.tenths` (1.0: no change)."""
    if len(tenths) < 2:
        return {}
    first, last = tenths[0], tenths[-1]
    return {
        key: round(last[key] / first[key], 3)
        for key in first
        if key not in ("seconds", "chunks", "steal_pct", "other_cores") and first[key]
    }


def _probe_loop(url: str, kb: str, queries: list[str], pause_s: float, stop: Any, out: Any) -> None:
    latencies: list[float] = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        i = 0
        while not stop.is_set():
            body = {"knowledge_base_name": kb, "query": queries[i % len(queries)]}
            started = time.perf_counter()
            r = client.post("/knowledge_base/search_docs", json=body)
            latencies.append(time.perf_counter() - started)
            r.raise_for_status()
            i += 1
            stop.wait(pause_s)
    out.put(latencies)


class SearchProbe:
    """Searches another knowledge base one after another (as a user would, a pause between),
    recording each answer's latency, until stopped. It runs in a process of its own, as another
    user's client would: in the bench's process its timing would include waits for the GIL
    that the uploading threads hold, which are the bench's, not the service's."""

    def __init__(self, url: str, kb: str, queries: list[str], pause_s: float = 0.1) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._out = ctx.Queue()
        self._proc = ctx.Process(
            target=_probe_loop, args=(url, kb, queries, pause_s, self._stop, self._out)
        )

    def run_for(self, seconds: float) -> dict[str, float]:
        self.start()
        time.sleep(seconds)
        return self.stop()

    def start(self) -> SearchProbe:
        self._proc.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        latencies = self._out.get(timeout=120)
        self._proc.join(timeout=60)
        if self._proc.exitcode != 0:
            raise RuntimeError(f"search probe exited with {self._proc.exitcode}")
        ms = [x * 1000 for x in latencies]
        return {
            "n": len(ms),
            "p50": round(percentile(ms, 0.5), 2),
            "p95": round(percentile(ms, 0.95), 2),
        }


@dataclass
class Bench:
    """A PostgreSQL+pgvector server and a chat API process on it."""

    work: Path
    url: str
    proc: subprocess.Popen[bytes]
    conninfo: str
    upload_files: int
    uploaders: int
    env: dict[str, str] = field(default_factory=dict)  # the service's settings
    pg_pid: int = 0  # the PostgreSQL server's postmaster
    probe_pause_s: float = 0.1  # between one search probe's answer and its next query
    sample_every_s: float = 1.0  # the Timeline's interval (its sampling costs the bench CPU)

    def timeline(self, service_ingests: bool, **more: int) -> Timeline:
        """The service's process tree (its parse workers), PostgreSQL's, and any `more`; the
        service's stage seconds if it is the one that ingests."""
        roots = {"service": self.proc.pid, "postgres": self.pg_pid, **more}
        return Timeline(self.url if service_ingests else None, roots, self.sample_every_s)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH, timeout=600)

    def create_kb(self, name: str) -> None:
        with self.client() as c:
            r = c.post(
                "/knowledge_base/create_knowledge_base",
                json={"knowledge_base_name": name, "vector_store_type": "pg"},
            )
            r.raise_for_status()
            assert r.json()["code"] == 200, r.text

    def upload(self, client: httpx.Client, kb: str, files: list[tuple[str, bytes]]) -> int:
        r = client.post(
            "/knowledge_base/upload_docs",
            data={"knowledge_base_name": kb, "chunk_size": "250", "chunk_overlap": "50"},
            files=[("files", (name, data, "text/markdown")) for name, data in files],
        )
        if r.status_code != 200:
            raise RuntimeError(f"upload_docs answered {r.status_code}: {r.text[:2000]}")
        body = r.json()
        assert body["code"] == 200 and not body["data"]["failed_files"], r.text[:500]
        return int(body["data"]["chunks"])


def start_bench(work: Path, upload_files: int, uploaders: int) -> tuple[Bench, object]:
    import pgserver
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    pg = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    conninfo = pg.get_uri(name)
    params = conninfo_to_dict(conninfo)
    port = free_port()
    model = minilm_dir()
    env = {
        **os.environ,
        "PYTHONPATH": str(CHAT_DIR),
        "PYTHONUNBUFFERED": "1",  # its log complete up to a failure
        "MODEL_ROOT": str(model.parent),
        "EMBEDDING_MODEL": model.name,
        "EMBEDDING_DEVICE": "cpu",
        "KB_ROOT": str(work / "kb"),
        "LLM_HOST": "http://127.0.0.1:9",
        "LLM_MODEL": "bench",
        "DEFAULT_VS_TYPE": "adb",
        "CHAT_API_KEY": API_KEY,
        "API_PORT": str(port),
        "MAX_UPLOAD_FILES": str(upload_files),
        "MAX_UPLOAD_BYTES": str(64 * 1024 * 1024),
        "PG_HOST": str(params["host"]),
        "PG_PORT": str(params.get("port", 5432)),
        "PG_DATABASE": str(params["dbname"]),
        "PG_USER": str(params["user"]),
        "PG_PASSWORD": str(params.get("password", "")),
    }
    log = (work / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chat_server.api"], cwd=CHAT_DIR, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chat api exited {proc.returncode}: see {work / 'api.log'}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code in (200, 503):
                break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        raise RuntimeError("chat api did not start")
    return Bench(work, url, proc, conninfo, upload_files, uploaders, env, pg.get_pid() or 0), pg


def batches(corpus: Corpus, size: int) -> Iterator[list[tuple[str, bytes]]]:
    for start in range(0, corpus.docs, size):
        yield list(corpus.files(start, min(corpus.docs, start + size)))


def ingest_http(bench: Bench, corpus: Corpus, probe_kb: str, queries: list[str]) -> PathResult:
    """Uploads of `upload_files` files each, `uploaders` requests at once (the way a client
    fills a knowledge base over HTTP); each request's files/s is recorded for the 10% figures."""
    kb = "scale_http"
    bench.create_kb(kb)
    done: list[tuple[int, float, int, int]] = []  # (first file index, seconds, files, chunks)
    finished: list[tuple[float, int]] = []  # (when a request was answered, its chunks)
    lock = threading.Lock()
    rss = RssSampler(bench.proc.pid)
    probe = SearchProbe(bench.url, probe_kb, queries, bench.probe_pause_s).start()
    timeline = bench.timeline(service_ingests=True)
    started = time.perf_counter()

    def send(job: tuple[int, list[tuple[str, bytes]]]) -> None:
        first, files = job
        with bench.client() as client:
            t = time.perf_counter()
            chunks = bench.upload(client, kb, files)
            now = time.perf_counter()
            with lock:
                done.append((first, now - t, len(files), chunks))
                finished.append((now, chunks))

    jobs = ((i * bench.upload_files, b) for i, b in enumerate(batches(corpus, bench.upload_files)))
    with ThreadPoolExecutor(max_workers=bench.uploaders) as pool:
        for _ in pool.map(send, jobs):
            pass
    seconds = time.perf_counter() - started
    timeline.stop()
    during = probe.stop()
    peaks = rss.stop()
    tenths = timeline.tenths(started, finished)
    done.sort()
    tenth = max(1, len(done) // 10)

    def files_per_s(part: list[tuple[int, float, int, int]]) -> float:
        # Uploads overlap `uploaders` at a time: files per request-second times the overlap.
        return round(sum(p[2] for p in part) / sum(p[1] for p in part) * bench.uploaders, 2)

    chunks = sum(p[3] for p in done)
    return PathResult(
        "http",
        corpus.docs,
        chunks,
        round(seconds, 1),
        round(chunks / seconds, 1),
        files_per_s(done[:tenth]),
        files_per_s(done[-tenth:]),
        peaks,
        during,
        tenths=tenths,
        last_over_first=slowdown(tenths),
    )


def write_source(bench: Bench, corpus: Corpus) -> Path:
    """The corpus as files in a directory: what an import mounts at /import."""
    source = bench.work / f"source-{corpus.seed}-{corpus.docs}"
    if not source.exists():
        part = source.with_suffix(".part")
        for i, (name, data) in enumerate(corpus.files()):
            folder = part / f"d{i // 1000:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        part.rename(source)
    return source


def ingest_bulk(processes: int) -> Callable[[Bench, Corpus, str, list[str]], PathResult]:
    def run(bench: Bench, corpus: Corpus, probe_kb: str, queries: list[str]) -> PathResult:
        kb = f"scale_bulk{processes}"
        bench.create_kb(kb)
        source = write_source(bench, corpus)
        env = {
            **bench.env,
            "CHAT_API_URL": bench.url,
            "CHUNK_SIZE": str(PARAMS.chunk_size),
            "CHUNK_OVERLAP": str(PARAMS.chunk_overlap),
        }
        # Processes on one machine share its cores: each takes its part for torch, as pods with
        # CPU limits do (cpu_threads); unsplit, 2 processes x 2 threads on 2 cores were 0.77x one.
        cores = len(os.sched_getaffinity(0))
        env.setdefault("EMBEDDING_THREADS", str(max(1, cores // processes)))
        events: list[tuple[float, int]] = []  # (when a file's outcome was logged, chunks)
        summaries: list[dict] = []
        starts: list[float] = []
        lock = threading.Lock()

        def read(proc: subprocess.Popen[str]) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                entry = json.loads(line)
                with lock:
                    if entry.get("msg") == "import file":
                        events.append((time.perf_counter(), int(entry.get("chunks") or 0)))
                    elif entry.get("msg") == "import shard started":
                        starts.append(time.perf_counter())  # after the model load
                    elif entry.get("msg") == "import shard finished":
                        summaries.append(entry)

        probe = SearchProbe(bench.url, probe_kb, queries, bench.probe_pause_s).start()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chat_server.bulk_import",
                    "run",
                    "--knowledge-base",
                    kb,
                    "--source",
                    str(source),
                    "--import-id",
                    f"bench-{processes}",
                    "--shard",
                    str(shard),
                    "--shard-count",
                    str(processes),
                ],
                cwd=CHAT_DIR,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for shard in range(processes)
        ]
        samplers = [RssSampler(p.pid) for p in procs]
        workers = {f"worker{i}": p.pid for i, p in enumerate(procs)}
        timeline = bench.timeline(service_ingests=False, **workers)
        readers = [threading.Thread(target=read, args=(p,), daemon=True) for p in procs]
        for t in readers:
            t.start()
        codes = [p.wait() for p in procs]
        for t in readers:
            t.join()
        timeline.stop()
        during = probe.stop()
        peaks = [s.stop() for s in samplers]
        if codes != [0] * processes or len(summaries) != processes:
            raise RuntimeError(f"bulk workers exited {codes}; summaries {summaries}")
        chunks = sum(int(s["chunks"]) for s in summaries)
        stored = sum(int(s["stored"]) for s in summaries)
        seconds = max(float(s["seconds"]) for s in summaries)
        events.sort()
        tenth = max(1, len(events) // 10)
        times = [t for t, _ in events]

        def files_per_s(first: int, stop: int) -> float:
            # Files are logged a batch at a time: a tenth's span runs from the last outcome
            # logged before it (or the shards' start) to its own last one.
            before = [t for t in times if t < times[first] - 0.05]  # an earlier batch
            begin = before[-1] if before else min(starts)
            span = times[stop - 1] - begin
            return round((stop - first) / span, 2) if span > 0 else float("nan")

        return PathResult(
            f"bulk{processes}",
            stored,
            chunks,
            round(seconds, 1),
            round(chunks / seconds, 1),
            files_per_s(0, tenth),
            files_per_s(len(events) - tenth, len(events)),
            {
                "worker_max": max(p["service"] for p in peaks),
                "parse_workers_max": max(p["parse_workers"] for p in peaks),
            },
            during,
            [f"{processes} worker process(es); 10% rates from per-batch log lines"],
            tenths=(tenths := timeline.tenths(min(starts), events)),
            last_over_first=slowdown(tenths),
        )

    return run


# name -> function(bench, corpus, probe kb, probe queries) -> PathResult
PATHS: dict[str, Callable[[Bench, Corpus, str, list[str]], PathResult]] = {
    "http": ingest_http,
    "bulk1": ingest_bulk(1),
    "bulk2": ingest_bulk(2),
}


def bench_embedder() -> Embedder:
    tokens = os.environ.get("EMBEDDING_BATCH_TOKENS")  # as the service reads it
    return Embedder(minilm_dir(), device="cpu", batch_tokens=int(tokens) if tokens else None)


class MachineGauge:
    """The machine's speed, before and after each path: the same fixed chunks (80 documents of
    another seed) embedded in this process while the service is idle. A path's last tenth
    slower than its first on a machine that slowed as much is the machine, not the store."""

    def __init__(self, embedder: Embedder, seed: int) -> None:
        self.embedder = embedder
        window = embedder.token_window()
        self.chunks = [
            c
            for _, data in Corpus(seed, 80).files()
            for c in split_document(
                data.decode(), PARAMS.chunk_size, PARAMS.chunk_overlap, False, window
            ).chunks
        ]
        # Warm-up on the very chunks: oneDNN makes a primitive for each new batch shape, so a
        # first pass is slower than any later one (61 vs 75-102 chunks/s in a 300-doc run).
        embedder.encode(self.chunks)
        self.readings: dict[str, float] = {}

    def read(self, when: str) -> float:
        started = time.perf_counter()
        self.embedder.encode(self.chunks)
        speed = round(len(self.chunks) / (time.perf_counter() - started), 1)
        self.readings[when] = speed
        return speed


def bare_encode(
    corpus: Corpus, sample_every: int, embedder: Embedder
) -> dict[str, dict[str, float]]:
    """The same split, then every `sample_every`-th file's chunks embedded alone, in this
    process, two ways: `model.encode` in batches of 64 as sentence-transformers does it (it sorts
    by characters), the issue's baseline; and `Embedder.encode`, the service's own batches (sorted
    by tokens, bounded in padded tokens), which isolates what the service adds around them."""
    window = embedder.token_window()
    chunks = []
    for i, (_, data) in enumerate(corpus.files()):
        if i % sample_every == 0:
            split = split_document(
                data.decode(), PARAMS.chunk_size, PARAMS.chunk_overlap, False, window
            )
            chunks += split.chunks
    embedder.model.encode(chunks[:64], batch_size=64)  # warm-up
    out = {}
    for name, run in (
        (
            "model_encode",
            lambda: embedder.model.encode(chunks, batch_size=64, normalize_embeddings=True),
        ),
        ("same_batches", lambda: embedder.encode(chunks)),
    ):
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
        out[name] = {
            "chunks": len(chunks),
            "seconds": round(seconds, 1),
            "chunks_per_s": round(len(chunks) / seconds, 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--paths", nargs="+", default=["http"], choices=sorted(PATHS))
    parser.add_argument("--upload-files", type=int, default=100, help="files per upload request")
    parser.add_argument("--uploaders", type=int, default=2, help="upload requests at once")
    parser.add_argument(
        "--bare-sample", type=int, default=1, help="bare encode of every n-th file's chunks"
    )
    parser.add_argument("--probe-docs", type=int, default=300)
    parser.add_argument(
        "--probe-pause", type=float, default=0.1, help="seconds between a probe's searches"
    )
    parser.add_argument(
        "--sample-every",
        type=float,
        default=1.0,
        help="seconds between the per-tenth samples (each scrapes /metrics and walks /proc)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()

    corpus = Corpus(args.seed, args.docs)
    load_before = os.getloadavg()
    results: dict[str, object] = {"docs": args.docs, "seed": args.seed}
    embedder = bench_embedder()
    gauge = MachineGauge(embedder, args.seed + 2)
    with tempfile.TemporaryDirectory(prefix="ingest-scale-") as tmp:
        bench, pg = start_bench(Path(tmp), args.upload_files, args.uploaders)
        bench.probe_pause_s = args.probe_pause
        bench.sample_every_s = args.sample_every
        try:
            probe_kb = "probe"
            bench.create_kb(probe_kb)
            probe_corpus = Corpus(args.seed + 1, args.probe_docs)
            with bench.client() as c:
                for files in batches(probe_corpus, args.upload_files):
                    bench.upload(c, probe_kb, files)
            queries = [english_sentence(random.Random(q)) for q in range(20)]
            queries += [chinese_sentence(random.Random(q)) for q in range(20)]
            pause = bench.probe_pause_s
            gauge.read("before")
            results["search_idle_before_ms"] = SearchProbe(
                bench.url, probe_kb, queries, pause
            ).run_for(20)
            for name in args.paths:
                result = PATHS[name](bench, corpus, probe_kb, queries)
                after = gauge.read(f"after_{name}")
                result.notes.append(
                    f"machine gauge {gauge.readings['before']} chunks/s before the first path, "
                    f"{after} after this one: {after / gauge.readings['before']:.3f}x"
                )
                results[name] = asdict(result)
                print(json.dumps({name: asdict(result)}), flush=True)
            results["search_idle_after_ms"] = SearchProbe(
                bench.url, probe_kb, queries, pause
            ).run_for(20)
        except BaseException:
            log = Path(tmp) / "api.log"
            kept = Path(tempfile.gettempdir()) / f"ingest-scale-api-{os.getpid()}.log"
            kept.write_bytes(log.read_bytes())
            print(log.read_text()[-6000:], file=sys.stderr)
            print(f"the service's whole log: {kept}", file=sys.stderr)
            raise
        finally:
            bench.proc.terminate()
            bench.proc.wait(timeout=60)
            pg.cleanup()  # type: ignore[attr-defined]
    results["machine_gauge_chunks_per_s"] = gauge.readings
    results["bare_encode"] = bare = bare_encode(corpus, args.bare_sample, embedder)
    for name in args.paths:
        entry = results[name]
        speed = entry["chunks_per_s"]  # type: ignore[index]
        entry["ratio_to_bare"] = round(speed / bare["model_encode"]["chunks_per_s"], 3)  # type: ignore[index]
        entry["ratio_to_same_batches"] = round(speed / bare["same_batches"]["chunks_per_s"], 3)  # type: ignore[index]
    idle = results["search_idle_before_ms"]["p95"]  # type: ignore[index]
    for name in args.paths:
        entry = results[name]
        entry["search_p95_vs_idle"] = round(  # type: ignore[index]
            entry["search_during_ms"]["p95"] / idle,  # type: ignore[index]
            2,
        )
    results["loadavg_before"] = [round(x, 2) for x in load_before]
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["cpus"] = os.cpu_count()
    text = json.dumps(results, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
