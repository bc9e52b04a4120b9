"""The transition chart a person opens after a replay: a from × to heat-map and a bar per transition.

Hand-written SVG (no plotting dependency): any browser shows it, and it is plain text, so
it is deterministic and diffable like the other outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape

from streams.replay.report import label, ordered_types

CELL_W, CELL_H = 96, 44
LEFT, TOP = 120, 112
BAR_H, BAR_GAP, BAR_MAX_W = 20, 6, 380


def _shade(n: int, most: int) -> str:
    """White to dark blue; square-root scale so small transitions still show."""
    if not n:
        return "#f4f4f4"
    f = (n / most) ** 0.5
    r, g, b = (round(255 - (255 - c) * f) for c in (33, 102, 172))
    return f"#{r:02x}{g:02x}{b:02x}"


def transitions_svg(
    transitions: Mapping[tuple[str | None, str | None], int], title: str = "Lifecycle transitions"
) -> str:
    """An SVG document of `(from, to) -> changes`; `from` None is a customer's first type."""
    rows = [None, *ordered_types(a for a, _ in transitions if a is not None)]
    cols = ordered_types(b for _, b in transitions if b is not None)
    most = max(transitions.values(), default=0) or 1
    total = sum(transitions.values())
    pairs = sorted(
        ((n, a, b) for (a, b), n in transitions.items() if n), key=lambda x: (-x[0], label(x[1]), label(x[2]))
    )

    grid_w, grid_h = LEFT + CELL_W * max(len(cols), 1), TOP + CELL_H * len(rows)
    bars_top = grid_h + 60
    width = max(grid_w + 40, LEFT + 200 + BAR_MAX_W + 80)
    height = bars_top + (BAR_H + BAR_GAP) * len(pairs) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="20" y="28" font-size="18" font-weight="bold">{escape(title)}</text>',
        f'<text x="20" y="50" fill="#555">{total} lifecycle changes; rows: from, columns: to '
        f"({escape(label(None))} = first type of a new customer)</text>",
        f'<text x="{LEFT + CELL_W * len(cols) / 2}" y="{TOP - 30}" text-anchor="middle" fill="#555">to</text>',
        f'<text x="{LEFT - 10}" y="{TOP - 8}" text-anchor="end" fill="#555">from</text>',
    ]
    for j, col in enumerate(cols):
        out.append(
            f'<text x="{LEFT + CELL_W * j + CELL_W / 2}" y="{TOP - 8}" text-anchor="middle" '
            f'font-weight="bold">{escape(col)}</text>'
        )
    for i, row in enumerate(rows):
        y = TOP + CELL_H * i
        out.append(
            f'<text x="{LEFT - 10}" y="{y + CELL_H / 2 + 5}" text-anchor="end" '
            f'font-weight="bold">{escape(label(row))}</text>'
        )
        for j, col in enumerate(cols):
            n = transitions.get((row, col), 0)
            x = LEFT + CELL_W * j
            ink = "white" if n and n / most > 0.35 else "#222"
            out.append(
                f"<g><title>{escape(label(row))} → {escape(col)}: {n}</title>"
                f'<rect x="{x}" y="{y}" width="{CELL_W - 2}" height="{CELL_H - 2}" fill="{_shade(n, most)}"/>'
                f'<text x="{x + CELL_W / 2 - 1}" y="{y + CELL_H / 2 + 5}" text-anchor="middle" fill="{ink}">'
                f"{n if n else '·'}</text></g>"
            )
    out.append(f'<text x="20" y="{bars_top - 16}" font-size="15" font-weight="bold">Changes per transition</text>')
    for k, (n, a, b) in enumerate(pairs):
        y = bars_top + (BAR_H + BAR_GAP) * k
        w = max(1, round(BAR_MAX_W * n / most))
        name = f"{label(a)} → {b}"
        out.append(
            f"<g><title>{escape(name)}: {n}</title>"
            f'<text x="{LEFT + 190}" y="{y + BAR_H - 5}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{LEFT + 200}" y="{y}" width="{w}" height="{BAR_H}" fill="#2166ac"/>'
            f'<text x="{LEFT + 206 + w}" y="{y + BAR_H - 5}">{n}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
