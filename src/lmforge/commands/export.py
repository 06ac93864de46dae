"""lmforge export: turn a run (or adapter) into one artifact: merged model, quantized model, or
adapter, with tokenizer, chat template, generation config and a model card."""

from __future__ import annotations

HELP = ("export a run or adapter: merge LoRA/DoRA/AdaLoRA into the base, quantize, copy, or "
        "write a GGUF file + Ollama Modelfile")


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="RUN_OR_ADAPTER_DIR",
                        help="a run directory (lmforge train output), a checkpoint, a peft adapter "
                        "or a model directory")
    parser.add_argument("--out", required=True, help="output directory (new or empty)")
    parser.add_argument("--merge", action="store_true",
                        help="merge the adapter into the base and save a standalone model")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16",
                                                            "float16"],
                        help="weights dtype of the export (auto: the base model's)")
    parser.add_argument("--quantize", choices=["int8", "int4", "4", "8"], metavar="SCHEME",
                        help="save the merged model quantized: int8 / int4 weight-only with "
                        "torchao for CPUs (extra quant-cpu; plain from_pretrained loads it), or "
                        "4 / 8 bits with bitsandbytes for GPUs (extra qlora)")
    parser.add_argument("--dequantize", action="store_true",
                        help="QLoRA runs: load the base unquantized to merge into it")
    parser.add_argument("--base", help="base model path, overriding the run's model.path / the "
                        "adapter's base_model_name_or_path")
    parser.add_argument("--gguf", action="store_true",
                        help="write OUT/model.gguf (merged model, tokenizer, chat template) for "
                        "llama.cpp / LM Studio and an Ollama Modelfile (llama, mistral, qwen2)")
    parser.add_argument("--gguf-type", default="f16", metavar="TYPE",
                        help="GGUF weight type: f16 (default), bf16, f32, q8_0, q5_1, q5_0, q4_1, "
                        "q4_0 (k-quants such as q4_k_m: run llama.cpp's llama-quantize on the "
                        "f16 file)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _export(args):
    if args.gguf:
        from lmforge.export.gguf_export import export_gguf
        from lmforge.export.merge import ExportError

        if args.quantize or args.dtype != "auto":
            raise ExportError("--gguf sets the weight type with --gguf-type, not --quantize or "
                              "--dtype", "e.g. --gguf --gguf-type q8_0")
        return export_gguf(args.source, args.out, args.gguf_type, dequantize=args.dequantize,
                           base=args.base)
    if args.quantize in ("int8", "int4"):
        from lmforge.export.quant_cpu import export_quantized

        return export_quantized(args.source, args.out, args.quantize, dtype=args.dtype,
                                dequantize=args.dequantize, base=args.base)
    from lmforge.export.merge import export

    return export(args.source, args.out, merge=args.merge, dtype=args.dtype,
                  quantize=int(args.quantize) if args.quantize else None,
                  dequantize=args.dequantize, base=args.base)


def run(args) -> int:
    import json

    from lmforge.utils.logs import setup

    if args.json:  # keep stdout pure JSON: logs (and libraries printing on import) go to stderr
        import contextlib
        import logging
        import sys

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, force=True)
        with contextlib.redirect_stdout(sys.stderr):
            result = _export(args)
        print(json.dumps(dict(result.info, out=str(result.out), messages=result.messages),
                         indent=2))
        return 0
    setup()
    result = _export(args)
    for note in result.messages:
        print(f"note: {note}")
    if result.artifact == "gguf":
        _print_gguf(result)
        return 0
    what = "merged model" if result.merged else result.artifact
    if result.info.get("quantization"):
        _print_quantized(result, what)
        return 0
    if result.info.get("quantized_bits"):
        what += f" ({result.info['quantized_bits']}-bit)"
    print(f"exported {what} to {result.out}")
    if result.artifact == "model":
        print(f"  load: AutoModelForCausalLM.from_pretrained('{result.out}')")
    else:
        print(f"  load: PeftModel.from_pretrained(base, '{result.out}')  (base: "
              f"{result.info['base']})")
    return 0


def _print_gguf(result) -> None:
    info = result.info
    types = ", ".join(f"{n} {t}" for t, n in sorted(info["tensor_types"].items()))
    what = "merged model" if result.merged else "model"
    print(f"exported {what} as GGUF {info['gguf_type']} ({info['size_bytes'] / 2**20:.1f} MiB; "
          f"tensors: {types}) to {result.out / info['gguf_file']}")
    family = info["template_family"] or "none (raw prompts; see the Modelfile)"
    print(f"  Modelfile: {result.out / info['modelfile']} (chat template: {family})")
    print(f"  llama.cpp: llama-cli -m {result.out / info['gguf_file']} -cnv")
    print(f"  Ollama:    cd {result.out} && ollama create {result.out.name} -f Modelfile && "
          f"ollama run {result.out.name}")
    print(f"  transformers: AutoModelForCausalLM.from_pretrained('{result.out}', "
          f"gguf_file='{info['gguf_file']}')")


def _print_quantized(result, what: str) -> None:
    info, mib = result.info, 2 ** 20
    print(f"exported {what} as torchao {info['quantization']} weight-only to {result.out}")
    print(f"  size: {info['size_bytes'] / mib:.1f} MiB (was {info['float_size_bytes'] / mib:.1f} "
          f"MiB in {info['dtype']}: {info['compression']}x smaller)")
    print(f"  load: AutoModelForCausalLM.from_pretrained('{result.out}')  (CPU; needs torchao)")
