"""Incremental decoding with the tiny model's byte-level tokenizer (real tokenizer, no model)."""

from __future__ import annotations

from transformers import AutoTokenizer

from llm_server.engines.base import IncrementalDecoder


def test_deltas_add_up_to_the_full_text_and_never_split_a_character(model_root):
    tokenizer = AutoTokenizer.from_pretrained(model_root / "Qwen-7B-Chat")
    text = "Héllo wörld, 你好 GPUs"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    deltas = [decoder.push([i]) for i in ids]
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)
    assert len([d for d in deltas if d]) > 1  # really incremental, not one blob at the end


def test_final_push_flushes_an_incomplete_character(model_root):
    tokenizer = AutoTokenizer.from_pretrained(model_root / "Qwen-7B-Chat")
    ids = tokenizer("好", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1  # byte-level: the character spans several tokens
    decoder = IncrementalDecoder(tokenizer)
    assert decoder.push(ids[:1]) == ""
    assert decoder.push([], final=True) != ""


def test_invalid_bytes_are_not_held_back_forever(model_root):
    tokenizer = AutoTokenizer.from_pretrained(model_root / "Qwen-7B-Chat")
    lone = tokenizer("好", add_special_tokens=False)["input_ids"][:1]  # a dangling lead byte
    decoder = IncrementalDecoder(tokenizer)
    outputs = [decoder.push(lone) for _ in range(IncrementalDecoder.MAX_CHAR_TOKENS)]
    assert outputs[:-1] == [""] * (IncrementalDecoder.MAX_CHAR_TOKENS - 1)
    assert "\ufffd" in outputs[-1]
