"""A real PostgreSQL restarted and stopped under the service (its own pgserver instance)."""

from __future__ import annotations

import time

import pgserver
import pytest

from chat_server.kb.service import KnowledgeService
from chat_server.stores.base import DatabaseUnavailable
from tests.crash_helpers import PARAMS, as_files, paragraph


@pytest.fixture()
def own_pg(tmp_path):
    data = tmp_path / "pgdata"
    server = pgserver.get_server(data, cleanup_mode="stop")
    yield server, data
    pgserver.get_server(data, cleanup_mode="stop").cleanup()


def restart(data, server):
    server.cleanup()  # pg_ctl stop: every pooled connection dies
    return pgserver.get_server(data, cleanup_mode="stop")


def test_pooled_connections_survive_a_restart_and_faiss_works_while_pg_is_down(
    own_pg, tmp_path, embedder
):
    server, data = own_pg
    uri = server.get_uri()
    service = KnowledgeService(
        embedder, tmp_path / "kb", uri, "adb", pg_timeout_s=1, pg_retry_after_s=1
    )
    text = {"faiss": paragraph("falcon"), "adb": paragraph("pelican")}
    try:
        for kb, vs in (("local", "faiss"), ("shared", "adb")):
            service.create_kb(kb, vs, None)
            service.ingest(kb, as_files(tmp_path, {f"{kb}.txt": text[vs]}), PARAMS)
        server = restart(data, server)
        assert server.get_uri() == uri
        # Dead pooled connections are checked and replaced: no error after the restart.
        assert service.search("shared", text["adb"], 1, 2.0)[0].file_name == "shared.txt"

        server.cleanup()  # stopped
        with pytest.raises(DatabaseUnavailable) as err:
            service.search("shared", text["adb"], 1, 2.0)
        assert err.value.status == 503 and err.value.retry_after_s == 1
        assert [kb.name for kb in service.list_kbs()] == ["local"]
        assert service.search("local", text["faiss"], 1, 2.0)[0].file_name == "local.txt"
        more = as_files(tmp_path, {"more.txt": "faiss keeps taking uploads"})
        service.ingest("local", more, PARAMS)
        assert service.database_status() == "unavailable"
        with pytest.raises(DatabaseUnavailable):
            service.create_kb("other", "faiss", None)  # a name clash cannot be ruled out

        server = pgserver.get_server(data, cleanup_mode="stop")
        time.sleep(1.1)  # the Retry-After window
        assert service.database_status() == "ok"
        assert sorted(kb.name for kb in service.list_kbs()) == ["local", "shared"]
    finally:
        service.close()
