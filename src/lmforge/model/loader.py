"""Load the tokenizer and the base model described by ``model:`` (the real ``from_pretrained``).

What this adds to ``from_pretrained``: ``builtin:`` names and GGUF files resolve to plain
safetensors directories (converted once, see ``model/gguf.py``); pickle-only checkpoints and
models that ship their own code are refused with a message naming the model unless the config
allows them; ``rope_scaling`` is written into the config's ``rope_parameters`` (transformers 5
renamed it) before the model is built; dtype, attention kernel (flash-attention checked up front)
and the quantized device map come from the device facts (training/device.py); QLoRA runs get a
bitsandbytes ``quantization_config`` (pass ``adapter=cfg.adapter``); new special tokens resize
the embeddings.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lmforge.config.model import ModelConfig
from lmforge.errors import ModelError
from lmforge.utils.builtin import resolve

log = logging.getLogger(__name__)


def model_dir(cfg: ModelConfig) -> str:
    """The directory (or hub id) to load from: ``builtin:`` names resolved, GGUF converted."""
    from lmforge.model.gguf import converted_dir, gguf_source

    path = resolve(cfg.path)
    source = gguf_source(path, cfg.gguf_file, cfg.revision)
    if source is not None:
        return str(converted_dir(source, cfg.cache_dir))
    return path


def check_weights_are_safe(path: str, allow_pickle: bool) -> None:
    """Refuse pickle-only checkpoints unless model.allow_pickle is set (pickle runs code)."""
    p = Path(path)
    if not p.is_dir():
        return
    has_safe = any(p.glob("*.safetensors")) or (p / "model.safetensors.index.json").is_file()
    has_pickle = any(p.glob("*.bin")) or any(p.glob("*.pt")) or any(p.glob("*.pth"))
    if has_pickle and not has_safe and not allow_pickle:
        raise ModelError(f"{p} has only pickle weights (.bin/.pt); loading them can run arbitrary "
                         "code", "convert them to safetensors, or set model.allow_pickle: true if "
                         "you trust the source")


def check_not_adapter(path: str) -> None:
    """Refuse a peft adapter where a model is loaded: transformers would load its base with the
    adapter unmerged, and the next save fails inside peft. (As ``model.path`` of a run, an
    earlier run's adapter is merged into its base before anything loads: model/chain.py.)"""
    if (Path(path) / "adapter_config.json").is_file():
        raise ModelError(f"'{path}' holds a peft adapter, not a model",
                         "as model.path of `lmforge train` it continues from that run "
                         "(docs/chaining.md); elsewhere, export it merged first: lmforge export "
                         "RUN --merge --out DIR")


def _remote_code_error(name: str, modules: list[str]) -> ModelError:
    what = f" ({', '.join(modules)})" if modules else ""
    return ModelError(f"model '{name}' ships its own Python code{what}, which runs only with "
                      "model.trust_remote_code: true",
                      "read that code first; set model.trust_remote_code: true only if you trust "
                      "its author")


def _is_native(file: str, data: dict) -> bool:
    """transformers has its own class for this model type / tokenizer class (then the model's
    shipped code is not needed, and transformers ignores it without trust_remote_code)."""
    if file == "config.json":
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        return data.get("model_type") in CONFIG_MAPPING_NAMES
    import transformers

    name = data.get("tokenizer_class") or ""
    return bool(name) and hasattr(transformers, name)


def check_remote_code(path: str, cfg: ModelConfig) -> None:
    """A local model that needs its own Python code (an ``auto_map`` to modules it ships, for a
    model type transformers does not know) is refused unless model.trust_remote_code is set."""
    if cfg.trust_remote_code:
        return
    for file in ("config.json", "tokenizer_config.json"):
        f = Path(path) / file
        if not f.is_file():
            continue
        data = json.loads(f.read_text(encoding="utf-8"))
        auto_map = data.get("auto_map") or {}
        refs = [r for v in auto_map.values() for r in (v if isinstance(v, list) else [v]) if r]
        if refs and not _is_native(file, data):
            mods = sorted({r.split("--")[-1].rsplit(".", 1)[0] + ".py" for r in refs})
            raise _remote_code_error(cfg.path, mods)


def rope_config(path: str, cfg: ModelConfig):
    """The model config with ``rope_scaling`` applied, or None when the config asks for none."""
    if cfg.rope_scaling is None:
        return None
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code,
                                        revision=cfg.revision)
    text = config.get_text_config()
    old = dict(getattr(text, "rope_parameters", None) or {})
    if old.get("rope_type", "default") not in ("default", cfg.rope_scaling.type):
        log.warning("model.rope_scaling replaces the model's own RoPE scaling '%s'",
                    old["rope_type"])
    new = {"rope_type": cfg.rope_scaling.type, "factor": float(cfg.rope_scaling.factor),
           "rope_theta": old.get("rope_theta", getattr(text, "rope_theta", 10000.0))}
    if "partial_rotary_factor" in old:
        new["partial_rotary_factor"] = old["partial_rotary_factor"]
    text.rope_parameters = new
    log.info("RoPE scaling: %s x%.3g", new["rope_type"], new["factor"])
    return config


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    path = model_dir(cfg)
    check_remote_code(path, cfg)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code,
                                            revision=cfg.revision)
    except (OSError, ValueError) as exc:
        raise _load_error("a tokenizer", cfg, exc) from exc
    if cfg.new_special_tokens:
        added = tok.add_special_tokens(
            {"extra_special_tokens": list(cfg.new_special_tokens)},
            replace_extra_special_tokens=False)
        log.info("added %d new special token(s): %s", added, ", ".join(cfg.new_special_tokens))
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token  # padded positions are masked out of the loss anyway
    return tok


def _load_error(what: str, cfg: ModelConfig, exc: Exception) -> ModelError:
    text = str(exc)
    if "trust_remote_code" in text:
        return _remote_code_error(cfg.path, [])
    first = text.splitlines()[0] if text else repr(exc)
    return ModelError(f"cannot load {what} from '{cfg.path}': {first}")


def load_model(cfg: ModelConfig, tokenizer=None, adapter=None, auto_class=None, *,
               facts=None, **extra):
    """Load the causal LM in the dtype and attention kernel of ``facts`` (training/device.py:
    a training run passes ``decide(run_cfg)``, which honours train.use_cpu; by default
    ``for_inference(cfg)``, the GPU when there is one). With ``adapter`` (the run's
    AdapterConfig) a QLoRA run gets its base quantized by bitsandbytes. ``auto_class`` loads
    another head (AutoModelForSequenceClassification for reward models)."""
    from transformers import AutoModelForCausalLM

    from lmforge.training.device import for_inference
    from lmforge.utils import cpu_tuning

    auto_class = auto_class or AutoModelForCausalLM

    path = model_dir(cfg)
    check_not_adapter(path)
    check_weights_are_safe(path, cfg.allow_pickle)
    check_remote_code(path, cfg)
    facts = facts or for_inference(cfg)
    cpu_tuning.apply(facts.use_cpu)  # a CPU process: GQA inside SDPA, malloc keeps freed memory
    kwargs = dict(trust_remote_code=cfg.trust_remote_code, revision=cfg.revision,
                  use_safetensors=None if cfg.allow_pickle else True, **facts.model_kwargs())
    config = rope_config(path, cfg)
    if config is not None:
        kwargs["config"] = config
    if adapter is not None and adapter.type == "qlora":
        from lmforge.model.quant import bnb_config

        kwargs["quantization_config"] = bnb_config(adapter.bits, adapter.quant_type,
                                                   adapter.double_quant, facts.torch_dtype())
        kwargs["device_map"] = facts.quant_device_map()
    kwargs.update(extra)
    try:
        model = auto_class.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error("model", cfg, exc) from exc
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        old = model.get_input_embeddings().weight.shape[0]
        model.resize_token_embeddings(len(tokenizer))
        model._lmforge_resized = True
        log.info("resized the embeddings from %d to %d tokens", old, len(tokenizer))
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    # remembered so that attach() can reload the base quantized if a caller forgot adapter=
    model._lmforge_source = (cfg, len(tokenizer) if tokenizer is not None else None,
                             auto_class, dict(extra, facts=facts))
    return model


def attention_kind(model) -> str:
    """The attention kernel a loaded model runs ("sdpa", "eager", "flash_attention_2", ...); row
    attention (model/row_attention.py) and float32 attention (model/float32_attention.py) run
    SDPA."""
    from lmforge.model import float32_attention, row_attention

    config = getattr(model, "config", None)
    kind = str(getattr(config, "_attn_implementation", None) or "")
    return "sdpa" if kind in (row_attention.NAME, float32_attention.NAME) else kind


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as the values they hold."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n = n * 2  # two 4-bit values are packed into one uint8 element
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
