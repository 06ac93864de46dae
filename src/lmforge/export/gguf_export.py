"""``lmforge export RUN --gguf``: one GGUF file of the merged model, plus an Ollama Modelfile.

The source (run, checkpoint, adapter or model directory) is merged in float32 exactly as for
``--merge`` (``merge.load_merged``), then written as ``OUT/model.gguf`` with the ``gguf`` package:
weights (``gguf_writer``: llama.cpp names, q/k permutation, F32/F16/BF16/Q8_0/Q5/Q4 types) and
tokenizer (``gguf_vocab``: vocabulary, merges, special ids, end-of-turn id, chat template). Next to
it: ``Modelfile`` (``modelfile``: the chat template translated to Ollama's template language),
``README.md`` and ``lmforge_export.json``.

Supported architectures: llama, mistral (written as llama.cpp's ``llama``, as llama.cpp does) and
qwen2; any other is refused before the model is loaded.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from lmforge.export.gguf_writer import GGUFExportError, check_arch, check_type
from lmforge.export.merge import ExportResult

log = logging.getLogger(__name__)
GGUF_NAME = "model.gguf"


def _run_data(src) -> dict:
    """The run's ``data:`` section as saved with it ({} for a plain model directory)."""
    import yaml

    from lmforge.config.constants import RUN_CONFIG_FILE

    if src.run_dir is None or not (src.run_dir / RUN_CONFIG_FILE).is_file():
        return {}
    tree = yaml.safe_load((src.run_dir / RUN_CONFIG_FILE).read_text(encoding="utf-8")) or {}
    data = tree.get("data") if isinstance(tree, dict) else None
    return data if isinstance(data, dict) else {}


def _run_system(src) -> str | None:
    """The run's ``data.system`` (the default system prompt its rows were rendered with)."""
    system = _run_data(src).get("system")
    return system if isinstance(system, str) and system else None


def _template(src, tokenizer) -> str | None:
    from lmforge.data.templates import resolve_template

    if src.base.template != "auto":
        # a named built-in, re-resolved as the run trained with it (with or without the
        # template's default system turn: data.template_system)
        return resolve_template(src.base.template, tokenizer,
                                _run_data(src).get("template_system", "keep"))
    template = getattr(tokenizer, "chat_template", None)
    return template.get("default") if isinstance(template, dict) else template


def _base_config(src):
    from transformers import AutoConfig

    from lmforge.model.loader import model_dir

    return AutoConfig.from_pretrained(str(model_dir(src.base)))


def write_gguf(model, tokenizer, path: Path, gguf_type: str, template: str | None,
               name: str) -> dict:
    """Write ``model`` + ``tokenizer`` to ``path``; returns facts for the summary."""
    import gguf

    from lmforge.export.gguf_vocab import build_vocab, write_vocab
    from lmforge.export.gguf_writer import file_type, write_hparams, write_tensors

    arch = check_arch(model.config)
    vocab = build_vocab(tokenizer, model.config.vocab_size, template)
    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch.name)
    try:
        writer.add_name(name)
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_file_type(file_type(gguf_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        write_hparams(writer, model.config, arch)
        write_vocab(writer, vocab)
        counts = write_tensors(writer, model, arch, gguf_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
    finally:
        writer.close()
    os.replace(tmp, path)
    return {"architecture": arch.name, "tensor_types": counts, "add_bos": vocab.add_bos,
            "special_ids": vocab.special_ids, "tokenizer_pre": vocab.pre, "notes": vocab.notes}


def _card(out: Path, src, info: dict) -> None:
    from lmforge.export.card import write_card

    card = write_card(out, src, dict(info, artifact="model", dtype=f"GGUF {info['gguf_type']}"))
    text = card.read_text(encoding="utf-8").replace("library_name: transformers",
                                                    "library_name: gguf")
    text = text[:text.index("## Use")] if "## Use" in text else text
    text += ("## Use\n\n```bash\n"
             f"llama-cli -m {GGUF_NAME} -cnv            # llama.cpp\n"
             "ollama create my-model -f Modelfile && ollama run my-model   # Ollama\n```\n\n"
             "```python\nfrom transformers import AutoModelForCausalLM\n"
             f"model = AutoModelForCausalLM.from_pretrained(PATH, gguf_file='{GGUF_NAME}')\n```\n")
    card.write_text(text, encoding="utf-8")


def export_gguf(source: str | Path, out: str | Path, gguf_type: str = "f16",
                dequantize: bool = False, base: str | None = None) -> ExportResult:
    """Export ``source`` as ``out/model.gguf`` + ``out/Modelfile`` (see the module docstring)."""
    from lmforge.export.merge import ExportError, _check, _tokenizer, load_merged
    from lmforge.export.modelfile import modelfile_text, translate
    from lmforge.export.source import inspect_source
    from lmforge.errors import require

    require("gguf", "gguf", "GGUF export")
    gguf_type = check_type(gguf_type)
    src = inspect_source(source, base)
    out = Path(out)
    if out.resolve() == src.path.resolve():
        raise ExportError("--out must differ from the source directory")
    if src.kind == "adapter" and not src.mergeable:
        raise GGUFExportError(f"--gguf: a {src.method} adapter adds virtual tokens instead of "
                              "changing weights, so it cannot be merged into a GGUF file",
                              "export the adapter with lmforge export (without --gguf)")
    notes = _check(src, True, None, dequantize) if src.kind == "adapter" else []
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"--out {out}: exists and is not empty", "choose a new directory")
    check_arch(_base_config(src))  # before loading any weights
    tokenizer = _tokenizer(src)
    template = _template(src, tokenizer)
    model = load_merged(src, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    facts = write_gguf(model, tokenizer, out / GGUF_NAME, gguf_type, template, out.name)
    notes += facts.pop("notes")
    tr = translate(template, tokenizer, add_bos=facts["add_bos"], system=_run_system(src))
    (out / "Modelfile").write_text(modelfile_text(GGUF_NAME, tr), encoding="utf-8")
    if tr.family is None:
        notes += tr.notes
        log.warning("Modelfile: %s", tr.notes[0])
    result = ExportResult(out, "gguf", merged=src.kind == "adapter", messages=notes)
    result.info = {"source": str(src.path), "base": src.base.path, "method": src.method,
                   "artifact": "gguf", "merged": result.merged, "gguf_type": gguf_type,
                   "gguf_file": GGUF_NAME, "size_bytes": (out / GGUF_NAME).stat().st_size,
                   "modelfile": "Modelfile", "template_family": tr.family,
                   "system": tr.system, "stops": tr.stops, "dequantized": bool(dequantize),
                   "stage": src.stage, **facts}
    (out / "lmforge_export.json").write_text(json.dumps(result.info, indent=2), encoding="utf-8")
    _card(out, src, result.info)
    return result
