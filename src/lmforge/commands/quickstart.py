"""lmforge quickstart: fine-tune SmolLM2-135M on BBC News offline and show it learned."""

from __future__ import annotations

HELP = ("the offline quickstart: LoRA-tune SmolLM2-135M-Instruct on BBC News topics, "
        "macro-F1 before/after")


def add_arguments(parser) -> None:
    parser.add_argument("--output", default="runs/quickstart", help="run directory")
    parser.add_argument("--max-steps", "--steps", dest="max_steps", type=int, default=120,
                        help="training steps (batch 8)")
    parser.add_argument("--eval-size", type=int, default=300, help="held-out articles")
    parser.add_argument("--train-size", type=int, help="training articles (default: steps x 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the train/held-out split and of training")
    parser.add_argument("--eval-mode", choices=("generate", "choices"), default="generate",
                        help="score the tuned model by generation or by the labels' "
                        "likelihood (eval.mode: choices); the untuned row always generates")
    parser.add_argument("--drop-system", action="store_true",
                        help="drop SmolLM2's default system turn from every prompt "
                        "(data.template_system: drop)")
    parser.add_argument("--lora-layers", type=int, metavar="N",
                        help="LoRA on the last N layers only (adapter.layers_to_transform: -N)")
    parser.add_argument("--no-export", action="store_true", help="skip the merged export")


def run(args) -> int:
    from pathlib import Path

    from lmforge.quickstart.run import QuickstartSettings, quickstart
    from lmforge.utils.logs import setup

    setup()
    s = QuickstartSettings(output=Path(args.output), max_steps=args.max_steps,
                           eval_size=args.eval_size, train_size=args.train_size,
                           learning_rate=args.lr, seed=args.seed, export=not args.no_export,
                           eval_mode=args.eval_mode, drop_system=args.drop_system,
                           lora_layers=args.lora_layers)
    quickstart(s)
    return 0
