"""The tokenizer half of a GGUF file: vocabulary, merges, token types, special ids, chat template.

Byte-level BPE tokenizers (GPT-2 style: Llama 3, Qwen2, SmolLM2, lmforge's tiny models) are
written as llama.cpp's ``gpt2`` tokenizer model: the vocabulary in the byte alphabet, the merges,
and ``tokenizer.ggml.pre`` naming the pre-tokenizer, read from the tokenizer's own
``tokenizer.json`` (llama.cpp and transformers' GGUF reader both pick their split regex by that
name). Sentencepiece-style BPE (Llama 2 / Mistral: ``▁`` words, ``<0xNN>`` byte fallback) is
written as llama.cpp's ``llama`` model, with the merges and a score per token (minus its id, the
order sentencepiece ranks them in).

The chat template goes in as the tokenizer renders it, minus lmforge's ``{% generation %}``
markers (they render no text; llama.cpp's Jinja engine does not know the tag). ``eot_token_id``
is the template's end-of-turn token (``<|im_end|>``, ``<|eot_id|>``), so llama.cpp and Ollama stop
where the fine-tuned model was taught to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from lmforge.errors import LmforgeError

# llama.cpp's pre-tokenizer names for the split regexes tokenizer.json files carry
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
          r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
           r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLITS = {_QWEN2: "qwen2", _LLAMA3: "llama-bpe"}
_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


class VocabError(LmforgeError):
    exit_code = 2
    default_hint = "export a transformers model instead (lmforge export RUN --out DIR --merge)"


@dataclass
class Vocab:
    model: str  # "gpt2" or "llama"
    pre: str | None
    tokens: list[str]
    types: list[int]
    merges: list[str]
    scores: list[float] | None = None
    special_ids: dict[str, int] = field(default_factory=dict)  # bos, eos, eot, unk, pad
    add_bos: bool = False
    chat_template: str | None = None
    notes: list[str] = field(default_factory=list)


def strip_generation_markers(template: str) -> str:
    return _GENERATION_TAG.sub("", template)


def _pre_name(pre: dict | None, notes: list[str]) -> str:
    """llama.cpp's name for the pre-tokenizer of a byte-level BPE ``tokenizer.json``."""
    parts = (pre or {}).get("pretokenizers") if (pre or {}).get("type") == "Sequence" else [pre]
    parts = [p for p in parts or [] if p]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Split", "ByteLevel"]:
        regex = (parts[0].get("pattern") or {}).get("Regex")
        if regex in SPLITS:
            return SPLITS[regex]
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"  # digits one by one, then GPT-2's split (StarCoder / SmolLM)
    notes.append(f"the tokenizer's pre-tokenizer ({'+'.join(map(str, kinds)) or 'none'}) has no "
                 "llama.cpp name; written as 'default', so llama.cpp may split text into "
                 "words differently than transformers")
    return "default"


def _merges(model: dict) -> list[str]:
    return [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]


def _tokens(tokenizer, size: int) -> tuple[list[str], list[int], dict[int, bool]]:
    import gguf

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {i: bool(getattr(t, "special", False))
             for i, t in (tokenizer.added_tokens_decoder or {}).items()}
    if max(by_id) >= size:
        raise VocabError(f"the tokenizer has token id {max(by_id)} but the model's vocab_size is "
                         f"{size}", "resize the embeddings to the tokenizer first")
    tokens, types = [], []
    for i in range(size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types], added


def _special_ids(tokenizer, template: str | None) -> dict[str, int]:
    ids = {name: getattr(tokenizer, f"{name}_token_id", None)
           for name in ("bos", "eos", "unk", "pad")}
    if template:
        from lmforge.data.templates import TemplateError, end_of_turn_id

        try:
            ids["eot"] = end_of_turn_id(template, tokenizer)
        except TemplateError:  # a template lmforge cannot analyse: EOS alone ends turns
            pass
    return {k: int(v) for k, v in ids.items() if v is not None}


def _adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    ids = tokenizer("a")["input_ids"]
    return bos is not None and bool(ids) and ids[0] == bos


def build_vocab(tokenizer, vocab_size: int, template: str | None) -> Vocab:
    """Everything a GGUF needs to tokenize like ``tokenizer`` and stop like ``template``."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise VocabError("GGUF export needs a fast (tokenizers) tokenizer; this one is "
                         f"{type(tokenizer).__name__}")
    spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise VocabError(f"GGUF export supports BPE tokenizers; this one is "
                         f"{model.get('type')}")
    notes: list[str] = []
    tokens, types, added = _tokens(tokenizer, vocab_size)
    if model.get("byte_fallback"):  # sentencepiece-style BPE (Llama 2, Mistral)
        import gguf

        types = [int(gguf.TokenType.BYTE) if re.fullmatch(r"<0x[0-9A-F]{2}>", t) and i not in added
                 else ty for i, (t, ty) in enumerate(zip(tokens, types))]
        vocab = Vocab("llama", None, tokens, types, _merges(model),
                      scores=[-float(i) for i in range(vocab_size)], notes=notes)
    else:
        vocab = Vocab("gpt2", _pre_name(spec.get("pre_tokenizer"), notes), tokens, types,
                      _merges(model), notes=notes)
    vocab.chat_template = strip_generation_markers(template) if template else None
    vocab.special_ids = _special_ids(tokenizer, template)
    vocab.add_bos = _adds_bos(tokenizer)
    return vocab


def write_vocab(writer, vocab: Vocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.merges:
        writer.add_token_merges(vocab.merges)
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id,
              "unk": writer.add_unk_token_id, "pad": writer.add_pad_token_id,
              "eot": writer.add_eot_token_id}
    for name, token_id in vocab.special_ids.items():
        adders[name](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(False)
    if vocab.model == "llama":
        writer.add_add_space_prefix(True)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
