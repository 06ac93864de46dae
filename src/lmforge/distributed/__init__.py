"""Scale-out: multi-process launch (torchrun), rank helpers, DeepSpeed ZeRO and FSDP settings.

- ``launch``: ``lmforge train --nproc N [--nnodes ...]`` re-executes itself under torchrun;
  ``torchrun -m lmforge train ...`` / ``accelerate launch -m lmforge train ...`` work directly too.
- ``ranks``: rank/world size from the launcher's environment, the process group started early
  (so the data pipeline can run on rank 0 first), ``main_first()``.
- ``engines``: ``train.deepspeed`` (shipped ZeRO configs in ``configs/``, "auto" values filled)
  and ``train.fsdp`` as TrainingArguments keywords.
"""
