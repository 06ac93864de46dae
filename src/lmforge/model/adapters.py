"""Attach the training method (``adapter:``) to a loaded base model, all through peft.

``attach(model, cfg.adapter)`` returns the model ready to train: ``full`` trains every weight,
``freeze`` only the last N decoder layers and/or named modules, and the peft methods (``lora`` with
DoRA/rsLoRA flags, ``qlora``, ``adalora``, ``prompt_tuning``, ``p_tuning``, ``prefix_tuning``)
wrap it in a ``PeftModel``; ``adapter.path`` continues a saved adapter. Everything a stage needs
for a method beyond the model itself comes from ``callbacks(model, cfg.adapter)`` (AdaLoRA's rank
schedule), so stages stay generic. QLoRA wants its base loaded quantized
(``load_model(cfg.model, tokenizer, adapter=cfg.adapter)``); given a float base, attach reloads it
quantized rather than silently training plain LoRA.
"""

from __future__ import annotations

import logging

from lmforge.config.adapter import AdapterConfig
from lmforge.errors import ConfigError, ModelError
from lmforge.model.lora_layers import layer_list, layer_options

log = logging.getLogger(__name__)

PEFT_TYPES = {"lora": "LORA", "qlora": "LORA", "adalora": "ADALORA",
              "prompt_tuning": "PROMPT_TUNING", "p_tuning": "P_TUNING",
              "prefix_tuning": "PREFIX_TUNING"}
MERGEABLE = {"LORA", "ADALORA"}


def _targets(cfg: AdapterConfig):
    return cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)


def lora_config(cfg: AdapterConfig, modules_to_save: list[str] | None = None, model=None):
    from peft import LoraConfig, TaskType

    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.r, lora_alpha=cfg.alpha,
                        lora_dropout=cfg.dropout, **layer_options(cfg, model, _targets(cfg)),
                        modules_to_save=modules_to_save or None,
                        use_dora=cfg.use_dora, use_rslora=cfg.use_rslora)
    if cfg.uses_fused:  # qlora's quantized layers stay peft's own
        from lmforge.model.fused_lora import register

        register(config)
    return config


def adalora_config(cfg: AdapterConfig, modules_to_save: list[str] | None = None, model=None):
    from peft import AdaLoraConfig, TaskType

    # total_step is only known once the Trainer has counted the steps: AdaLoraSchedule sets it
    total = cfg.total_step or cfg.tinit + cfg.tfinal + 1
    return AdaLoraConfig(task_type=TaskType.CAUSAL_LM, init_r=cfg.r, target_r=cfg.target_r,
                         lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                         **layer_options(cfg, model, _targets(cfg)),
                         modules_to_save=modules_to_save or None,
                         tinit=cfg.tinit, tfinal=cfg.tfinal, deltaT=cfg.delta_t, total_step=total)


def prompt_config(cfg: AdapterConfig, model):
    import peft

    common = dict(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=cfg.num_virtual_tokens)
    if cfg.type == "prefix_tuning":
        return peft.PrefixTuningConfig(**common)
    if cfg.type == "p_tuning":
        return peft.PromptEncoderConfig(encoder_hidden_size=cfg.encoder_hidden_size, **common)
    if cfg.prompt_init_text:
        return peft.PromptTuningConfig(prompt_tuning_init=peft.PromptTuningInit.TEXT,
                                       prompt_tuning_init_text=cfg.prompt_init_text,
                                       tokenizer_name_or_path=model.name_or_path, **common)
    return peft.PromptTuningConfig(prompt_tuning_init=peft.PromptTuningInit.RANDOM, **common)


def peft_config(cfg: AdapterConfig, model):
    """The peft config for a new adapter of type ``cfg.type``."""
    save = list(cfg.modules_to_save) or _new_token_modules(model)
    if cfg.type in ("lora", "qlora"):
        return lora_config(cfg, save, model)
    if cfg.type == "adalora":
        return adalora_config(cfg, save, model)
    return prompt_config(cfg, model)


def _new_token_modules(model) -> list[str]:
    """When new special tokens grew the vocabulary, their embedding rows must train too."""
    if not getattr(model, "_lmforge_resized", False):
        return []
    names = {id(m): n.rsplit(".", 1)[-1] for n, m in model.named_modules()}
    save = [names[id(m)] for m in (model.get_input_embeddings(), model.get_output_embeddings())
            if m is not None and id(m) in names]
    log.info("new special tokens: training %s fully (adapter.modules_to_save)", ", ".join(save))
    return save


def _freeze(model, cfg: AdapterConfig):
    layers = layer_list(model)
    n_layers = len(model.get_submodule(layers))
    if cfg.trainable_layers > n_layers:
        log.warning("adapter.trainable_layers=%d but the model has %d layers: training all",
                    cfg.trainable_layers, n_layers)
    keep = [f"{layers}.{i}" for i in range(max(0, n_layers - cfg.trainable_layers), n_layers)]
    wanted = keep + list(cfg.trainable_modules)
    hits = dict.fromkeys(cfg.trainable_modules, 0)
    for name, param in model.named_parameters():
        dotted = f".{name}."
        match = [m for m in wanted if f".{m}." in dotted]
        param.requires_grad = bool(match)
        for m in match:
            if m in hits:
                hits[m] += 1
    missing = [m for m, n in hits.items() if n == 0]
    if missing:
        raise ConfigError([f"adapter.trainable_modules: no parameter of the model lies in a module "
                           f"named '{m}'" for m in missing])
    return model


def _quantized_base(model, cfg: AdapterConfig):
    """The base loaded k-bit for QLoRA: as given, or reloaded if a caller passed a float model."""
    from lmforge.model.quant import quantized_bits

    if quantized_bits(model) is not None:
        return model
    source = getattr(model, "_lmforge_source", None)
    if source is None:
        raise ModelError("adapter.type qlora: the base model is not quantized",
                         "load it with lmforge.model.loader.load_model(cfg.model, tokenizer, "
                         "adapter=cfg.adapter)")
    from lmforge.model.loader import load_model

    model_cfg, vocab, auto_class, extra = source
    log.warning("qlora: the base was loaded unquantized; reloading it in %d-bit (pass adapter= "
                "to load_model to load it once)", cfg.bits)
    quantized = load_model(model_cfg, None, adapter=cfg, auto_class=auto_class, **extra)
    if vocab and vocab > quantized.get_input_embeddings().weight.shape[0]:
        quantized.resize_token_embeddings(vocab)
    quantized._lmforge_resized = getattr(model, "_lmforge_resized", False)
    return quantized


def _continue(model, cfg: AdapterConfig):
    import json
    from pathlib import Path

    from peft import PeftModel

    cfg_file = Path(cfg.path) / "adapter_config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"adapter.path: '{cfg.path}' is not a saved peft adapter (no "
                          "adapter_config.json)")
    saved = json.loads(cfg_file.read_text(encoding="utf-8")).get("peft_type")
    if saved != PEFT_TYPES[cfg.type]:
        raise ConfigError(f"adapter.path: '{cfg.path}' holds a {saved} adapter but adapter.type "
                          f"is '{cfg.type}'")
    log.info("continuing training of the %s adapter in %s", saved, cfg.path)
    return PeftModel.from_pretrained(model, cfg.path, is_trainable=True)


def attach(model, cfg: AdapterConfig):
    """Return the model ready to train with the configured method."""
    if cfg.type == "full":
        for p in model.parameters():
            p.requires_grad = True
        return model
    if cfg.path and not cfg.is_peft:
        raise ConfigError(f"adapter.path continues a peft adapter; for adapter.type "
                          f"'{cfg.type}' set model.path to the earlier run's output instead")
    if cfg.type == "freeze":
        return _freeze(model, cfg)
    problem = cannot_learn(cfg, getattr(model, "name_or_path", None))
    if problem:
        log.warning("%s", problem)
    if cfg.type == "qlora":
        from lmforge.model.quant import prepare_kbit

        model = prepare_kbit(_quantized_base(model, cfg))
    if cfg.path:
        return _continue(model, cfg)
    from peft import get_peft_model

    try:
        peft_model = get_peft_model(model, peft_config(cfg, model))
    except ValueError as exc:
        raise ConfigError(f"adapter: peft rejected the {cfg.type} settings: {exc}") from exc
    log.info("adapter %s attached", cfg.type)
    return peft_model


RANDOM_MARKER = "lmforge_tiny.json"  # written by utils/tiny.build_tiny: random weights


def random_init(path: str | None) -> bool:
    """The model at ``path`` (a directory or ``builtin:<name>``) has random weights: a tiny
    built-in, or any model ``lmforge tiny`` built (both carry the tiny builder's marker)."""
    from pathlib import Path

    from lmforge.utils.builtin import BUILTINS, PREFIX, builtin_dir, is_builtin

    if not path:
        return False
    if is_builtin(path):
        name = path[len(PREFIX):]
        if name not in BUILTINS:
            return False
        if (builtin_dir(name) / "config.json").is_file():
            return (builtin_dir(name) / RANDOM_MARKER).is_file()
        return "random" in BUILTINS[name].description  # not built yet: the registry says
    return (Path(path) / RANDOM_MARKER).is_file()


def cannot_learn(cfg: AdapterConfig, model_path: str | None) -> str | None:
    """Why training ``cfg`` on the base at ``model_path`` cannot learn, with what to do, or None.
    A peft adapter trains only its own small matrices (or virtual tokens) on top of frozen base
    weights; on a RANDOM base those frozen weights carry nothing to adapt, so the loss stays
    near chance (ln(vocabulary)) however long it trains."""
    if not cfg.is_peft or cfg.modules_to_save or cfg.path or not random_init(model_path):
        return None
    if cfg.type in ("lora", "qlora", "adalora"):
        fix = ("let the output layer train too: adapter.modules_to_save: [lm_head] (with a "
               "higher learning rate, e.g. 1e-2), or train every weight: adapter.type: full")
    else:
        fix = ("train every weight (adapter.type: full), or use a pretrained base such as "
               "builtin:smollm2-135m-instruct")
    return (f"adapter.type {cfg.type} on '{model_path}', a randomly initialised model: only the "
            f"adapter trains while the random base stays frozen, so the loss will stay near "
            f"chance; {fix}")


def callbacks(model, cfg: AdapterConfig) -> list:
    """Trainer callbacks the method needs (AdaLoRA's rank schedule); empty for the others."""
    tuner = getattr(model, "base_model", None)
    if tuner is not None and type(tuner).__name__ == "AdaLoraModel":
        from lmforge.model.schedule import AdaLoraSchedule

        return [AdaLoraSchedule(tuner, fixed_total=cfg.total_step)]
    return []


def adapter_kind(adapter_config: dict) -> str:
    """lmforge's name for a saved adapter_config.json (dora is LoRA with use_dora)."""
    peft_type = adapter_config.get("peft_type", "?")
    if peft_type == "LORA" and adapter_config.get("use_dora"):
        return "dora"
    return {v: k for k, v in PEFT_TYPES.items() if k != "qlora"}.get(peft_type, peft_type.lower())
