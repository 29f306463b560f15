"""Build a tiny random-weight Qwen2 model with a trained tokenizer and a chat template.

It lets the image, the tests and the benchmark run the whole serving path on a CPU without
downloading weights: ``python -m llm_server.tiny_model /llm-model/tiny-qwen2``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# ChatML, the format Qwen chat models use; kept short so prompts stay small.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Alibaba Cloud runs GPU instances for large language model inference.",
    "A knowledge base answers questions from documents it has indexed.",
    "Kubernetes schedules pods on nodes with enough memory and GPUs.",
    "Streaming responses send tokens to the client as soon as they are ready.",
    "Hello, how are you today? I am fine, thank you.",
]


def build_tiny_model(
    target: Path, *, vocab_size: int = 512, layers: int = 2, hidden: int = 64, seed: int = 0
) -> Path:
    """Write a loadable Hugging Face model directory to ``target`` and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    target.mkdir(parents=True, exist_ok=True)
    raw = Tokenizer(models.BPE(unk_token=None))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(target)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=_token_id(tokenizer, "<|im_end|>"),
        pad_token_id=_token_id(tokenizer, "<|endoftext|>"),
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(config).save_pretrained(target)
    (target / "tiny_model.json").write_text(json.dumps({"built_by": "llm_server.tiny_model"}))
    return target


def _token_id(tokenizer: Any, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int):
        raise TypeError(f"{token!r} is not one token of the tiny tokenizer")
    return token_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", type=Path, help="directory to write the model into")
    parser.add_argument("--hidden", type=int, default=64, help="width (4 attention heads)")
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    built = build_tiny_model(args.target, hidden=args.hidden, layers=args.layers)
    print(json.dumps({"event": "tiny_model_built", "path": str(built)}))


if __name__ == "__main__":
    main()
