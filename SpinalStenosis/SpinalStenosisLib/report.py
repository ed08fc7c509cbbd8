"""The PNG report: each measured slice in radiological view with mask outlines, rulers, numbers and grades.

Drawn with Pillow on a NumPy canvas: each panel is the slice resampled onto a square view around the canal.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import ndimage

from .crop import crop_grid, resample
from .findings import (describe_findings, describe_levels, slice_name, slices_of, worst_findings,
                       worst_findings_by_level, worst_findings_by_level_of_blocks, worst_findings_of_blocks)
from .geometry import PlaneGrid
from .grading import grade, value_with_unit
from .markups_json import RULER_COLOURS
from .measurement import SliceMeasurement, misshapen, unmatched_foramen
from .report_chart import CHART_PX, draw_profiles, shows_profile
from .symmetry import off_axis

MASK_COLOURS = {1: "#ffd21a", 2: "#33ccff", 3: "#4dff66"}
MAX_PANELS = 12
COLUMNS = 4
VIEW_HALF_WIDTH_MM = 35.0
VIEW_PX = 360  # side of a panel's square image (about 5 px a mm)
CAPTION_PX = 110
MARGIN_PX = 9
TITLE_PX = 40
FINDINGS_LINE_PX = 18  # under the title, the study's worst findings, as many lines as the width needs
WARNING_COLOUR = "#ffaa33"  # under the findings, what the user must know about the input (MeasurementRun.warnings)
OUTLINE_PX = 2
RULER_PX = 2
TEXT_PX, CAPTION_TEXT_PX, TITLE_TEXT_PX = 13, 12, 16


def _pick_slices(measurements: list[SliceMeasurement], worst_slices: set[int]) -> list[SliceMeasurement]:
    """The measured slices; when there are more than MAX_PANELS, those holding the worst findings and others evenly
    spread among the rest."""
    measured = [m for m in measurements if any(not math.isnan(v) for v in m.values.values())]
    if len(measured) <= MAX_PANELS:
        return measured
    others = [m for m in measured if m.slice_index not in worst_slices]
    spread = np.linspace(0, len(others) - 1, MAX_PANELS - len(worst_slices)).round().astype(int)
    keep = worst_slices | {others[i].slice_index for i in spread}
    return [m for m in measured if m.slice_index in keep]


def _caption(m: SliceMeasurement, region: str, block: str = "") -> str:
    """A panel's caption: the slice, then a line a measurement, each marked CHECK where its structure is to check;
    why, where the reason is the image's edge, the spine's axis, the canal's shape or a foramen found on the other
    side only, on the structure's first line only (the canal's area line would not fit the panel's width with it)."""
    grades = grade(m.values, region, m.level)

    def fmt(name: str, label: str, structure: str, why: bool = True) -> str:
        check = ("  CHECK (edge)" if why and structure in m.cut_by_field_of_view  # the image's edge cuts it
                 else "  CHECK (off axis)" if why and structure == "canal" and off_axis(m.canal_off_axis_mm)
                 else "  CHECK (shape)" if why and structure == "canal" and misshapen(m.canal_area_to_chords)
                 else "  CHECK (other side found)" if why and unmatched_foramen(structure, m.confidences)
                 else "  CHECK" if m.is_to_check(structure) else "")
        value = m.values[name]
        return ("absent" if math.isnan(value) else value_with_unit(name, value) + (f" ({label})" if label else "")
                ) + check

    return "\n".join([
        f"{slice_name(m.slice_index, m.level, block, m.image_number)}  z={m.z_mm:.1f} mm",
        f"AP {fmt('canal_ap_mm', grades['canal_ap_grade'], 'canal')}",
        f"area {fmt('canal_area_mm2', grades['canal_area_grade'], 'canal', why=False)}",
        f"transverse {fmt('canal_transverse_mm', '', 'canal', why=False)}",
        f"foramen R {fmt('right_foramen_width_mm', grades['right_foramen_grade'], 'right_foramen')}",
        f"foramen L {fmt('left_foramen_width_mm', grades['left_foramen_grade'], 'left_foramen')}",
    ])


def _wrapped(text: str, font, width_px: float) -> list[str]:
    """text broken at spaces into lines no wider than width_px (a single word wider than that keeps a line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width_px:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _rgb(colour: str | list[float]) -> tuple[int, int, int]:
    """A '#rrggbb' string or [r, g, b] in 0..1 as 0..255 integers."""
    if isinstance(colour, str):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(round(255 * c)) for c in colour)


# fonts with the '²' of mm² (Pillow's default has none) where DejaVu is missing: Windows' and macOS's Arial and Courier
# New (3D Slicer there has no matplotlib, whose copy of DejaVu the command line finds)
FONT_STAND_INS = {"DejaVuSans.ttf": ("Arial.ttf", "arial.ttf"), "DejaVuSansMono.ttf": ("Courier New.ttf", "cour.ttf")}


def _font(file_name: str, size: int):
    """A DejaVu font: the system's, else matplotlib's copy, else its FONT_STAND_INS, else Pillow's default."""
    import importlib.util

    from PIL import ImageFont

    matplotlib = importlib.util.find_spec("matplotlib")
    candidates = [file_name]
    if matplotlib is not None and matplotlib.submodule_search_locations:
        package = Path(matplotlib.submodule_search_locations[0])
        candidates.append(str(package / "mpl-data" / "fonts" / "ttf" / file_name))
    for candidate in [*candidates, *FONT_STAND_INS[file_name]]:
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _view(grid: PlaneGrid, labels: np.ndarray) -> PlaneGrid:
    """The panel's square view, centred on the canal (on the structures found, or the slice, without one)."""
    found = np.argwhere(labels == 1) if (labels == 1).any() else np.argwhere(labels > 0)
    centre = found.mean(axis=0) if len(found) else (np.array(labels.shape) - 1) / 2.0
    return crop_grid(grid, (float(centre[0]), float(centre[1])), 2 * VIEW_HALF_WIDTH_MM, VIEW_PX)


def _panel(image: np.ndarray, grid: PlaneGrid, view: PlaneGrid) -> np.ndarray:
    """One slice's view as a grey RGB image."""
    low, high = np.percentile(image, [1, 99.5])
    grey = np.clip((resample(image, grid, view) - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    return np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)


def _outline(panel: np.ndarray, labels: np.ndarray, grid: PlaneGrid, view: PlaneGrid) -> np.ndarray:
    """The panel with each structure's outline in its colour: the view's pixels inside the 0.5 iso-line of its mask
    (resampled bilinearly onto the view, around the mask only) and within OUTLINE_PX of it."""
    for value, colour in MASK_COLOURS.items():
        mask = labels == value
        rows, columns = np.nonzero(mask)
        if not len(rows):
            continue
        box = grid.crop(rows.min() - 1, columns.min() - 1, np.ptp(rows) + 3, np.ptp(columns) + 3, (1, 1))  # + a pixel
        row_min, row_max, column_min, column_max = box.extent_on(view)
        margin = OUTLINE_PX + 1
        r0, c0 = np.maximum(np.floor([row_min, column_min]).astype(int) - margin, 0)
        r1, c1 = np.minimum(np.ceil([row_max, column_max]).astype(int) + margin + 1, view.shape)
        if r1 <= r0 or c1 <= c0:
            continue  # outside the view
        window = view.crop(r0, c0, r1 - r0, c1 - c0, (r1 - r0, c1 - c0))
        inside = resample(mask.astype(np.float32), grid, window) >= 0.5
        edge = inside & ~ndimage.binary_erosion(inside, iterations=OUTLINE_PX, border_value=1)
        panel[r0:r1, c0:c1][edge] = _rgb(colour)
    return panel


def _draw_rulers(draw, m: SliceMeasurement, view: PlaneGrid) -> None:
    """The rulers with their end points, on the panel (which clips what lies beyond the view)."""
    def xy(rows: np.ndarray, columns: np.ndarray) -> list[tuple[float, float]]:
        return [(float(c) + 0.5, float(r) + 0.5) for r, c in zip(rows, columns)]  # Pillow: pixel k spans k..k+1

    for name, ruler in m.rulers.items():
        points = xy(*view.to_index(np.stack([ruler.start_ras, ruler.end_ras])))
        colour = _rgb(RULER_COLOURS[name])
        draw.line(points, fill=colour, width=RULER_PX)
        for x, y in points:
            draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=colour)


class StackView(NamedTuple):
    """A measured stack as the report reads it: its measurements, and each slice's image, labels and grid."""

    measurements: list[SliceMeasurement]
    read_slice: Callable[[int], np.ndarray]
    read_labels: Callable[[int], np.ndarray]
    slice_grid: Callable[[int], PlaneGrid]


def write_report(path: Path, measurements: list[SliceMeasurement], read_slice: Callable[[int], np.ndarray],
                 read_labels: Callable[[int], np.ndarray], slice_grid: Callable[[int], PlaneGrid],
                 region: str, title: str, warnings: Sequence[str] = ()) -> None:
    """The report of a run's measurements (see the module's docstring): title, worst findings, those of each named
    level, warnings (e.g. MeasurementRun.warnings), the profile along the stack and the panels."""
    findings = worst_findings(measurements, region)
    stack = StackView(measurements, read_slice, read_labels, slice_grid)
    panels = [(stack, m, "") for m in _pick_slices(measurements, slices_of(findings))]
    texts = [describe_findings(findings), *describe_levels(worst_findings_by_level(measurements, region))]
    _render(path, title, texts, warnings, panels, region, {"": measurements})


def write_series_report(path: Path, blocks: Mapping[str, StackView], region: str, title: str,
                        warnings: Sequence[str] = ()) -> None:
    """The report of a DICOM series measured in blocks (each block's stack by its folder's name): the whole
    series' worst findings and those of each named level, the warnings, and a panel for each slice that holds one
    of a block's worst findings (only each block's narrowest canal AP when those are more than MAX_PANELS)."""
    measurements = {name: stack.measurements for name, stack in blocks.items()}
    texts = [describe_findings(worst_findings_of_blocks(measurements, region)),
             *describe_levels(worst_findings_by_level_of_blocks(measurements, region))]
    worst = {name: worst_findings(stack.measurements, region) for name, stack in blocks.items()}
    shown = {name: slices_of(findings) for name, findings in worst.items()}
    if sum(map(len, shown.values())) > MAX_PANELS:
        shown = {name: {findings["canal_ap_mm"].slice_index} if "canal_ap_mm" in findings else set()
                 for name, findings in worst.items()}
    panels = [(stack, m, name) for name, stack in blocks.items() for m in stack.measurements
              if m.slice_index in shown[name]][:MAX_PANELS]
    _render(path, title, texts, warnings, panels, region, measurements)


def _render(path: Path, title: str, texts: Sequence[str], warnings: Sequence[str],
            panels: Sequence[tuple[StackView, SliceMeasurement, str]], region: str,
            profile: Mapping[str, list[SliceMeasurement]]) -> None:
    """Draw a report: title; the texts (findings) in white and the warnings in orange, each wrapped to the width;
    the profile of the measurements (a stack's, or each block's by name; see draw_profiles) where it shows one
    (shows_profile); then a panel per (stack, slice, block name)."""
    from PIL import Image, ImageDraw

    columns = min(COLUMNS, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    cell_w, cell_h = VIEW_PX + 2 * MARGIN_PX, CAPTION_PX + VIEW_PX + MARGIN_PX
    font, title_font = _font("DejaVuSans.ttf", TEXT_PX), _font("DejaVuSans.ttf", TITLE_TEXT_PX)
    caption_font = _font("DejaVuSansMono.ttf", CAPTION_TEXT_PX)
    width_px = columns * cell_w - 2 * MARGIN_PX
    header_lines = [(line, "white") for text in texts for line in _wrapped(text, font, width_px)]
    header_lines += [(line, WARNING_COLOUR) for warning in warnings
                     for line in _wrapped(f"Warning: {warning}", font, width_px)]
    lines_px = TITLE_PX + len(header_lines) * FINDINGS_LINE_PX
    shown = shows_profile(profile)
    header_px = lines_px + (CHART_PX if shown else 0)
    canvas = Image.new("RGB", (columns * cell_w, header_px + rows * cell_h), "black")
    draw = ImageDraw.Draw(canvas)
    draw.text((canvas.width / 2, TITLE_PX / 2), title, fill="white", font=title_font, anchor="mm")
    for n, (line, colour) in enumerate(header_lines):
        draw.text((canvas.width / 2, TITLE_PX + (n + 0.5) * FINDINGS_LINE_PX), line, fill=colour, font=font,
                  anchor="mm")
    if shown:
        draw_profiles(draw, (MARGIN_PX, lines_px, canvas.width - MARGIN_PX, header_px - MARGIN_PX), profile,
                      region, font)
    if not panels:
        draw.text((canvas.width / 2, header_px + cell_h / 2), "nothing measured:\nno canal or foramen found",
                  fill="white", font=font, anchor="mm", align="center")
    for n, (stack, m, block) in enumerate(panels):
        left, top = (n % columns) * cell_w + MARGIN_PX, header_px + (n // columns) * cell_h
        s = m.slice_index
        image, labels, grid = stack.read_slice(s), stack.read_labels(s), stack.slice_grid(s)
        image_top, view = top + CAPTION_PX, _view(grid, labels)
        panel = Image.fromarray(_outline(_panel(image, grid, view), labels, grid, view))
        _draw_rulers(ImageDraw.Draw(panel), m, view)
        canvas.paste(panel, (left, image_top))
        draw.multiline_text((left + 4, top + 4), _caption(m, region, block), fill="white", font=caption_font,
                            spacing=4)
        for text, xy, anchor in (("R", (left + 6, image_top + VIEW_PX / 2), "lm"),
                                 ("L", (left + VIEW_PX - 6, image_top + VIEW_PX / 2), "rm"),
                                 ("A", (left + VIEW_PX / 2, image_top + 6), "mt")):
            draw.text(xy, text, fill="white", font=font, anchor=anchor)
    canvas.save(path, compress_level=1)
