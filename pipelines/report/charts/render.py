"""A chart's figure as an inline SVG element (text as text, ids its own) and, where an image is needed, a PNG.

No pyplot: figures are `matplotlib.figure.Figure` objects rendered without a display, keep no global state between
charts and are safe inside a Dagster run. The page embeds the SVG inline (selectable, searchable, sharp in print and
PDF, and a browser test can measure every tick label); the PNG is for Dagster's metadata.
"""

from __future__ import annotations

import io
import re

import matplotlib
from matplotlib.figure import Figure

from pipelines.report.charts.common import DPI, STYLE, ChartSpec

_SVG_ID = re.compile(r'\bid="([^"]+)"')


def _svg_element(fig: Figure, prefix: str) -> str:
    """The figure as an <svg> element for inline use: no XML prologue, no metadata, and every id (and reference
    to it) prefixed, so several charts in one page never share an id."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", dpi=DPI, metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    ids = set(_SVG_ID.findall(text))
    text = _SVG_ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(
        r'(href="#|url\(#)([^")]+)',
        lambda m: m.group(1) + (f"{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(2)),
        text,
    )
    return text.strip()


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def render_svg(spec: ChartSpec, data: dict) -> tuple[str, Figure]:
    """(inline SVG, the figure: `render_png` draws the same figure as a PNG later)."""
    with matplotlib.rc_context(STYLE):
        fig = spec.draw(data)
        return _svg_element(fig, spec.id), fig


def render_png(fig: Figure) -> bytes:
    with matplotlib.rc_context(STYLE):
        return _png(fig)
