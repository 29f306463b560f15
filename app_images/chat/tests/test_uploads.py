"""Uploads go to spool files on disk, not memory, in a real uvicorn server process."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API_KEY, ApiProcess, new_kb_name
from tests.slow_docs import one_page_pdf

MB = 1024 * 1024
FILE_BYTES = 40 * MB
FILES = 5


@pytest.fixture(scope="module")
def api(tmp_path_factory, model_dir, stub_llm):
    server = ApiProcess(
        tmp_path_factory.mktemp("api"),
        model_dir,
        stub_llm.url,
        MAX_UPLOAD_BYTES=str(FILE_BYTES + MB),
        MAX_REQUEST_BYTES=str((FILES + 1) * (FILE_BYTES + MB)),
        PARSE_DEADLINE_S="0.2",
        PARSE_KILL_GRACE_S="0.3",
        PARSE_WORKERS="1",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def upload(api: ApiProcess, kb: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    return api.http.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": kb},
        files=[("files", f) for f in files],
    )


def create_kb(api: ApiProcess) -> str:
    name = new_kb_name()
    r = api.http.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name})
    assert r.status_code == 200, r.text
    return name


def wait_for_no_spool_files(api: ApiProcess) -> list[Path]:
    deadline = time.monotonic() + 30
    while api.spool_files() and time.monotonic() < deadline:
        time.sleep(0.1)
    return api.spool_files()


def test_peak_rss_stays_far_below_the_size_of_a_large_upload(api):
    kb = create_kb(api)
    warm = upload(api, kb, [("warm.txt", b"Otters hold hands while they sleep.")])
    assert warm.status_code == 200, warm.text  # the model loaded, a parse worker started
    boundary = "sp00lb0undary"

    def body() -> Iterator[bytes]:
        """FILES files of FILE_BYTES each, streamed (no Content-Length), 1 MiB at a time."""
        for i in range(FILES):
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="big{i}.txt"\r\nContent-Type: text/plain\r\n\r\n'
            ).encode()
            for _ in range(FILE_BYTES // MB):
                yield b"word " * (MB // 5) + b"w" * (MB % 5)
            yield b"\r\n"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="knowledge_base_name"\r\n\r\n'
            f"no_such_kb\r\n--{boundary}--\r\n"
        ).encode()

    api.reset_peak_rss()
    before = api.status("VmRSS")
    r = api.http.post(
        "/knowledge_base/upload_docs",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    peak = api.status("VmHWM")
    # Every file was received in full (it is the knowledge base that is missing) ...
    assert r.status_code == 404, r.text
    assert "no_such_kb" in r.json()["msg"]
    # ... with the server holding far less than one file at any time, let alone all FILES.
    assert peak - before < FILE_BYTES // 4, (before, peak)
    assert wait_for_no_spool_files(api) == []


def test_a_file_over_its_cap_is_413_at_once_and_its_spool_file_removed(api):
    kb = create_kb(api)
    r = upload(api, kb, [("ok.txt", b"fine"), ("big.txt", b"x" * (FILE_BYTES + MB + 1))])
    assert r.status_code == 413, r.text
    assert "'big.txt' is larger than the limit" in r.json()["msg"]
    assert "MAX_UPLOAD_BYTES" in r.json()["msg"]
    assert wait_for_no_spool_files(api) == []
    listed = api.http.get("/knowledge_base/list_files", params={"knowledge_base_name": kb})
    assert listed.json()["data"] == []


def test_a_client_that_disconnects_mid_upload_leaves_no_spool_file(api):
    boundary = "cutb0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        'filename="cut.txt"\r\nContent-Type: text/plain\r\n\r\n'
    ).encode()
    with socket.create_connection(("127.0.0.1", api.port)) as sock:
        sock.sendall(
            (
                "POST /knowledge_base/upload_docs HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {20 * MB}\r\n\r\n"
            ).encode()
            + head
            + b"word " * MB
        )
        deadline = time.monotonic() + 30
        while not api.spool_files() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(api.spool_files()) == 1  # the upload was being spooled ...
    assert wait_for_no_spool_files(api) == []  # ... and is removed when the client goes
    assert api.http.get("/health").status_code == 200


def test_a_document_that_parses_too_long_is_413_and_the_service_lives_on(api):
    kb = create_kb(api)
    r = upload(api, kb, [("slow.pdf", one_page_pdf(60_000))])
    assert r.status_code == 413, r.text
    assert "'slow.pdf' took longer than 0.2s" in r.json()["msg"]
    assert api.proc.poll() is None
    # The killed parse worker is replaced: the next uploads are parsed and embedded.
    for i in range(3):
        r = upload(api, kb, [(f"after{i}.txt", f"Sea otters, note {i}.".encode())])
        assert r.status_code == 200, r.text
        assert r.json()["data"]["embedded_files"] == [f"after{i}.txt"]
    assert wait_for_no_spool_files(api) == []
