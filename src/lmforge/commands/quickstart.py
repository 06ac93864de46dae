"""lmforge quickstart: fine-tune SmolLM2-135M on BBC News offline and show it learned."""

from __future__ import annotations

HELP = ("the offline quickstart: LoRA-tune SmolLM2-135M-Instruct on BBC News topics, "
        "macro-F1 before/after")


def add_arguments(parser) -> None:
    parser.add_argument("--output", default="runs/quickstart", help="run directory")
    parser.add_argument("--max-steps", type=int, default=120, help="training steps (batch 8)")
    parser.add_argument("--eval-size", type=int, default=300, help="held-out articles")
    parser.add_argument("--train-size", type=int, help="training articles (default: steps x 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-export", action="store_true", help="skip the merged export")


def run(args) -> int:
    from pathlib import Path

    from lmforge.quickstart.run import QuickstartSettings, quickstart
    from lmforge.utils.logs import setup

    setup()
    s = QuickstartSettings(output=Path(args.output), max_steps=args.max_steps,
                           eval_size=args.eval_size, train_size=args.train_size,
                           learning_rate=args.lr, seed=args.seed, export=not args.no_export)
    quickstart(s)
    return 0
