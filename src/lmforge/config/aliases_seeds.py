"""The seeds' rows of the foreign-name table (config/aliases.py): CausalLM-Lit's data/model files,
LLMs-Tool's config.py dataclass defaults and mode, and transformers' run_clm.py with the LoRA
seed's flags. Kept apart so each file stays short; aliases.py turns them into ``Alias`` rows."""

from __future__ import annotations

from lmforge.config import alias_values as V

LIT = "CausalLM-Lit"
TOOL = "LLMs-Tool"
CLM = "run_clm"


def _r(name, target, note="", value=None, origin=LIT) -> tuple:
    return (name, target, origin, note, value)


SEED_ROWS: tuple[tuple, ...] = (
    _r("tokenizer", None, "manual_add_eos_token: lmforge's templates end every answer with the "
       "end-of-turn token / EOS by themselves", origin=LIT),
    _r("config", None, "use_cache: lmforge turns the cache off for training and on for "
       "inference by itself", origin=LIT),
    _r("metrics", "eval.metrics", "{name: f1, eval_calculate: true} → eval.metrics: [f1], "
       "eval.during_training, eval.best_metric", origin=LIT),
    # --- the LLMs-Tool seed's config.py (dataclass defaults) and mode ------------------------
    _r("mode", "stage", "sft_train, rm_train, dpo_train, ppo_train, pretrain; the other modes "
       "are commands (chat, webui, eval, export, info)", V.mode, origin=TOOL),
    _r("model_path", "model.path", origin=TOOL),
    _r("model_type", None, "nothing to set: lmforge reads the architecture from the model's "
       "config.json", V.nothing, origin=TOOL),
    _r("checkpoint_dir", "adapter.path", "the adapter to continue training; to use a run: "
       "lmforge chat RUN", origin=TOOL),
    _r("fine_tuning_type", "adapter.type", "lora (qlora with quantization_bit), adalora, full, "
       "prompt_tuning, p_tuning, prefix_tuning", V.fine_tuning_type, origin=TOOL),
    _r("quantization", None, "bnb only (lmforge's QLoRA); cpm has no equivalent",
       V.quantization, origin=TOOL),
    _r("prompt_template", "model.template", "alpaca, chatml, llama2, llama3, qwen keep their "
       "name; any other becomes auto, the tokenizer's own chat template", V.template,
       origin=TOOL),
    _r("train_file_dir", "data.train", "a directory: lmforge reads every data file in it",
       origin=TOOL),
    _r("validation_file_dir", "data.eval", origin=TOOL),
    _r("test_file", None, "test after training: lmforge eval RUN --data-file FILE",
       origin=TOOL),
    _r("reward_model_checkpoint", "ppo.reward_model", "a directory from lmforge's stage rm",
       origin=TOOL),
    _r("quantized_or_merged_output_dir", None, "lmforge export RUN --merge --out DIR",
       origin=TOOL),
    _r("use_firefly_loss", None, "lmforge trains on every assistant turn of a multi-turn row by "
       "default (data.train_on: all_assistant), which is what Firefly's loss does",
       V.only(True, "off: data.train_on: last_assistant trains the last answer only"),
       origin=TOOL),
    # --- transformers' run_clm.py with the LoRA seed's flags -----------------------------------
    _r("lora_rank", "adapter.r", "adapter.alpha comes from the tool's own lora_alpha (32 in "
       "the run_clm seed)", origin=f"{TOOL}, {CLM}"),
    _r("use_peft", "adapter.type", "true → lora with the seed's defaults (r 8, alpha 32, "
       "dropout 0.05, q_proj,v_proj); false → full", V.use_peft, origin=CLM),
    _r("peft_path", "adapter.path", origin=CLM),
    _r("target_modules", "adapter.target_modules", "comma string → list", V.target_modules,
       origin=CLM),
    _r("modules_to_save", "adapter.modules_to_save", "comma string → list",
       V.names_to("adapter.modules_to_save"), origin=CLM),
    _r("fan_in_fan_out", None, "peft sets it for the models that need it (GPT-2's Conv1D)",
       V.only(False, "peft sets fan_in_fan_out by itself for the layers that need it"),
       origin=CLM),
    _r("train_file", "data.train", origin=CLM),
    _r("validation_file", "data.eval", origin=CLM),
    _r("validation_split_percentage", "data.eval", "a percentage of the train file → a "
       "fraction", V.percent_eval, origin=CLM),
    _r("dataset_name", None, "a hub dataset: lmforge works offline; download it and give "
       "data.train a local path", origin=CLM),
    _r("dataset_config_name", None, "see dataset_name", origin=CLM),
    _r("block_size", "data.max_length", origin=CLM),
    _r("max_source_length", "data.max_source_length", origin=CLM),
    _r("max_target_length", "data.max_target_length", origin=CLM),
    _r("prompt_column", "data.columns", "its prompt column; data.format: prompt_response",
       V.column("prompt"), origin=CLM),
    _r("response_column", "data.columns", "its response column; data.format: prompt_response",
       V.column("response"), origin=CLM),
    _r("history_column", "data.columns", "its history column; data.format: prompt_response",
       V.column("history"), origin=CLM),
    _r("prompt_type", "model.template", "alpaca, chatml, llama2, llama3, qwen keep their name; "
       "any other becomes auto", V.template, origin=CLM),
    _r("ignore_pad_token_for_loss", None, "nothing to set: padding never counts in lmforge's "
       "loss", V.only(True, "padding never counts in lmforge's loss"), origin=CLM),
    _r("max_train_samples", None, "give data.train: [{path: FILE, samples: N}] (N at most its "
       "size)", origin=CLM),
    _r("max_eval_samples", "eval.max_samples", origin=CLM),
    _r("torch_dtype", "model.dtype", "auto, float32, bfloat16, float16", V.torch_dtype,
       origin=CLM),
    _r("tokenizer_name", None, "lmforge loads the tokenizer saved with the model", origin=CLM),
    _r("use_fast_tokenizer", None, "nothing to set: lmforge uses the fast tokenizer",
       V.only(True, "lmforge needs the fast tokenizer (offsets for the masks)"), origin=CLM),
    _r("low_cpu_mem_usage", None, "nothing to set: transformers 5 always loads lazily",
       V.nothing, origin=CLM),
)
