"""GGUF models: find the file, convert it once to a plain safetensors directory, describe it.

transformers loads a GGUF with ``from_pretrained(dir, gguf_file=name)`` (de-quantizing it to
float), but the model it returns carries a GGUF quantizer: it cannot be ``save_pretrained`` and the
Trainer treats it as quantized. So we load it once, drop the quantizer (the weights are plain
float tensors by then), and save model + tokenizer + generation config as an ordinary safetensors
directory under ``model.cache_dir`` or ``$LMFORGE_CACHE/converted/<name>-<key>``. The key is a hash
of the file's path, size and modification time, so an edited file converts again and everything
else reuses the directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from lmforge.errors import ModelError, require

log = logging.getLogger(__name__)

MARKER = "lmforge_gguf_source.json"


def gguf_source(path: str, gguf_file: str | None, revision: str | None = None) -> Path | None:
    """The GGUF file a model path refers to (``dir`` + ``gguf_file``, or a ``.gguf`` path)."""
    if gguf_file is None and not path.lower().endswith(".gguf"):
        return None
    file = Path(path) / gguf_file if gguf_file else Path(path)
    if file.is_file():
        return file.resolve()
    if gguf_file and not Path(path).exists():  # a hub id: only from the local cache (offline)
        try:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(path, gguf_file, revision=revision))
        except Exception as exc:  # noqa: BLE001 - any hub failure means "not available here"
            raise ModelError(f"GGUF file '{gguf_file}' of '{path}' is not available: "
                             f"{exc}") from exc
    raise ModelError(f"GGUF file not found: {file}",
                     "model.path is a directory and model.gguf_file a file name inside it, or "
                     "model.path is the .gguf file itself")


def cache_key(file: Path) -> str:
    st = file.stat()
    raw = f"{file.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def converted_dir(file: Path, cache_dir: str | None = None) -> Path:
    """The converted directory for ``file``, converting it first if needed (once; locked)."""
    from lmforge.utils.cachedir import cache_root
    from lmforge.utils.locks import file_lock

    root = Path(cache_dir) if cache_dir else cache_root() / "converted"
    out = root / f"{file.stem}-{cache_key(file)}"
    if (out / MARKER).is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(out.with_suffix(".lock")):
        if not (out / MARKER).is_file():
            tmp = out.with_name(out.name + f".tmp{os.getpid()}")
            convert(file, tmp)
            if out.exists():  # an interrupted earlier conversion without its marker
                import shutil

                shutil.rmtree(out)
            os.replace(tmp, out)
    return out


def convert(file: Path, out: Path) -> Path:
    """Load ``file`` through transformers' GGUF loader and save a plain safetensors directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    require("gguf", "gguf", "loading GGUF models")
    log.info("converting %s to safetensors in %s (once; later runs reuse it)", file.name, out)
    try:
        tok = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
        model = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name,
                                                     dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load GGUF file {file}: {exc}",
                         "transformers supports GGUF files of common architectures (llama, "
                         "mistral, qwen2, ...); check `lmforge info FILE.gguf`") from exc
    strip_quantizer(model)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id = tok.bos_token_id, tok.eos_token_id
    gen.pad_token_id = tok.pad_token_id
    gen.save_pretrained(str(out))
    st = file.stat()
    (out / MARKER).write_text(json.dumps({"gguf_file": str(file), "size": st.st_size,
                                          "mtime_ns": st.st_mtime_ns}, indent=2))
    return out


def strip_quantizer(model) -> None:
    """Forget the GGUF quantizer of a de-quantized model so that it saves and trains as plain."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    try:
        return field.contents()
    except (ValueError, IndexError, TypeError):
        return default


def gguf_info(file: str | Path) -> dict:
    """Facts about a GGUF file from its header (nothing is de-quantized)."""
    require("gguf", "gguf", "reading GGUF files")
    from collections import Counter

    from gguf import GGUFReader, LlamaFileType

    file = Path(file)
    if not file.is_file():
        raise ModelError(f"GGUF file not found: {file}")
    reader = GGUFReader(str(file))
    arch = _field(reader, "general.architecture", "?")
    ftype = _field(reader, "general.file_type")
    try:
        ftype_name = LlamaFileType(ftype).name if ftype is not None else None
    except ValueError:
        ftype_name = str(ftype)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    kinds = Counter(t.tensor_type.name for t in reader.tensors)
    return {
        "path": str(file), "format": "gguf", "gguf_version": _field(reader, "GGUF.version"),
        "architecture": arch, "name": _field(reader, "general.name"),
        "file_type": ftype_name, "tensor_types": dict(kinds.most_common()),
        "layers": _field(reader, f"{arch}.block_count"),
        "hidden_size": _field(reader, f"{arch}.embedding_length"),
        "attention_heads": _field(reader, f"{arch}.attention.head_count"),
        "kv_heads": _field(reader, f"{arch}.attention.head_count_kv"),
        "vocab_size": _field(reader, f"{arch}.vocab_size",
                             len(tokens.data) if tokens is not None else None),
        "context_length": _field(reader, f"{arch}.context_length"),
        "parameters": sum(int(t.n_elements) for t in reader.tensors),
        "file_bytes": file.stat().st_size,
        "chat_template": "tokenizer.chat_template" in reader.fields,
    }
