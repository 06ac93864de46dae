"""The module tree of ``lmforge info --tree``: every module with its parameter count and how many of
them train, the adapter's parameters included where they attach.

The base is built on the meta device (no weights allocated); an adapter's parameters are read
from its safetensors header and hung on the module they wrap (``...q_proj.lora_A.weight`` on
``q_proj``; prompt-learning embeddings on the root). Without an adapter every parameter counts as
trainable (a full fine-tune); with one, only the adapter's do. Runs of identical children (the
decoder layers) are folded into one node, ``0-31 (32 × LlamaDecoderLayer)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Node:
    name: str
    kind: str
    parameters: int = 0
    trainable: int = 0
    children: list["Node"] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {"name": self.name, "type": self.kind, "parameters": self.parameters,
               "trainable": self.trainable}
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


def _adapter_counts(adapter: Path) -> dict[str, int]:
    """Adapter parameter counts by the dotted name of the base module each one wraps."""
    from safetensors import safe_open

    weights = adapter / "adapter_model.safetensors"
    counts: dict[str, int] = {}
    if not weights.is_file():
        return counts
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            n = 1
            for s in f.get_slice(key).get_shape():
                n *= int(s)
            name = key.removeprefix("base_model.model.")
            counts[name] = counts.get(name, 0) + n
    return counts


def _owner(name: str, modules: set[str]) -> str:
    """The deepest base module whose dotted name prefixes ``name`` ('' = the root)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:cut])
        if candidate in modules:
            return candidate
    return ""


def build(model, adapter: Path | None = None) -> Node:
    """The tree of ``model`` (meta tensors are fine), with ``adapter``'s parameters added."""
    names = {n for n, _ in model.named_modules()}
    extra: dict[str, int] = {}
    for key, n in (_adapter_counts(adapter) if adapter else {}).items():
        owner = _owner(key, names)
        extra[owner] = extra.get(owner, 0) + n

    seen: set[int] = set()  # tied weights (embeddings = lm_head) count once, where first met

    def walk(module, prefix: str, name: str) -> Node:
        own = 0
        for param in module.parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                own += param.numel()
        added = extra.get(prefix, 0)
        node = Node(name, type(module).__name__, own + added,
                    added if adapter else own + added)
        for child_name, child in module.named_children():
            sub = walk(child, f"{prefix}.{child_name}" if prefix else child_name, child_name)
            node.children.append(sub)
            node.parameters += sub.parameters
            node.trainable += sub.trainable
        node.children = _fold(node.children)
        return node

    return walk(model, "", type(model).__name__)


def _shape(node: Node) -> tuple:
    return (node.kind, node.parameters, node.trainable,
            tuple(_shape(c) for c in node.children))


def _fold(children: list[Node]) -> list[Node]:
    """Runs of numbered identical siblings become one node (counts summed)."""
    out: list[Node] = []
    i = 0
    while i < len(children):
        j = i + 1
        while (j < len(children) and children[i].name.isdigit()
               and _shape(children[j]) == _shape(children[i])):
            j += 1
        if j - i > 1:
            first = children[i]
            out.append(Node(f"{first.name}-{children[j - 1].name}", f"{j - i} × {first.kind}",
                            first.parameters * (j - i), first.trainable * (j - i),
                            first.children))
        else:
            out.append(children[i])
        i = j
    return out


def render(node: Node, depth: int):
    """A rich Tree down to ``depth`` levels below the root."""
    from rich.tree import Tree

    def label(n: Node) -> str:
        train = "all trainable" if n.trainable == n.parameters and n.parameters else \
            f"{n.trainable:,} trainable"
        return f"[bold]{n.name}[/] ({n.kind})  {n.parameters:,}  [dim]{train}[/]"

    def add(tree, n: Node, level: int) -> None:
        if level >= depth:
            return
        for child in n.children:
            add(tree.add(label(child)), child, level + 1)

    root = Tree(label(node))
    add(root, node, 0)
    return root


def module_tree(path: str, adapter: str | None = None, trust_remote_code: bool = False) -> Node:
    """The tree of a model directory / hub id / builtin name, or of a run or adapter directory
    (its base plus the adapter)."""
    from lmforge.utils.builtin import resolve

    p = Path(path)
    base = resolve(path)
    if adapter is None and p.is_dir() and (p / "adapter_config.json").is_file() \
            and not (p / "config.json").is_file():
        from lmforge.export.source import inspect_source
        from lmforge.model.loader import model_dir

        src = inspect_source(p)
        base, adapter = model_dir(src.base), str(p)
        trust_remote_code = trust_remote_code or src.base.trust_remote_code
    from lmforge.export.inspect import empty_model

    _, model = empty_model(base, trust_remote_code)
    return build(model, Path(adapter) if adapter else None)
