"""The report's profile of the canal along the stack: canal AP and dural-sac area per slice against their cut-offs,
so that every slice of a long series is seen at once (the report's panels show twelve at most)."""
from __future__ import annotations

import math

import numpy as np

from .grading import CANAL_AP_CUTOFFS_MM, CANAL_AREA_CUTOFFS_MM2, grade
from .measurement import SliceMeasurement

CHART_PX = 190  # height of the profile strip
GRADE_COLOURS = {"normal": "#d9d9d9", "relative stenosis": "#ffaa33", "absolute stenosis": "#ff4d4d"}
UNGRADED_COLOUR = "#6fa8dc"  # a canal no cut-off grades (a thoracic study, a slice named at a thoracic or sacral level)
CUTOFF_COLOURS = {"absolute": GRADE_COLOURS["absolute stenosis"], "relative": GRADE_COLOURS["relative stenosis"]}
AXIS_COLOUR, GRID_COLOUR = "#9a9a9a", "#333333"
DOT_RADIUS_PX = 3.5
# a grade each colour, hollow where the canal is to check (beside the second profile: "not graded", where drawn)
LEGEND = [(name, colour, False) for name, colour in GRADE_COLOURS.items()] + [("canal to check", "#d9d9d9", True)]
PROFILES = (  # (value, grade, title, unit)
    ("canal_ap_mm", "canal_ap_grade", "canal AP along the stack", "mm"),
    ("canal_area_mm2", "canal_area_grade", "dural-sac area along the stack", "mm²"),
)


def shows_profile(measurements: list[SliceMeasurement]) -> bool:
    """A profile is drawn for a stack with a canal measured on two slices or more."""
    return sum(not math.isnan(m.values["canal_ap_mm"]) for m in measurements) >= 2


def _cutoffs(value: str, region: str) -> dict[str, float]:
    """The cut-offs drawn as lines (none for a thoracic study, whose canal is not graded)."""
    if region not in CANAL_AP_CUTOFFS_MM:
        return {}
    absolute, relative = CANAL_AP_CUTOFFS_MM[region] if value == "canal_ap_mm" else CANAL_AREA_CUTOFFS_MM2
    return {"absolute": absolute} if relative == absolute else {"absolute": absolute, "relative": relative}


def _step(span: float) -> float:
    """A round tick step giving about four ticks over span."""
    raw = span / 4
    power = 10 ** math.floor(math.log10(raw))
    return next(power * m for m in (1, 2, 5, 10) if power * m >= raw)


def draw_profiles(draw, box: tuple[float, float, float, float], measurements: list[SliceMeasurement], region: str,
                  font) -> None:
    """The profiles side by side in box (left, top, right, bottom) of a Pillow ImageDraw: per slice index, each
    value as a dot in its grade's colour (UNGRADED_COLOUR where no cut-off grades it; hollow where the canal is to
    check), joined along runs of measured slices, with the cut-offs as lines in their grade's colour."""
    left, top, right, bottom = box
    width = (right - left) / len(PROFILES)
    slices = np.array([m.slice_index for m in measurements], float)
    x_low, x_high = slices.min() - 0.5, slices.max() + 0.5
    titles = [f"{title} ({unit})" for _, _, title, unit in PROFILES]
    ungraded = False
    for n, (value, grade_name, _, _) in enumerate(PROFILES):
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
        x_step = max(1, int(_step(x_high - x_low)))
        for index in range(int(math.ceil(slices.min() / x_step)) * x_step, int(slices.max()) + 1, x_step):
            draw.text((xy(index, 0)[0], plot[3] + 4), str(index), fill=AXIS_COLOUR, font=font, anchor="mt")
        draw.text((plot[0] - 5, plot[3] + 8), "slice", fill=AXIS_COLOUR, font=font, anchor="rt")
        for kind, cutoff in cutoffs.items():
            draw.line((*xy(x_low, cutoff), *xy(x_high, cutoff)), fill=CUTOFF_COLOURS[kind], width=1)
        draw.rectangle(plot, outline=AXIS_COLOUR)
        points = [xy(index, y) if math.isfinite(y) else None for index, y in zip(slices, values)]
        for start, end in zip(points, points[1:]):
            if start is not None and end is not None:
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
