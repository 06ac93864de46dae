"""Teacher distillation (``lmforge distill``): a stronger model (an OpenAI-compatible endpoint or a
local model through the ChatEngine) writes responses for input records; they are verified against
gold answers or a majority vote and written, resumably, as an SFT dataset.

Modules: records (input, keys, prompts, output rows), verify (answer extraction and voting),
teachers (endpoint client with retries), local (ChatEngine teacher), store (crash-safe output
files), runner (concurrency, report).
"""

from lmforge.distill.runner import Report, distill

__all__ = ["Report", "distill"]
