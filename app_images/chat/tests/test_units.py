"""Pieces that the API suite cannot reach: ADB SQL, dialect detection, splitting, faiss files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import psycopg
import pytest

from chat_server.kb.splitter import split_text
from chat_server.stores import base, pg_store
from chat_server.stores.base import KnowledgeBaseNameError, kb_storage_id, validate_kb_name
from chat_server.stores.faiss_store import FaissIndex
from chat_server.stores.pg_store import (
    PgSql,
    detect_dialect,
    parse_stored_dim,
    table_name,
    vector_literal,
)


def render(statement) -> str:
    return statement.as_string(None)


def test_adb_creates_real_array_table_with_fastann_index():
    statements = [render(s) for s in PgSql("adb", 384).create_table("Docs_1")]
    assert statements[0] == (
        'CREATE TABLE IF NOT EXISTS "chat_vec_docs_1" '
        "(id BIGINT PRIMARY KEY, embedding real[] NOT NULL)"
    )
    index = render(PgSql("adb", 384).create_index("Docs_1"))
    assert "USING ann(embedding) WITH (dim=384, distancemeasure=L2" in index
    assert "real[]" in render(PgSql("adb", 384).search("Docs_1"))
    assert vector_literal("adb", np.array([0.5, -1.0])) == "{0.5,-1}"


def test_pgvector_creates_vector_column_with_hnsw_index():
    (create,) = (render(s) for s in PgSql("pgvector", 8).create_table("k"))
    assert "embedding vector(8)" in create
    assert "USING hnsw (embedding vector_l2_ops)" in render(PgSql("pgvector", 8).create_index("k"))
    assert vector_literal("pgvector", np.array([0.25, 1.0])) == "[0.25,1]"


def test_the_stored_dimension_is_read_from_the_catalog_of_each_dialect():
    """pgvector: the vector(n) column's type modifier (tested on a real server in
    test_model_change); ADB: the ann index's WITH options as pg_class.reloptions holds them
    ('keyword=value' strings, PostgreSQL's catalog documentation), i.e. what create_index wrote."""
    query, params = PgSql("adb", 384).stored_dim("Docs_1")
    assert "reloptions" in query and params == ("chat_vec_docs_1_ann",)
    written = render(PgSql("adb", 384).create_index("Docs_1"))
    options = written.split("WITH (")[1].rstrip(")").replace(" ", "").split(",")
    assert parse_stored_dim("adb", options) == 384
    assert parse_stored_dim("adb", None) is None  # no index (yet): any dimension fits
    assert parse_stored_dim("pgvector", 1024) == 1024
    assert parse_stored_dim("pgvector", -1) is None and parse_stored_dim("pgvector", None) is None


# PostgreSQL 9.5+ syntax that ADB for PostgreSQL 6.0 (Greenplum 6, PostgreSQL 9.4) refuses.
NEWER_THAN_94 = [
    re.compile(r"CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?IF\s+NOT\s+EXISTS", re.I),
    re.compile(r"\bON\s+CONFLICT\b", re.I),
    re.compile(r"ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS", re.I),
    re.compile(r"\bDROP\s+COLUMN\s+IF\s+EXISTS", re.I),
    re.compile(r"\bTABLESAMPLE\b|\bSKIP\s+LOCKED\b|\bGENERATED\s+(ALWAYS|BY)", re.I),
]


def sql_strings(module) -> list[str]:
    """Every string literal of a module except docstrings: the SQL it can send."""
    tree = ast.parse(Path(module.__file__).read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_adb_sql_uses_only_postgresql_94_grammar():
    rendered = [render(s) for d in ("adb", "pgvector") for s in PgSql(d, 8).create_table("k")]
    rendered += [render(PgSql(d, 8).create_index("k")) for d in ("adb", "pgvector")]
    rendered += [render(getattr(PgSql("adb", 8), f)("k")) for f in ("copy", "search", "delete")]
    sources = sql_strings(base) + sql_strings(pg_store)
    assert any("INSERT INTO" in s for s in sources)  # the scan sees the SQL
    for statement in rendered + sources:
        for pattern in NEWER_THAN_94:
            assert not pattern.search(statement), f"{pattern.pattern!r} in {statement!r}"


@pytest.mark.parametrize("name", ["../x", "a/b", "", " ", "a\x00b", "x" * 101])
def test_table_names_refuse_unsafe_names(name):
    with pytest.raises(KnowledgeBaseNameError):
        table_name(name)


@pytest.mark.parametrize("name", ['a"; DROP TABLE x; --', "产品手册", "my docs", "team-a", "1a"])
def test_table_names_of_display_names_are_derived_ids(name):
    assert re.fullmatch(r"chat_vec_kb-[0-9a-f]{20}", table_name(name))


def test_identifier_names_keep_the_first_layout():
    # The previous code stored `<kb_root>/<name>/` and `chat_vec_<lower name>`.
    assert kb_storage_id("Samples_2") == "Samples_2"
    assert table_name("Samples_2") == "chat_vec_samples_2"


def test_kb_names_are_nfc_normalised_and_kept_otherwise():
    assert validate_kb_name("Cafe\u0301 手册") == "Caf\u00e9 手册"
    assert validate_kb_name(" 产品 手册（二）") == " 产品 手册（二）"
    assert kb_storage_id("Cafe\u0301") == kb_storage_id("Caf\u00e9")


def test_dialect_is_detected_from_the_server(pg_conninfo):
    with psycopg.connect(pg_conninfo) as conn:
        assert detect_dialect(conn) == "pgvector"


def test_chinese_text_splits_at_sentence_ends():
    text = "第一句话讲的是熊猫。第二句话讲的是竹子！第三句话讲的是山区？" * 3
    chunks = split_text(text, chunk_size=25, chunk_overlap=0)
    assert len(chunks) > 3
    assert all(c[-1] in "。！？" for c in chunks)
    assert all(len(c) <= 25 for c in chunks)


def test_title_enhance_prefixes_chunks_with_their_section():
    text = "熊猫的食物\n\n大熊猫每天要吃很多竹子，几乎不吃别的东西。它们一天中大部分时间都在进食。"
    chunks = split_text(text, chunk_size=30, chunk_overlap=0, zh_title_enhance=True)
    assert chunks[0] == "熊猫的食物"
    assert all(c.startswith("下文与(熊猫的食物)有关。") for c in chunks[1:])


def test_faiss_index_persists_atomically_and_reloads(tmp_path):
    directory = tmp_path / "vs"
    index = FaissIndex(directory, 4)
    vectors = np.eye(4, dtype=np.float32)
    index.add(np.array([10, 11, 12, 13]), vectors)
    index.delete([11])
    assert sorted(p.name for p in directory.iterdir()) == ["index.faiss"]
    reloaded = FaissIndex(directory, 4)
    assert reloaded.count() == 3
    hits = reloaded.search(vectors[2], 2)
    assert hits[0] == (12, 0.0)
    assert 11 not in [i for i, _ in reloaded.search(vectors[1], 3)]


def test_faiss_opens_an_index_of_another_dimension_and_refuses_it_vectors(tmp_path):
    """A model change to another dimension must not stop the service opening (and deleting
    from) the KBs of the model before; it is the vectors of the other size that are refused."""
    FaissIndex(tmp_path, 4).add(np.array([1, 2]), np.ones((2, 4), dtype=np.float32))
    index = FaissIndex(tmp_path, 8)
    assert index.stored_dim() == 4 and index.count() == 2
    with pytest.raises(ValueError, match="dimension 4, not 8.*recreate_vector_store"):
        index.add(np.array([3]), np.ones((1, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="dimension 4, not 8"):
        index.search(np.ones(8, dtype=np.float32), 1)
    index.delete([1])
    assert FaissIndex(tmp_path, 8).count() == 1
    index.drop()
    assert index.stored_dim() is None and FaissIndex(tmp_path, 8).stored_dim() is None
