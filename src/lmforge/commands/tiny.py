"""lmforge tiny: build a tiny random model + tokenizer offline."""

from __future__ import annotations

HELP = "build a tiny random causal LM + BPE tokenizer with a chat template (offline)"


def add_arguments(parser) -> None:
    parser.add_argument("out_dir", help="directory to write the model to")
    parser.add_argument("--arch", default="llama", choices=["llama", "qwen2"])
    parser.add_argument("--hidden", type=int, default=64, help="hidden size (multiple of 32)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=1024, help="BPE vocabulary size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tools", action="store_true", help="give the tokenizer the tool-calling "
                        "chat template chatml_tools (Qwen-style <tool_call> tags) instead of "
                        "plain ChatML")


def run(args) -> int:
    from lmforge.utils.tiny import build_tiny

    out = build_tiny(args.out_dir, args.arch, args.hidden, args.layers, args.vocab, args.seed,
                     tools=args.tools)
    kind = " (tool-calling template)" if args.tools else ""
    print(f"tiny {args.arch} model{kind} written to {out}")
    return 0
