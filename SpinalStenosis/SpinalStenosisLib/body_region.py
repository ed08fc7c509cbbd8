"""Which spine region an axial image shows, when it shows the whole body outline around the canal: a neck is 10-16 cm
wide, an abdomen or pelvis 25 cm or more. Most spine series are cropped to the spine, and then nothing is said.

Used only where neither the user nor a DICOM header names the region (see grading.grading_region), so that a
cervical NIfTI or PNG is not graded with the lumbar cut-offs by default.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .geometry import PlaneGrid

AIR_FRACTION = 0.1  # of the slice's 99th intensity percentile: darker is air
NECK_WIDTH_MM = (80.0, 170.0)  # a body this wide left to right is a neck (the real necks here: 115-156 mm); a
# narrower "body" is a bright island in dark tissue (e.g. the sac in a fat-suppressed image), not an outline
NECK_SHARE = 2 / 3  # of the slices with a canal, those that must show a neck
# the image is smoothed over this much before air is told from tissue: noise in the air reaches AIR_FRACTION (in the
# demo's cervical series, a quarter of the air's pixels) and would otherwise join the body to the edge of the view
SMOOTHING_MM = 1.0


def body_width_mm(image: np.ndarray, canal: np.ndarray, grid: PlaneGrid) -> float | None:
    """The left-right width of the body around the canal (canal: its mask on the slice): the connected region of
    the image, smoothed over SMOOTHING_MM, above AIR_FRACTION of its 99th percentile (closed, its holes filled)
    holding most of the canal; None when the image's border cuts that region's left or right side (the body may run
    beyond the field of view) or it holds no canal."""
    from scipy import ndimage

    sigma_px = [SMOOTHING_MM / size for size in grid.pixel_size_mm]
    smoothed = ndimage.gaussian_filter(np.asarray(image, np.float32), sigma_px)
    above_air = np.pad(smoothed > AIR_FRACTION * np.percentile(image, 99), 2, mode="edge")  # so that the closing
    body = ndimage.binary_fill_holes(ndimage.binary_closing(above_air, iterations=2)[2:-2, 2:-2])  # keeps the border
    components, _ = ndimage.label(body)
    counts = np.bincount(components[canal > 0.5], minlength=1)
    counts[0] = 0
    if not counts.any():
        return None
    region = components == counts.argmax()
    rows, columns = np.nonzero(region)
    left_mm = grid.to_ras(rows, columns) @ grid.in_plane_axes()[1]
    at_border = (rows == 0) | (rows == region.shape[0] - 1) | (columns == 0) | (columns == region.shape[1] - 1)
    pixel_mm = max(grid.pixel_size_mm)
    if np.any(at_border & ((left_mm < left_mm.min() + pixel_mm) | (left_mm > left_mm.max() - pixel_mm))):
        return None  # the body's left or right side is cut by the field of view (its front or back may be)
    return float(left_mm.max() - left_mm.min() + min(grid.pixel_size_mm))


def region_shown(slices: Iterable[tuple[np.ndarray, np.ndarray, PlaneGrid]], count: int | None = None) -> str | None:
    """'cervical' when the body around the canal is as wide as a neck (NECK_WIDTH_MM) on at least NECK_SHARE of the
    slices (image, canal mask, grid), each with its canal found; None otherwise: the image does not show the whole
    body, or shows a trunk (lumbar, the default, is never inferred, so nothing changes where the body runs out of
    view). count: how many slices the iterable yields (by default its len); the slices are looked at one by one, and
    no more once too few are left to make the share (a cropped or trunk series, the usual case, stops early)."""
    count = len(slices) if count is None else count
    needed, others = NECK_SHARE * count, 0
    for image, canal, grid in slices:
        width = body_width_mm(image, canal, grid)
        if width is None or not NECK_WIDTH_MM[0] <= width <= NECK_WIDTH_MM[1]:
            others += 1
            if count - others < needed:
                return None
    return "cervical" if count else None
