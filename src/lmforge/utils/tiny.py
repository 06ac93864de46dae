"""Build a tiny, deterministic causal LM + tokenizer fully offline.

Tests, examples and benchmarks use it when no real model is at hand (``lmforge tiny`` and
``model.path: builtin:tiny-llama``). The tokenizer is a byte-level BPE trained on a built-in
corpus, with distinct bos/eos/pad tokens and a ChatML chat template that marks assistant text with
``{% generation %}`` so ``apply_chat_template(..., return_assistant_tokens_mask=True)`` works.
With ``tools=True`` (``lmforge tiny --tools``, ``builtin:tiny-llama-tools``) the tokenizer carries
the built-in ``chatml_tools`` template instead (Qwen-style ``<tool_call>`` tags; ChatML when a
conversation has no tools), the tags are single tokens and the corpus holds tool-call JSON.
Linear output sizes are multiples of 32 so bitsandbytes 4-bit runs on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

BOS, EOS, PAD, IM_START, EOT = "<|bos|>", "<|im_end|>", "<|pad|>", "<|im_start|>", "<|endoftext|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IM_START, EOT]

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_CORPUS_WORDS = (
    "the of and to in is was for on that with as by at from it an be this are which or have not "
    "has but were they their one all we can you your he she his her will would there been more "
    "what when who how where why answer question instruction input output response system user "
    "assistant hello thanks please yes no good bad great terrible happy sad movie film review "
    "news sport business politics tech entertainment label topic summary translate classify "
    "apple banana cherry dog cat bird red green blue one two three four five six seven eight nine "
    "ten zero plus minus times equals number word sentence text data model train test learn "
    "because therefore reason step first then finally result true false"
).split()


def _corpus() -> list[str]:
    """A small deterministic corpus: words, numbers, punctuation, CJK, emoji, ChatML markup."""
    lines = []
    words = _CORPUS_WORDS
    for i in range(len(words)):
        chunk = " ".join(words[(i * 7 + j) % len(words)] for j in range(12))
        lines.append(chunk.capitalize() + ".")
        lines.append(f"Q: {words[i]}? A: {words[-i - 1]}! {i} + {i * 3} = {i * 4}")
    lines += ["你好，世界。今天天气很好。模型训练和评估。新闻分类：体育、财经、科技。",
              "答案是：A B C D 选项 问题 解释", "emoji 😀 🚀 ✓ café naïve — “quotes” ‘x’",
              "{\"key\": [1, 2, 3], \"ok\": true}", "def f(x):\n    return x * 2\n"]
    return lines * 3


TOOL_TAGS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>",
             "</tools>"]


def _tool_corpus() -> list[str]:
    """Tool-calling text, so JSON keys and punctuation get merges of their own."""
    names = ["get_weather", "calculate", "search", "convert", "lookup"]
    lines = []
    for i, name in enumerate(names):
        for word in _CORPUS_WORDS[i * 9:(i + 1) * 9]:
            lines.append(f'<tool_call>\n{{"name": "{name}", "arguments": {{"city": "{word}", '
                         f'"expression": "{i} + {i * 2}", "query": "{word}"}}}}\n</tool_call>')
            lines.append(f'{{"type": "function", "function": {{"name": "{name}", "description": '
                         f'"{word}", "parameters": {{"type": "object", "properties": {{"{word}": '
                         f'{{"type": "string"}}}}, "required": ["{word}"]}}}}}}')
    return lines * 3


def build_tokenizer(vocab_size: int = 1024, tools: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_corpus() + (_tool_corpus() if tools else []), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD, additional_special_tokens=[IM_START, EOT])
    fast.chat_template = CHATML_TEMPLATE
    if tools:
        from lmforge.data.templates import builtin_template

        fast.add_tokens(TOOL_TAGS)  # plain added tokens: decoding keeps them
        fast.chat_template = builtin_template("chatml_tools")
    fast.padding_side = "right"
    return fast


def _round_up(n: int, m: int = 32) -> int:
    return (n + m - 1) // m * m


def build_model(tokenizer, arch: str = "llama", hidden: int = 64, layers: int = 2,
                heads: int = 4, kv_heads: int = 2, seed: int = 0):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    classes = {"llama": LlamaConfig, "qwen2": Qwen2Config}
    if arch not in classes:
        from lmforge.errors import ConfigError
        raise ConfigError(f"--arch: unknown architecture '{arch}' (choose {', '.join(classes)})")
    head_dim = hidden // heads
    config = classes[arch](
        vocab_size=_round_up(len(tokenizer)), hidden_size=hidden,
        intermediate_size=_round_up(hidden * 2), num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
        max_position_embeddings=2048, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, dtype="float32",
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def build_tiny(out_dir: str | Path, arch: str = "llama", hidden: int = 64, layers: int = 2,
               vocab: int = 1024, seed: int = 0, tools: bool = False) -> Path:
    """Build and save a tiny model + tokenizer; returns the directory."""
    out = Path(out_dir)
    if hidden % 32 or hidden < 32:
        from lmforge.errors import ConfigError
        raise ConfigError(f"--hidden: must be a multiple of 32, at least 32 (got {hidden}); "
                          "bitsandbytes on the CPU needs linear outputs in multiples of 32")
    tokenizer = build_tokenizer(vocab, tools)
    heads = max(2, hidden // 16)
    model = build_model(tokenizer, arch, hidden, layers, heads=heads, kv_heads=max(1, heads // 2),
                        seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    (out / "lmforge_tiny.json").write_text(json.dumps(
        {"arch": arch, "hidden": hidden, "layers": layers, "vocab": vocab, "seed": seed,
         "tools": tools}))
    return out
