"""Hybrid retrieval: rank fusion, BM25 kept in step with the store, reranking, token windows."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from chat_server.kb.keyword import ChunkSource, KeywordIndexes, tokenize
from chat_server.kb.retrieval import Reranker, SearchOptions, fuse_rrf
from chat_server.kb.service import KnowledgeBaseError, KnowledgeService, SplitParams
from chat_server.kb.splitter import split_document
from chat_server.kb.spool import UploadSpool
from tests.conftest import AUTH, minilm_dir, new_kb_name

# MiniLM reads Chinese mostly as [UNK]: these two differ only in Chinese words.
LEAVE = "员工年假需要提前三天在办公系统提交申请，由直属主管审批后生效。"
PRINTER = "打印机卡纸时，先关闭电源，再打开侧门取出纸张，不要用力拉扯。"
VPN = "Remote staff connect through the VPN client with their company account."


def test_rrf_puts_ids_found_by_both_sides_first():
    fused = fuse_rrf([[1, 2, 3], [4, 3, 5]], rrf_k=60)
    ids = [i for i, _ in fused]
    assert ids[0] == 3  # rank 3 + rank 2 beats any single rank 1
    assert sorted(ids) == [1, 2, 3, 4, 5]
    assert ids.index(1) < ids.index(2) and ids.index(4) < ids.index(5)
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)


def test_rrf_of_one_ranking_keeps_its_order():
    assert [i for i, _ in fuse_rrf([[9, 7, 8], []])] == [9, 7, 8]


def test_tokens_are_chinese_words_and_lowercased_latin_words():
    tokens = tokenize("如何配置VPN客户端？The Kubernetes cluster!")
    assert "vpn" in tokens and "kubernetes" in tokens and "客户端" in tokens
    assert "the" not in tokens and "？" not in tokens and "如何" not in tokens


def test_request_options_override_the_deployment_and_bad_modes_are_refused():
    base = SearchOptions(mode="hybrid", rerank=False)
    assert base.with_request(None, None) == base
    assert base.with_request("vector", True) == SearchOptions(mode="vector", rerank=True)
    with pytest.raises(ValueError, match="search_mode='fuzzy'"):
        base.with_request("fuzzy", None)


def service_for(vs_type: str, root: Path, embedder, request, **extra) -> KnowledgeService:
    conninfo = request.getfixturevalue("pg_conninfo") if vs_type == "adb" else None
    return KnowledgeService(embedder, root, conninfo, vs_type, **extra)


def upload(service: KnowledgeService, kb: str, **files: str) -> None:
    with UploadSpool() as spool:  # uploads reach ingest as spool files on disk
        incoming = [spool.add_bytes(f"{name}.txt", text.encode()) for name, text in files.items()]
        service.ingest(kb, incoming, SplitParams())


def keyword_files(service: KnowledgeService, kb: str, query: str) -> list[str]:
    return [h.file_name for h in service.search(kb, query, 5, 1.0, "keyword")]


@pytest.mark.parametrize("vs_type", ["faiss", "adb"])
def test_keyword_side_follows_upload_delete_update_rebuild_and_restart(
    vs_type, tmp_path, embedder, request
):
    service = service_for(vs_type, tmp_path / "kb", embedder, request)
    kb = new_kb_name()
    service.create_kb(kb, vs_type, None)
    upload(service, kb, leave=LEAVE, printer=PRINTER)
    assert keyword_files(service, kb, "年假怎么审批")[0] == "leave.txt"
    tokenized = service._keywords.tokenized_chunks
    keyword_files(service, kb, "打印机卡纸")
    assert service._keywords.tokenized_chunks == tokenized  # unchanged store: no new work

    upload(service, kb, leave="年假改为提前一周申请。" + PRINTER)  # update replaces the chunks
    assert "员工" not in "".join(h.content for h in service.search(kb, "年假", 5, 1.0, "keyword"))
    service.delete_files(kb, ["printer.txt"], delete_content=True)
    assert keyword_files(service, kb, "打印机卡纸") == ["leave.txt"]
    service.reset_vectors(kb)
    assert keyword_files(service, kb, "年假") == []
    upload(service, kb, printer=PRINTER)
    service.close()

    restarted = service_for(vs_type, tmp_path / "kb", embedder, request)
    assert keyword_files(restarted, kb, "打印机卡纸") == ["printer.txt"]
    restarted.delete_kb(kb)
    restarted.create_kb(kb, vs_type, None)  # same name, ids start again at 1
    upload(restarted, kb, vpn=VPN)
    assert keyword_files(restarted, kb, "打印机卡纸") == []
    assert keyword_files(restarted, kb, "vpn client") == ["vpn.txt"]
    restarted.close()


def test_keyword_side_sees_writes_of_another_process(tmp_path, embedder, request):
    """Two services on one PostgreSQL database stand for two chat replicas."""
    writer = service_for("adb", tmp_path / "a", embedder, request)
    reader = service_for("adb", tmp_path / "b", embedder, request)
    kb = new_kb_name()
    writer.create_kb(kb, "adb", None)
    upload(writer, kb, leave=LEAVE)
    assert keyword_files(reader, kb, "打印机卡纸") == []
    upload(writer, kb, printer=PRINTER)
    assert keyword_files(reader, kb, "打印机卡纸") == ["printer.txt"]
    writer.close()
    reader.close()


def wait_for(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def large_kb_service(tmp_path, embedder) -> KnowledgeService:
    """A service whose keyword indexes treat every KB as large (rebuilt in the background)."""
    service = KnowledgeService(embedder, tmp_path / "kb")
    service._keywords = KeywordIndexes(sync_rebuild_chunks=0, rest_factor=0.0)
    return service


def test_a_large_kb_is_searched_by_keywords_while_its_index_rebuilds(tmp_path, embedder):
    """Above SYNC_REBUILD_CHUNKS a search never waits for a rebuild: it answers from the index
    it has while one thread rebuilds, and finds the new chunks once that is in."""
    service = large_kb_service(tmp_path, embedder)
    kb = new_kb_name()
    service.create_kb(kb, "faiss", None)
    upload(service, kb, leave=LEAVE)
    assert keyword_files(service, kb, "年假怎么审批") == ["leave.txt"]  # first build: waited for

    meta = service.get_kb(kb)[1]
    gate, reading = threading.Event(), threading.Event()

    def gated_texts(ids: list[int]) -> dict[int, str]:
        reading.set()
        assert gate.wait(60)
        return meta.chunk_texts(kb, ids)

    source = ChunkSource(
        signature=lambda: meta.chunk_signature(kb),
        chunk_ids=lambda: meta.iter_all_chunk_ids(kb),
        chunk_texts=gated_texts,
    )
    keywords = service._keywords
    upload(service, kb, printer=PRINTER)
    assert keywords.search(kb, "年假", 5, source)  # returns while the rebuild is held
    assert reading.wait(60)
    assert keywords.search(kb, "打印机卡纸", 5, source) == []  # the old index, not blocked
    builds = keywords.builds
    gate.set()
    wait_for(lambda: keywords.builds > builds)
    assert keyword_files(service, kb, "打印机卡纸") == ["printer.txt"]
    service.close()


def test_a_stale_keyword_index_never_returns_a_deleted_file(tmp_path, embedder):
    service = large_kb_service(tmp_path, embedder)
    service._keywords.rest_factor = 1e9  # after the first build, no rebuild starts
    kb = new_kb_name()
    service.create_kb(kb, "faiss", None)
    upload(service, kb, leave=LEAVE, printer=PRINTER)
    assert keyword_files(service, kb, "打印机卡纸") == ["printer.txt"]
    service.delete_files(kb, ["printer.txt"], delete_content=True)
    builds = service._keywords.builds
    assert keyword_files(service, kb, "打印机卡纸") == []  # matched by the stale index, dropped
    assert [h.file_name for h in service.search(kb, "打印机卡纸", 5, 2.0, "hybrid")] == [
        "leave.txt"
    ]
    assert service._keywords.builds == builds  # the rest held the rebuild back
    service._keywords.rest_factor = 0.0
    keyword_files(service, kb, "打印机卡纸")
    wait_for(lambda: service._keywords.builds > builds)
    assert (
        service._keywords.search(
            kb, "打印机卡纸", 5, ChunkSource.from_store(service.get_kb(kb)[1], kb)
        )
        == []
    )
    service.close()


def test_hybrid_deployments_build_keyword_indexes_at_start(tmp_path, embedder):
    first = KnowledgeService(embedder, tmp_path / "kb")
    kb = new_kb_name()
    first.create_kb(kb, "faiss", None)
    upload(first, kb, leave=LEAVE, printer=PRINTER)
    first.close()

    vector_only = KnowledgeService(embedder, tmp_path / "kb")
    vector_only.warm_keyword_indexes()  # SEARCH_MODE vector: nothing to warm
    assert vector_only._keywords.builds == 0
    vector_only.close()

    hybrid = KnowledgeService(embedder, tmp_path / "kb", search_options=SearchOptions("hybrid"))
    hybrid.warm_keyword_indexes()
    wait_for(lambda: hybrid._keywords.builds == 1)
    tokenized = hybrid._keywords.tokenized_chunks
    assert tokenized > 0
    assert keyword_files(hybrid, kb, "打印机卡纸") == ["printer.txt"]
    assert hybrid._keywords.tokenized_chunks == tokenized  # the first search paid nothing
    hybrid.close()


def docs(server, **body) -> list[dict]:
    response = httpx.post(f"{server.url}/knowledge_base/search_docs", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def test_hybrid_search_finds_what_vector_search_misses_and_keeps_distances(stack):
    kb = new_kb_name()
    service = stack.service
    service.create_kb(kb, stack.vs_type, None)
    upload(service, kb, leave=LEAVE, printer=PRINTER, vpn=VPN)
    query = "打印机卡纸怎么办"
    vector = docs(stack, knowledge_base_name=kb, query=query, top_k=3, score_threshold=2.0)
    hybrid = docs(stack, knowledge_base_name=kb, query=query, top_k=1, search_mode="hybrid")
    assert hybrid[0]["metadata"]["source"] == "printer.txt"
    ranking = hybrid[0]["metadata"]["ranking"]
    assert ranking["mode"] == "hybrid" and ranking["keyword_rank"] == 1
    # score keeps 0.2's meaning: the chunk's L2 distance, as vector search reports it
    same = next(d for d in vector if d["metadata"]["source"] == "printer.txt")
    assert hybrid[0]["score"] == pytest.approx(same["score"], abs=1e-4)
    assert "ranking" not in vector[0]["metadata"]  # 0.2's answer is unchanged by default


def test_score_threshold_bounds_only_the_vector_side(stack):
    kb = new_kb_name()
    stack.service.create_kb(kb, stack.vs_type, None)
    upload(stack.service, kb, leave=LEAVE, vpn=VPN)
    body = {"knowledge_base_name": kb, "query": "年假审批", "score_threshold": 0.0}
    assert docs(stack, **body) == []
    found = docs(stack, **body, search_mode="hybrid")
    assert [d["metadata"]["source"] for d in found] == ["leave.txt"]
    assert "vector_rank" not in found[0]["metadata"]["ranking"]


def test_rerank_without_a_reranker_is_a_clear_400(stack):
    kb = new_kb_name()
    stack.service.create_kb(kb, stack.vs_type, None)
    response = httpx.post(
        f"{stack.url}/knowledge_base/search_docs",
        json={"knowledge_base_name": kb, "query": "x", "rerank": True},
        headers=AUTH,
    )
    assert response.status_code == 400
    assert "RERANKER_MODEL" in response.json()["msg"]


def build_tiny_cross_encoder(directory: Path) -> Path:
    """A one-layer BERT cross-encoder with MiniLM's tokenizer: real loading and scoring code,
    weights that fit in a test (no reranker ships in a wheel; none can be downloaded)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / name, directory / name)
    return directory


def test_rerank_orders_candidates_by_the_cross_encoder(tmp_path, embedder):
    reranker = Reranker(build_tiny_cross_encoder(tmp_path / "ce"), 128, "cpu")
    service = KnowledgeService(embedder, tmp_path / "kb", reranker=reranker)
    kb = new_kb_name()
    service.create_kb(kb, "faiss", None)
    upload(service, kb, leave=LEAVE, printer=PRINTER, vpn=VPN)
    hits = service.search(kb, "年假 VPN", 3, 2.0, "hybrid", rerank=True)
    expected = reranker.score("年假 VPN", [h.content for h in hits])
    assert [h.ranking["rerank_score"] for h in hits if h.ranking] == pytest.approx(
        sorted(expected, reverse=True), abs=1e-5
    )
    assert reranker.pairs_scored >= 6
    service.close()


def test_missing_reranker_directory_is_named(tmp_path):
    with pytest.raises(RuntimeError, match="RERANKER_MODEL"):
        Reranker(tmp_path / "nothing")


def test_chunks_longer_than_the_token_window_are_cut_and_counted(embedder):
    window = embedder.token_window()
    assert window.max_tokens == 254  # MiniLM: max_seq_length 256 less [CLS] and [SEP]
    sentence = "数据备份每天凌晨两点执行，保留三十天。"
    text = "\n\n".join(f"第{n}节。" + sentence * 40 for n in range(3))
    plain = split_document(text, 750, 50)
    fitted = split_document(text, 750, 50, zh_title_enhance=True, window=window)
    assert max(window.count(plain.chunks)) > window.max_tokens
    assert fitted.clamped > 0 and len(fitted.chunks) > len(plain.chunks)
    assert max(window.count(fitted.chunks)) <= window.max_tokens
    assert split_document(text, 100, 20, window=window).clamped == 0


def test_upload_answer_says_when_chunk_size_was_clamped(stack):
    kb = new_kb_name()
    stack.service.create_kb(kb, stack.vs_type, None)
    long_text = "安全生产检查每周一次，发现隐患立即整改并登记。" * 60

    def post(name: str, chunk_size: int) -> dict:
        response = httpx.post(
            f"{stack.url}/knowledge_base/upload_docs",
            data={"knowledge_base_name": kb, "chunk_size": chunk_size, "chunk_overlap": 50},
            files=[("files", (name, long_text.encode()))],
            headers=AUTH,
        )
        assert response.status_code == 200, response.text
        return response.json()

    clamped = post("long.txt", 750)
    assert "254 tokens" in clamped["msg"]
    assert clamped["data"]["chunk_size_clamped"]["files"]["long.txt"] > 0
    assert "chunk_size_clamped" not in post("short.txt", 200)["data"]
    window = stack.service.token_window
    chunks = [h.content for h in stack.service.search(kb, "安全生产", 100, 2.0)]
    assert chunks and max(window.count(chunks)) <= window.max_tokens


def test_search_options_are_rejected_on_bad_input(stack, tmp_path):
    kb = new_kb_name()
    stack.service.create_kb(kb, stack.vs_type, None)
    response = httpx.post(
        f"{stack.url}/knowledge_base/search_docs",
        json={"knowledge_base_name": kb, "query": "x", "search_mode": "fuzzy"},
        headers=AUTH,
    )
    assert response.status_code == 422
    with pytest.raises(KnowledgeBaseError, match="search_mode"):
        stack.service.search(kb, "x", 3, 1.0, "fuzzy")
