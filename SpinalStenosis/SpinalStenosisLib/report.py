"""The PNG report: each measured slice in radiological view with mask outlines, rulers, numbers and grades."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from .geometry import PlaneGrid
from .grading import grade
from .markups_json import RULER_COLOURS
from .measurement import SliceMeasurement

MASK_COLOURS = {1: "#ffd21a", 2: "#33ccff", 3: "#4dff66"}
MAX_PANELS = 12
VIEW_HALF_WIDTH_MM = 35.0
PANEL_IN = (4.2, 5.6)  # width, height of one panel (caption band + square image), inches
CAPTION_IN = 1.2
TITLE_IN = 0.45


def _pick_slices(measurements: list[SliceMeasurement]) -> list[SliceMeasurement]:
    measured = [m for m in measurements if any(not math.isnan(v) for v in m.values.values())]
    if len(measured) <= MAX_PANELS:
        return measured
    keep = np.linspace(0, len(measured) - 1, MAX_PANELS).round().astype(int)
    return [measured[i] for i in keep]


def _caption(m: SliceMeasurement, region: str) -> str:
    grades = grade(m.values, region)

    def fmt(value: float, unit: str, label: str) -> str:
        return "absent" if math.isnan(value) else f"{value:.1f} {unit}" + (f" ({label})" if label else "")

    return "\n".join([
        f"slice {m.slice_index}  z={m.z_mm:.1f} mm",
        f"AP {fmt(m.values['canal_ap_mm'], 'mm', grades['canal_ap_grade'])}",
        f"area {fmt(m.values['canal_area_mm2'], 'mm²', grades['canal_area_grade'])}",
        f"transverse {fmt(m.values['canal_transverse_mm'], 'mm', '')}",
        f"foramen R {fmt(m.values['right_foramen_width_mm'], 'mm', grades['right_foramen_grade'])}",
        f"foramen L {fmt(m.values['left_foramen_width_mm'], 'mm', grades['left_foramen_grade'])}",
    ])


def _outline(mask: np.ndarray, row0: int, column0: int) -> list[np.ndarray]:
    """The 0.5 iso-lines of a binary mask as (column, row) polylines in the slice's pixel indices (what
    ``ax.contour`` draws, without building a ContourSet, which costs most of the report's time)."""
    import contourpy

    rows, columns = mask.shape
    generator = contourpy.contour_generator(np.arange(column0, column0 + columns), np.arange(row0, row0 + rows),
                                            mask.astype(float), name="serial",
                                            line_type=contourpy.LineType.Separate)
    return generator.lines(0.5)


def write_report(path: Path, measurements: list[SliceMeasurement], read_slice: Callable[[int], np.ndarray],
                 read_labels: Callable[[int], np.ndarray], slice_grid: Callable[[int], PlaneGrid],
                 region: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    panels = _pick_slices(measurements)
    columns = min(4, max(1, len(panels)))
    n_rows = max(1, math.ceil(len(panels) / columns))
    width_in, height_in = PANEL_IN[0] * columns, PANEL_IN[1] * n_rows + TITLE_IN
    figure = plt.figure(figsize=(width_in, height_in), facecolor="black")
    # fixed layout (no tight_layout): every panel is a caption band above a square image
    cell_width, cell_height = 1.0 / columns, PANEL_IN[1] / height_in
    image_height = (PANEL_IN[1] - CAPTION_IN) / height_in
    axes = []
    for n in range(max(1, len(panels))):
        left, top = (n % columns) * cell_width, 1.0 - (TITLE_IN + (n // columns) * PANEL_IN[1]) / height_in
        ax = figure.add_axes((left + 0.02 * cell_width, top - cell_height + 0.01 * cell_height, 0.96 * cell_width,
                              image_height))
        ax.axis("off")
        axes.append((ax, left, top))
    if not panels:
        axes[0][0].text(0.5, 0.5, "nothing measured:\nno canal or foramen found", color="white",
                        ha="center", va="center", transform=axes[0][0].transAxes, fontsize=12)
    for (ax, left, top), m in zip(axes, panels):
        image, labels, grid = read_slice(m.slice_index), read_labels(m.slice_index), slice_grid(m.slice_index)
        row_mm, column_mm = grid.pixel_size_mm
        low, high = np.percentile(image, [1, 99.5])
        found = np.argwhere(labels == 1) if (labels == 1).any() else np.argwhere(labels > 0)
        centre = found.mean(axis=0) if len(found) else np.array(image.shape) / 2.0
        half = np.array([VIEW_HALF_WIDTH_MM / row_mm, VIEW_HALF_WIDTH_MM / column_mm])
        # draw only the viewed part of the slice: contouring and resampling the whole slice costs several times more
        (r0, c0), (r1, c1) = (np.clip(np.floor(centre - half).astype(int) - 1, 0, image.shape),
                              np.clip(np.ceil(centre + half).astype(int) + 2, 0, image.shape))
        view = np.s_[r0:r1, c0:c1]
        ax.imshow(image[view], cmap="gray", vmin=low, vmax=max(high, low + 1e-6), aspect=row_mm / column_mm,
                  interpolation="bilinear", extent=(c0 - 0.5, c1 - 0.5, r1 - 0.5, r0 - 0.5))
        for value, colour in MASK_COLOURS.items():
            if (labels[view] == value).any():
                ax.add_collection(LineCollection(_outline(labels[view] == value, r0, c0), colors=colour,
                                                 linewidths=1.0, zorder=2))
        for name, ruler in m.rulers.items():
            rows, cols = grid.to_index(np.stack([ruler.start_ras, ruler.end_ras]))
            ax.plot(cols, rows, "-", color=RULER_COLOURS[name], linewidth=1.6)
            ax.plot(cols, rows, "o", color=RULER_COLOURS[name], markersize=2.5)
        ax.set_xlim(centre[1] - half[1], centre[1] + half[1])
        ax.set_ylim(centre[0] + half[0], centre[0] - half[0])
        ax.text(0.02, 0.5, "R", color="white", transform=ax.transAxes, fontsize=9, va="center")
        ax.text(0.95, 0.5, "L", color="white", transform=ax.transAxes, fontsize=9, va="center")
        ax.text(0.5, 0.97, "A", color="white", transform=ax.transAxes, fontsize=9, ha="center", va="top")
        figure.text(left + 0.03 * cell_width, top - 0.1 / height_in, _caption(m, region), color="white",
                    fontsize=8.5, family="monospace", va="top")
    figure.text(0.5, 1.0 - 0.12 / height_in, title, color="white", fontsize=11, ha="center", va="top")
    figure.savefig(path, dpi=90, facecolor="black", pil_kwargs={"compress_level": 1})
    plt.close(figure)
