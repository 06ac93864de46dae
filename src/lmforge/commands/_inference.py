"""Arguments shared by the interactive faces of the ChatEngine (chat, webui, serve): what to load
and the default generation settings. Standard library only at module level (the CLI imports it).

Defaults are the run's ``eval.generation`` (greedy unless the run says otherwise) with the flags
given applied, and ``max_new_tokens`` 256 unless set: the same rule everywhere, so chat, the web
UI and the server answer a prompt identically; ``lmforge predict`` does the same for greedy
settings given explicitly.
"""

from __future__ import annotations

DEFAULT_MAX_NEW_TOKENS = 256


def add_model_arguments(parser, required: bool = True) -> None:
    parser.add_argument("model", nargs=None if required else "?", metavar="MODEL_OR_RUN",
                        help="a run's output_dir, a checkpoint-N, a merged export, a model "
                        "directory or builtin:<name>")
    parser.add_argument("--adapter", metavar="DIR", help="peft adapter to apply to the model")
    parser.add_argument("--template", help="built-in chat template (default: the one the model "
                        "was trained with)")
    parser.add_argument("--system", help="system prompt for chats that have none (default: the "
                        "run's data.system)")
    add_precision_argument(parser)


def add_precision_argument(parser) -> None:
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: autocast on a CPU with native bf16 (AMX / AVX512-BF16), ~2.4x "
                        "faster forward passes, bf16 rounding (default fp32; a GPU uses the "
                        "weights' dtype)")


def precision_kwargs(args) -> dict:
    """``precision=`` for ``Engine.load`` when a flag asked for one (engines without it then
    refuse it clearly instead of ignoring it)."""
    precision = getattr(args, "precision", "fp32")
    return {} if precision == "fp32" else {"precision": precision}


def add_generation_arguments(parser) -> None:
    g = parser.add_argument_group("generation (defaults: the run's eval.generation, greedy)")
    g.add_argument("--max-new-tokens", type=int, metavar="N",
                   help=f"tokens generated per answer (default {DEFAULT_MAX_NEW_TOKENS})")
    g.add_argument("--temperature", type=float, help="sampling temperature (0: greedy)")
    g.add_argument("--top-p", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument("--repetition-penalty", type=float)
    g.add_argument("--seed", type=int, help="seed for sampling")


def load_engine(args, batch_size: int = 8):
    from lmforge.infer.engine import ChatEngine

    from lmforge.commands._rope import parse

    return ChatEngine.load(args.model, adapter=args.adapter, template=args.template,
                           batch_size=batch_size,
                           rope_scaling=parse(getattr(args, "rope_scaling", None)),
                           **precision_kwargs(args))


def read_tools(path: str) -> list[dict]:
    """The tool schemas of a JSON file (a list), checked as training checks a ``tools`` column."""
    import json

    from lmforge.data.tools import parse_tools
    from lmforge.errors import ConfigError

    try:
        value = json.loads(open(path, encoding="utf-8").read())
    except OSError as exc:
        raise ConfigError(f"--tools: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"--tools: {path} is not valid JSON ({exc})",
                          "a JSON list of tool schemas: [{\"type\": \"function\", "
                          "\"function\": {\"name\": ..., \"parameters\": {...}}}]") from None
    tools = parse_tools({"tools": value}, {}, path)
    if not tools:
        raise ConfigError(f"--tools: {path} lists no tools", "give a non-empty JSON list")
    return list(tools)


def default_system(args, engine) -> str | None:
    if args.system is not None:
        return args.system or None
    run_cfg = engine.run_config
    return run_cfg.data.system if run_cfg is not None else None


def generation(args, engine):
    """GenerationConfig from the run's eval settings and the flags (temperature 0 = greedy)."""
    from lmforge.config.eval import GenerationConfig
    from lmforge.errors import ConfigError
    from lmforge.infer.engine import options

    run_cfg = engine.run_config
    base = run_cfg.eval.generation if run_cfg is not None else GenerationConfig()
    base = base.model_copy(update={"num_return_sequences": 1})
    temp = getattr(args, "temperature", None)
    sample = None if temp is None else temp > 0
    try:
        return options(base, max_new_tokens=args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
                       temperature=temp if temp else None, top_p=args.top_p, top_k=args.top_k,
                       repetition_penalty=args.repetition_penalty, seed=args.seed,
                       do_sample=sample)
    except ValueError as exc:
        raise ConfigError(f"generation settings: {exc}") from None


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
