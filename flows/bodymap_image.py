"""The body map as a small PNG for the doctor's case card: the front and back figures of
``flows/questionnaires/bodymap.toml`` (the same polygons the patient tapped), each marked
region shaded by its intensity and labelled with it.

The words in the picture are the view names and "R"/"L" (in the doctor's language where the
fonts allow, as the weekly chart does: :func:`flows.ops_chart.chart_translator`); the region
names go in the caption, in text. Every region patch carries its id as ``gid`` and the
intensity as its label, so tests read the picture back from the figure instead of comparing
pixels. matplotlib is imported on the first picture, not at start-up.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flows.bodymap import VIEWS, BodyMap, Mark
from locales import Translator

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
SCALE = 1.1  # pixels per map unit: two 200 x 440 figures make a 440 x ~500 picture
OUTLINE, EMPTY = "#5d6d7e", "#eef2f6"
# Intensity 0-10 -> fill: pale yellow (0) through orange to deep red (10).
_RAMP = ((0, (1.0, 0.96, 0.75)), (5, (0.96, 0.6, 0.2)), (10, (0.7, 0.05, 0.05)))


def colour(intensity: int) -> tuple[float, float, float]:
    """The fill of a region marked with ``intensity`` (0-10)."""
    level = max(0, min(10, intensity))
    for (lo, c0), (hi, c1) in itertools.pairwise(_RAMP):
        if level <= hi:
            t = (level - lo) / (hi - lo)
            return (
                c0[0] + (c1[0] - c0[0]) * t,
                c0[1] + (c1[1] - c0[1]) * t,
                c0[2] + (c1[2] - c0[2]) * t,
            )
    return _RAMP[-1][1]


def _centre(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


def figure(bodymap: BodyMap, marks: Sequence[Mark], tr: Translator) -> Figure:
    """The picture as a matplotlib figure (:func:`render` draws it)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon

    by_region = {m.region: m for m in marks}
    width, height = bodymap.width, bodymap.height
    top = 40.0  # room for the view names
    fig = Figure(figsize=(2 * width * SCALE / DPI, (height + top) * SCALE / DPI), dpi=DPI)
    for index, view in enumerate(VIEWS):
        ax = fig.add_axes((index / 2, 0.0, 0.5, 1.0))
        ax.set_xlim(0, width)
        ax.set_ylim(height, -top)  # y grows downwards, as in the SVG
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_gid(view)
        for region in bodymap.in_view(view):
            points = region.shapes[view]
            mark = by_region.get(region.id)
            fill = colour(mark.intensity) if mark is not None else EMPTY
            patch = Polygon(
                points, closed=True, facecolor=fill, edgecolor=OUTLINE, linewidth=0.8,
                label=str(mark.intensity) if mark is not None else "",
            )  # fmt: skip
            patch.set_gid(region.id)
            ax.add_patch(patch)
            if mark is not None:
                x, y = _centre(points)
                dark = mark.intensity >= 6
                ax.text(x, y, str(mark.intensity), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")  # fmt: skip
        ax.text(width / 2, -top + 14, tr.plain(f"bodymap.view.{view}"), ha="center",
                va="center", fontsize=11, color="#1b2530")  # fmt: skip
        # The patient's right is on the viewer's left from the front, on the right from behind.
        right_x, left_x = (14.0, width - 14.0) if view == "front" else (width - 14.0, 14.0)
        for x, msgid in ((right_x, "bodymap.side.right"), (left_x, "bodymap.side.left")):
            ax.text(x, -top + 14, tr.plain(msgid), ha="center", va="center", fontsize=10,
                    color=OUTLINE)  # fmt: skip
    return fig


def render(bodymap: BodyMap, marks: Sequence[Mark], tr: Translator) -> bytes:
    """The picture as PNG bytes, in ``tr``'s language where the fonts allow."""
    import matplotlib

    from flows.ops_chart import _families, chart_translator

    words = chart_translator(tr)
    with matplotlib.rc_context({"font.family": list(_families()), "font.size": 10}):
        fig = figure(bodymap, marks, words)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()
