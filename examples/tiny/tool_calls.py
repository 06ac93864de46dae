"""How often a model answers held-out requests with a well-formed tool call.

    python examples/tiny/tool_calls.py builtin:tiny-llama-tools runs/tiny-tools
    python examples/tiny/tool_calls.py builtin:smollm2-135m-instruct runs/tools-smollm2 \
        --template chatml_tools

For every model given (a model directory, a run, or builtin:<name>) and every row of the held-out
file (messages + tools, the last message the expected call), the request is rendered with the
model's chat template and its tools (``ChatEngine.generate(..., tools=...)``, as ``lmforge
predict`` / ``serve`` / ``chat`` do), the answer generated greedily, and the first
<tool_call>...</tool_call> block parsed. ``--template`` is used for a model whose own template
takes no tools (SmolLM2's base: the run was trained with chatml_tools). Printed per model: the
share of answers that are a well-formed call (JSON with a "name" string and an "arguments"
object), that call the right function, and whose arguments are exactly right.
"""

from __future__ import annotations

import argparse
import json
import re

CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def parse_call(text: str) -> dict | None:
    """The first tool call in ``text`` as {"name", "arguments"}, or None if malformed."""
    m = CALL.search(text)
    if m is None:
        return None
    try:
        call = json.loads(m.group(1))
    except json.JSONDecodeError:
        return None
    ok = isinstance(call, dict) and isinstance(call.get("name"), str) \
        and isinstance(call.get("arguments"), dict)
    return call if ok else None


def expected(row: dict) -> dict:
    fn = row["messages"][-1]["tool_calls"][0]["function"]
    args = fn["arguments"]
    return {"name": fn["name"], "arguments": json.loads(args) if isinstance(args, str) else args}


def score(model: str, rows: list[dict], max_new_tokens: int = 48,
          template: str | None = None) -> dict:
    from lmforge.data.templates import resolve_template
    from lmforge.infer.engine import ChatEngine

    engine = ChatEngine.load(model, batch_size=16)
    if template and engine.call_format is None:
        engine.with_template(resolve_template(template, engine.tokenizer))
    outs = engine.generate([r["messages"][:-1] for r in rows], max_new_tokens=max_new_tokens,
                           do_sample=False, tools=[r["tools"] for r in rows])
    counts = {"well_formed": 0, "right_function": 0, "right_arguments": 0}
    for row, out in zip(rows, outs):
        call, want = parse_call(out.text), expected(row)
        if call is None:
            continue
        counts["well_formed"] += 1
        counts["right_function"] += call["name"] == want["name"]
        counts["right_arguments"] += call == want
    return {k: v / len(rows) for k, v in counts.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default="examples/data/tools_eval.jsonl")
    parser.add_argument("--template", help="chat template for a model whose own takes no tools "
                        "(e.g. chatml_tools for builtin:smollm2-135m-instruct)")
    args = parser.parse_args(argv)
    with open(args.data, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for model in args.models:
        s = score(model, rows, template=args.template)
        print(f"{model}: well-formed tool calls {s['well_formed']:.3f}, right function "
              f"{s['right_function']:.3f}, right arguments {s['right_arguments']:.3f} "
              f"({len(rows)} held-out requests)")


if __name__ == "__main__":
    main()
