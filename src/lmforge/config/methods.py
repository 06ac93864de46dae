"""Method blocks: one per stage, named after it (``sft:``, ``dpo:``, ...).

A stage without settings of its own still has an (empty) block class so that a block given for the
wrong stage is reported, and later stages add fields here.
"""

from __future__ import annotations

from pydantic import Field

from lmforge.config.base import Section


class PTMethod(Section):
    """Pretraining on raw text (causal LM loss on every token)."""

    add_eos: bool = Field(True, description="append EOS to every document")


class SFTMethod(Section):
    """Supervised fine-tuning on conversations."""

    neftune_noise_alpha: float | None = Field(None, gt=0, description="NEFTune embedding noise")


METHOD_BLOCKS: dict[str, type[Section]] = {
    "pt": PTMethod,
    "sft": SFTMethod,
}
