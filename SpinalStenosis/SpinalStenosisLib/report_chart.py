"""The report's profile of the canal along the stack: canal AP and dural-sac area per slice against their cut-offs,
so that every slice of a long series is seen at once (the report's panels show twelve at most)."""
from __future__ import annotations

import math
from typing import Mapping, NamedTuple

import numpy as np

from .grading import MEASUREMENT_UNITS, grade, stenosis_cutoffs
from .measurement import SliceMeasurement

CHART_PX = 190  # height of the profile strip
GRADE_COLOURS = {"normal": "#d9d9d9", "relative stenosis": "#ffaa33", "absolute stenosis": "#ff4d4d"}
UNGRADED_COLOUR = "#6fa8dc"  # a canal no cut-off grades (a thoracic study, a slice named at a thoracic or sacral level)
CUTOFF_COLOURS = {"absolute": GRADE_COLOURS["absolute stenosis"], "relative": GRADE_COLOURS["relative stenosis"]}
AXIS_COLOUR, GRID_COLOUR = "#9a9a9a", "#333333"
DOT_RADIUS_PX = 3.5
# a grade each colour, hollow where the canal is to check (beside the second profile: "not graded", where drawn)
LEGEND = [(name, colour, False) for name, colour in GRADE_COLOURS.items()] + [("canal to check", "#d9d9d9", True)]
PROFILES = (  # (value, grade, title)
    ("canal_ap_mm", "canal_ap_grade", "canal AP along the"),
    ("canal_area_mm2", "canal_area_grade", "dural-sac area along the"),
)


def shows_profile(blocks: Mapping[str, list[SliceMeasurement]]) -> bool:
    """A profile is drawn for a stack (or the blocks of a series, see draw_profiles) with a canal measured on two
    slices or more."""
    return sum(not math.isnan(m.values["canal_ap_mm"]) for block in blocks.values() for m in block) >= 2


class _Axis(NamedTuple):
    """Where the profile puts each slice along its x axis, and what the axis says."""

    measurements: list[SliceMeasurement]
    x: np.ndarray
    joined: list[bool]  # whether each slice's dot is joined to the one before it
    ticks: list[tuple[float, str]]
    label: str
    block_starts: list[float]  # where a block begins, after the first
    along: str  # what the profile runs along: "stack" or "series"


def _axis(blocks: Mapping[str, list[SliceMeasurement]]) -> _Axis:
    """One stack (a single block named ""): its slices by index, ticked at round indices. The blocks of a series:
    each block's slices one after the other, joined within the block only, ticked with the block's name."""
    if list(blocks) == [""]:
        measurements = blocks[""]
        slices = np.array([m.slice_index for m in measurements], float)
        step = max(1, int(_step(slices.max() - slices.min() + 1)))
        ticks = [(float(index), str(index)) for index in range(int(math.ceil(slices.min() / step)) * step,
                                                               int(slices.max()) + 1, step)]
        return _Axis(measurements, slices, [False] + [True] * (len(slices) - 1), ticks, "slice", [], "stack")
    measurements, joined, ticks, starts = [], [], [], []
    for name, block in blocks.items():
        starts.append(len(measurements) - 0.5)
        ticks.append((len(measurements) + (len(block) - 1) / 2, name))
        joined += [False] + [True] * (len(block) - 1)
        measurements += block
    return _Axis(measurements, np.arange(len(measurements), dtype=float), joined, ticks, "", starts[1:], "series")


def _cutoffs(value: str, region: str) -> dict[str, float]:
    """The cut-offs drawn as lines (none for a thoracic study, whose canal is not graded)."""
    limits = stenosis_cutoffs(value, region)
    if limits is None:
        return {}
    absolute, relative = limits
    return {"absolute": absolute} if relative == absolute else {"absolute": absolute, "relative": relative}


def _step(span: float) -> float:
    """A round tick step giving about four ticks over span."""
    raw = span / 4
    power = 10 ** math.floor(math.log10(raw))
    return next(power * m for m in (1, 2, 5, 10) if power * m >= raw)


def draw_profiles(draw, box: tuple[float, float, float, float], blocks: Mapping[str, list[SliceMeasurement]],
                  region: str, font) -> None:
    """The profiles side by side in box (left, top, right, bottom) of a Pillow ImageDraw: per slice of a stack
    (blocks: its measurements as one block named ""), or of each block of a series in turn (by block name, see
    _axis), each value as a dot in its grade's colour (UNGRADED_COLOUR where no cut-off grades it; hollow where the
    canal is to check), joined along runs of measured slices, with the cut-offs as lines in their grade's colour."""
    left, top, right, bottom = box
    width = (right - left) / len(PROFILES)
    axis = _axis(blocks)
    measurements, slices = axis.measurements, axis.x
    x_low, x_high = slices.min() - 0.5, slices.max() + 0.5
    titles = [f"{title} {axis.along} ({MEASUREMENT_UNITS[value]})" for value, _, title in PROFILES]
    ungraded = False
    for n, (value, grade_name, _) in enumerate(PROFILES):
        plot = (left + n * width + 48, top + 22, left + (n + 1) * width - 16, bottom - 22)
        values = np.array([m.values[value] for m in measurements], float)
        cutoffs = _cutoffs(value, region)
        y_high = max([np.nanmax(values), *cutoffs.values()]) * 1.1
        step = _step(y_high)

        def xy(index: float, y: float, plot=plot, y_high=y_high) -> tuple[float, float]:
            return (plot[0] + (index - x_low) / (x_high - x_low) * (plot[2] - plot[0]),
                    plot[3] - y / y_high * (plot[3] - plot[1]))

        draw.text((plot[0], top + 4), titles[n], fill="white", font=font)
        for tick in np.arange(0.0, y_high, step):
            y = xy(x_low, tick)[1]
            draw.line((plot[0], y, plot[2], y), fill=GRID_COLOUR)
            draw.text((plot[0] - 5, y), f"{tick:g}", fill=AXIS_COLOUR, font=font, anchor="rm")
        for index, tick in axis.ticks:
            draw.text((xy(index, 0)[0], plot[3] + 4), tick, fill=AXIS_COLOUR, font=font, anchor="mt")
        draw.text((plot[0] - 5, plot[3] + 8), axis.label, fill=AXIS_COLOUR, font=font, anchor="rt")
        for start in axis.block_starts:
            draw.line((*xy(start, 0), *xy(start, y_high)), fill=AXIS_COLOUR, width=1)
        for kind, cutoff in cutoffs.items():
            draw.line((*xy(x_low, cutoff), *xy(x_high, cutoff)), fill=CUTOFF_COLOURS[kind], width=1)
        draw.rectangle(plot, outline=AXIS_COLOUR)
        points = [xy(index, y) if math.isfinite(y) else None for index, y in zip(slices, values)]
        for start, end, joined in zip(points, points[1:], axis.joined[1:]):
            if start is not None and end is not None and joined:
                draw.line((*start, *end), fill=AXIS_COLOUR, width=1)
        radius_px = float(np.clip(0.45 * (plot[2] - plot[0]) / (x_high - x_low), 1.5, DOT_RADIUS_PX))  # dense stacks
        for m, point in zip(measurements, points):
            if point is not None:
                colour = GRADE_COLOURS.get(grade(m.values, region, m.level)[grade_name], UNGRADED_COLOUR)
                ungraded |= colour == UNGRADED_COLOUR
                _dot(draw, point, colour, m.is_to_check("canal"), radius_px)
    room_px = [width - 80 - font.getlength(title) for title in titles]
    _legend(draw, left + width - 16, top + 4, font, LEGEND, room_px[0])
    if ungraded:
        _legend(draw, left + 2 * width - 16, top + 4, font, [("not graded", UNGRADED_COLOUR, False)], room_px[1])


def _dot(draw, centre: tuple[float, float], colour: str, hollow: bool, radius_px: float = DOT_RADIUS_PX) -> None:
    x, y = centre
    draw.ellipse((x - radius_px, y - radius_px, x + radius_px, y + radius_px), outline=colour,
                 fill=None if hollow else colour, width=2 if radius_px > 2 else 1)


def _legend(draw, right: float, top: float, font, entries: list[tuple[str, str, bool]], room_px: float) -> None:
    """What the dots say (entries: name, colour, hollow), right-aligned at (right, top); left out where it needs
    more than room_px (a report two panels wide)."""
    if sum(font.getlength(name) + 2 * DOT_RADIUS_PX + 18 for name, _, _ in entries) > room_px:
        return
    x = right
    for name, colour, hollow in reversed(entries):
        x -= font.getlength(name)
        draw.text((x, top), name, fill=AXIS_COLOUR, font=font)
        x -= 2 * DOT_RADIUS_PX + 4
        _dot(draw, (x + DOT_RADIUS_PX, top + font.size / 2 + 1), colour, hollow)
        x -= 14
