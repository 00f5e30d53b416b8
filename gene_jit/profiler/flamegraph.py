"""A flame graph of the sampled stacks as a standalone SVG: one box per frame (the root
`all` at the bottom, callees above their callers, width proportional to time), with
the name, time and share in each box's tooltip."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from gene_jit.profiler.areas import JIT
from gene_jit.profiler.model import ProfileData

WIDTH = 1200
ROW = 17
PAD = 10
TITLE_H = 34
CHAR_W = 7.0  # approximate width of a 12px monospace character


@dataclass
class Node:
    name: str
    where: str
    ms: float = 0.0
    children: dict[int, Node] = field(default_factory=dict)


def build_tree(data: ProfileData) -> Node:
    root = Node("all", "")
    for stack, ms in data.stacks:
        node = root
        node.ms += ms
        for idx in stack:
            child = node.children.get(idx)
            if child is None:
                f = data.frames[idx]
                child = node.children[idx] = Node(f.name, f"{f.file}:{f.line}" if f.file else "")
            child.ms += ms
            node = child
    return root


def _depth(node: Node) -> int:
    return 1 + max((_depth(c) for c in node.children.values()), default=0)


def _color(node: Node) -> str:
    if node.name == f"[{JIT}]":  # compiling, not running the program
        return "rgb(170,140,220)"
    if node.name.startswith("["):  # a library area
        return "rgb(90,150,220)"
    if node.name in ("all", "(top level)", "..."):
        return "rgb(190,190,190)"
    h = zlib.crc32(node.name.encode())
    return f"rgb({205 + h % 50},{80 + (h >> 8) % 110},{40 + (h >> 16) % 40})"


def render(data: ProfileData, title: str | None = None) -> str:
    root = build_tree(data)
    depth = _depth(root)
    height = TITLE_H + depth * ROW + PAD * 2
    scale = (WIDTH - 2 * PAD) / root.ms if root.ms > 0 else 0.0
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="12">',
        "<style>g.frame:hover rect { stroke: black; stroke-width: 0.8; } text { pointer-events: none; }</style>",
        f'<rect class="background" x="0" y="0" width="{WIDTH}" height="{height}" fill="rgb(250,250,245)"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">'
        f"{escape(title or 'flame graph: ' + data.program)}</text>",
    ]
    total = root.ms

    def emit(node: Node, x: float, level: int) -> None:
        w = node.ms * scale
        y = height - PAD - (level + 1) * ROW
        share = 100 * node.ms / total if total else 0.0
        tip = f"{node.name} ({node.where}) " if node.where else f"{node.name} "
        tip += f"{node.ms:,.2f} ms, {share:.1f}%"
        label = (
            node.name
            if len(node.name) * CHAR_W < w - 4
            else (node.name[: int((w - 4) / CHAR_W) - 2] + ".." if w > 3 * CHAR_W else "")
        )
        out.append(
            f'<g class="frame"><title>{escape(tip)}</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{max(w, 0.1):.2f}" height="{ROW - 1}" rx="2" fill="{_color(node)}"/>'
            f'<text x="{x + 3:.2f}" y="{y + ROW - 5}">{escape(label)}</text></g>'
        )
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            emit(child, cx, level + 1)
            cx += child.ms * scale

    emit(root, PAD, 0)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def count_frames(node: Node) -> int:
    return 1 + sum(count_frames(c) for c in node.children.values())
