"""``--rope-scaling TYPE:FACTOR`` for every inference command (chat, serve, predict, eval, webui
when it loads a model): RoPE scaling applied at load time, mapped to ``model.rope_scaling`` so it
means exactly what that key means in a run config (config/model.py). Standard library only at
module level (the CLI imports it)."""

from __future__ import annotations

HELP = ("extend the context at inference with RoPE scaling, TYPE:FACTOR: linear:2 (position "
        "interpolation) or dynamic:2 (NTK-aware); the same as model.rope_scaling")


def add_rope_argument(parser) -> None:
    parser.add_argument("--rope-scaling", metavar="TYPE:FACTOR", help=HELP)


def parse(text: str | None):
    """``dynamic:2`` -> RopeScaling(type='dynamic', factor=2.0); None for None."""
    if text is None:
        return None
    from pydantic import ValidationError

    from lmforge.config.model import RopeScaling
    from lmforge.errors import ConfigError

    kind, sep, factor = text.partition(":")
    hint = "e.g. --rope-scaling dynamic:2 (types: linear, dynamic; factor > 1)"
    if not sep:
        raise ConfigError(f"--rope-scaling '{text}': expected TYPE:FACTOR", hint)
    try:
        return RopeScaling(type=kind.strip().lower(), factor=float(factor))
    except ValueError as exc:  # float() or pydantic's ValidationError (a ValueError)
        if isinstance(exc, ValidationError):
            why = "; ".join(e["msg"] for e in exc.errors())
        else:
            why = f"'{factor}' is not a number"
        raise ConfigError(f"--rope-scaling '{text}': {why}", hint) from None
