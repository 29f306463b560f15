"""A separate process that writes one knowledge base, for tests that kill it mid-write.

python -m tests.kb_writer SPEC.json: SPEC names kb_root, conninfo, vs_type, kb, op
(create, ingest, delete, rebuild, delete_kb) and files ({name: text}). It stops at the
fault point named by CHAT_FAULT_PAUSE_AT; exit 0 when done, 3 when another writer holds the KB.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from chat_server.errors import ServiceError
from chat_server.kb.embeddings import Embedder
from chat_server.kb.service import KnowledgeService, SplitParams
from chat_server.stores.base import KnowledgeBaseLocked, fault_point
from tests.conftest import minilm_dir
from tests.crash_helpers import as_files

PARAMS = SplitParams(120, 20, False)


def main(spec: dict) -> int:
    service = KnowledgeService(
        Embedder(minilm_dir()), Path(spec["kb_root"]), spec.get("conninfo"), spec["vs_type"]
    )
    kb = spec["kb"]
    try:
        if spec["op"] in ("create", "create_ingest"):
            service.create_kb(kb, spec["vs_type"], None)
        if spec["op"] in ("ingest", "create_ingest"):
            files = as_files(Path(spec["kb_root"]).parent, spec["files"])
            for batch in [[f] for f in files] if spec.get("per_file") else [files]:
                service.ingest(kb, batch, PARAMS)
                fault_point("script.batch_done")
        elif spec["op"] == "delete":
            service.delete_files(kb, list(spec["files"]), delete_content=True)
        elif spec["op"] == "rebuild":
            service.reset_vectors(kb)
            for _ in service.reingest_stored(kb, service.stored_files(kb), PARAMS):
                pass
        elif spec["op"] == "delete_kb":
            service.delete_kb(kb)
    except KnowledgeBaseLocked as exc:
        print(exc.message, flush=True)
        return 3
    except ServiceError as exc:  # KnowledgeBaseError, DatabaseUnavailable
        print(f"{type(exc).__name__}: {exc.message}", flush=True)
        return 4
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(Path(sys.argv[1]).read_text())))
