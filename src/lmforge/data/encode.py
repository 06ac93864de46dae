"""Conversation -> ``input_ids`` + ``labels`` from ONE tokenization of the rendered text.

The assistant spans are character ranges reported by the template's ``{% generation %}`` blocks;
tokens whose characters fall inside a trained span keep their id as label, all others get -100.
Never tokenize the prompt separately and count tokens: BPE merges across the seam would shift it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.data.types import Conversation
from lmforge.errors import ConfigError

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def render(messages: list[dict], template: str, tokenizer,
           add_generation_prompt: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text and the (start, end) character span of every assistant generation block."""
    from transformers.utils.chat_template_utils import render_jinja_template

    kwargs = dict(tokenizer.special_tokens_map)
    texts, spans = render_jinja_template(
        conversations=[messages], chat_template=template, return_assistant_tokens_mask=True,
        add_generation_prompt=add_generation_prompt, **kwargs)
    return texts[0], [tuple(s) for s in spans[0]]


def trained_spans(spans: list[tuple[int, int]], train_on: str) -> list[tuple[int, int]]:
    if train_on == "last_assistant":
        return spans[-1:]
    return spans


def encode_conversation(conv: Conversation, tokenizer, template: str,
                        train_on: str = "all_assistant") -> Encoded:
    text, spans = render(conv.as_list(), template, tokenizer)
    if not spans and train_on != "all":
        raise ConfigError("the chat template marks no assistant text ({% generation %} blocks "
                          "missing); choose a built-in template with model.template")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if train_on == "all":
        return Encoded(list(ids), list(ids))
    keep = trained_spans(spans, train_on)
    labels = []
    for tok, (start, end) in zip(ids, offsets):
        inside = any(s <= start < e for s, e in keep) and end > start
        labels.append(tok if inside else IGNORE)
    return Encoded(list(ids), labels)
