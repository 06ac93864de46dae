"""``adapter:`` — the training method: full fine-tuning, freezing, or a peft adapter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lmforge.config.base import Section

AdapterType = Literal["full", "lora", "qlora", "adalora", "prompt_tuning", "p_tuning",
                      "prefix_tuning", "freeze"]


class AdapterConfig(Section):
    type: AdapterType = Field("lora", description="training method: full, freeze, lora, qlora, "
                              "adalora, prompt_tuning, p_tuning or prefix_tuning")
    path: str | None = Field(None, description="continue training from this saved adapter")
    r: int = Field(8, ge=1, description="LoRA rank (AdaLoRA: initial rank)")
    alpha: float = Field(16, gt=0, description="LoRA scaling alpha")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: str | list[str] = Field("all-linear", description="modules that get LoRA: "
                                            "'all-linear' or a list of names like [q_proj, v_proj]")
    layers_to_transform: list[int] | int | None = Field(
        None, description="LoRA/QLoRA/AdaLoRA/DoRA only in these decoder layers: a list of "
        "indices (0 = the first layer) or a negative number -N for the last N layers; the "
        "backward pass then stops at the lowest adapted layer (default: every layer)")
    modules_to_save: list[str] = Field(default_factory=list, description="modules trained fully "
                                       "and saved with the adapter")
    use_dora: bool = Field(False, description="weight-decomposed LoRA (DoRA)")
    use_rslora: bool = Field(False, description="rank-stabilised LoRA scaling alpha/sqrt(r)")
    fused: bool | None = Field(None, description="LoRA: compute each adapted nn.Linear as one "
                               "autograd node (the LoRA product added by the matmul itself), and "
                               "a gated MLP with all three projections adapted as one node that "
                               "keeps 2 of its 4 wide activations; same math, less memory "
                               "traffic and RSS; default: on for lora; false: peft's own layers")
    bits: Literal[4, 8] = Field(4, description="QLoRA: quantize the base to 4 or 8 bits")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="QLoRA 4-bit data type")
    double_quant: bool = Field(True, description="QLoRA: quantize the quantization constants")
    target_r: int = Field(4, ge=1, description="AdaLoRA: average target rank")
    tinit: int = Field(0, ge=0, description="AdaLoRA: warm-up steps before rank pruning")
    tfinal: int = Field(0, ge=0, description="AdaLoRA: final steps at the target rank")
    delta_t: int = Field(1, ge=1, description="AdaLoRA: steps between rank updates")
    total_step: int | None = Field(None, ge=1, description="AdaLoRA: steps of the rank schedule "
                                   "(default: the run's total optimizer steps)")
    num_virtual_tokens: int = Field(20, ge=1, description="prompt/prefix/P-tuning: virtual tokens")
    prompt_init_text: str | None = Field(None, description="prompt tuning: initialise from text")
    encoder_hidden_size: int = Field(128, ge=1, description="P-tuning: prompt encoder width")
    trainable_layers: int = Field(2, ge=0, description="freeze: train only the last N layers")
    trainable_modules: list[str] = Field(default_factory=list, description="freeze: also train "
                                         "these modules (names or dotted paths, e.g. lm_head, "
                                         "model.norm)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.type == "freeze" and self.trainable_layers == 0 and not self.trainable_modules:
            raise ValueError("freeze with trainable_layers: 0 and no trainable_modules trains "
                             "nothing")
        layers = self.layers_to_transform
        if layers is not None:
            if self.type not in ("lora", "qlora", "adalora"):
                raise ValueError(f"layers_to_transform applies to lora, qlora and adalora, not "
                                 f"{self.type} (freeze has trainable_layers)")
            if isinstance(layers, int) and layers >= 0:
                raise ValueError(f"layers_to_transform: a single number must be negative, -N "
                                 f"for the last N layers (got {layers}; for one layer write "
                                 f"[{layers}])")
            if isinstance(layers, list) and (not layers or min(layers) < 0):
                raise ValueError("layers_to_transform: a list holds layer indices >= 0 (write -N "
                                 "alone for the last N layers)")
        if self.fused is not None and self.type != "lora":
            raise ValueError(f"fused applies to lora, not {self.type} (quantized and AdaLoRA "
                             "layers are peft's own)")
        if self.type == "adalora" and self.use_dora:
            raise ValueError("use_dora works with lora/qlora, not adalora")
        if self.type == "adalora" and self.target_r >= self.r:
            # peft's rank allocator then has nothing to prune and fails at the first step
            fix = f"e.g. target_r: {self.r // 2}, or a larger r" if self.r > 1 else \
                "r must be at least 2"
            raise ValueError(f"AdaLoRA prunes ranks from r to target_r, so target_r "
                             f"({self.target_r}) must be below r ({self.r}): {fix}")
        return self

    @property
    def is_peft(self) -> bool:
        return self.type not in ("full", "freeze")

    @property
    def uses_fused(self) -> bool:
        """``fused`` in effect: lora unless set to false (model/fused_lora.py, fused_mlp.py)."""
        return self.type == "lora" and self.fused is not False
