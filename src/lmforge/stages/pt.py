"""Stage ``pt``: (continued) pretraining on raw text -- causal LM loss on every token.

Documents are encoded by the pipeline (format ``text``, EOS appended when ``pt.add_eos``);
``data.packing: true`` (typical) packs them into blocks, long documents cut into block-sized
pieces. No chat template is involved; the tokenizer is saved with its own.
"""

from __future__ import annotations

from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError
from lmforge.training.result import RunResult


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from lmforge.stages.sft import train_lm
    from lmforge.training.context import start

    if cfg.data.format not in ("text", "auto"):
        raise ConfigError(f"data.format: stage pt trains on raw text; use format 'text' (got "
                          f"'{cfg.data.format}'), or stage sft for conversations")
    return train_lm(start(cfg, callbacks, chat=False))
