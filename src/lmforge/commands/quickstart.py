"""lmforge quickstart: fine-tune SmolLM2-135M on BBC News offline and show it learned."""

from __future__ import annotations

HELP = ("the offline quickstart: LoRA-tune SmolLM2-135M-Instruct on BBC News topics, "
        "macro-F1 before/after")


def add_arguments(parser) -> None:
    import argparse

    parser.add_argument("--output", default="runs/quickstart", help="run directory")
    parser.add_argument("--max-steps", "--steps", dest="max_steps", type=int, default=160,
                        help="training steps (batch 8)")
    parser.add_argument("--eval-size", type=int, default=300, help="held-out articles")
    parser.add_argument("--train-size", type=int, help="training articles (default: steps x 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the train/held-out split and of training")
    parser.add_argument("--eval-mode", choices=("generate", "choices"), default="choices",
                        help="score the tuned model by the labels' likelihood (eval.mode: "
                        "choices, the default) or by generation; the untuned row always "
                        "generates")
    parser.add_argument("--keep-system", dest="drop_system", action="store_false",
                        help="train and score with SmolLM2's default system turn (by default "
                        "it is dropped: data.template_system: drop; the untuned row always "
                        "uses the model's own template)")
    parser.add_argument("--drop-system", dest="drop_system", action="store_true",
                        default=True, help=argparse.SUPPRESS)  # the default; kept for scripts
    parser.add_argument("--lora-layers", type=int, metavar="N", default=10,
                        help="LoRA on the last N layers only (adapter.layers_to_transform: -N; "
                        "default 10 of 30; 0: every layer)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="auto",
                        help="auto (default): bf16 where available (autocast on a CPU with "
                        "native bf16, AMX / AVX512-BF16, or a GPU that has it), else fp32; "
                        "or force fp32 / bf16")
    parser.add_argument("--no-group-by-length", dest="group_by_length", action="store_false",
                        help="random batches instead of length-grouped ones "
                        "(train.group_by_length)")
    parser.add_argument("--sentences", type=int, default=4,
                        help="sentences of each article after its title (the model input)")
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
                           lora_layers=args.lora_layers or None, precision=args.precision,
                           sentences=args.sentences, group_by_length=args.group_by_length)
    quickstart(s)
    return 0
