"""Write a tiny random Llama-style model directory, as `save_pretrained` writes one.

    python examples/models/make_tiny_llama.py [OUT_DIR]     # default: examples/models/tiny-llama

The hf examples point at examples/models/tiny-llama. In real use that is a model you downloaded
(e.g. `huggingface-cli download Qwen/Qwen2.5-0.5B --local-dir models/qwen`) or a volume holding
one; this script stands in for it without network access: a byte-level BPE tokenizer (512
tokens, with a chat template) trained on the example instructions, and a 2-layer Llama with
random weights (about 60 thousand parameters).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]


def corpus() -> list[str]:
    lines = (HERE.parent / "data" / "instruct.jsonl").read_text().splitlines()
    texts = [v for line in lines for v in json.loads(line).values()]
    return [*texts, "The quick brown fox jumps over the lazy dog. 0123456789"]


def tokenizer(vocab: int = 512, chat_template: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>",
        chat_template=CHAT_TEMPLATE if chat_template else None)


def write(out: Path, *, vocab: int = 512, layers: int = 2, hidden: int = 32,
          chat_template: bool = True, seed: int = 0) -> Path:
    """The model directory (config.json, model.safetensors, tokenizer files)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer(vocab, chat_template)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "tiny-llama"
    print(write(target))
