"""Which spine region an axial image shows: the cervical spine where it shows a whole neck (10-16 cm wide, where an
abdomen or pelvis is 25 cm or more) or the spinal cord inside the sac, on most slices. Below the conus, where lumbar
series are taken, the sac holds the roots of the cauda equina, not the cord. A series cropped to a lumbar spine shows
neither, and then nothing is said.

Used only where neither the user nor a DICOM header names the region (see grading.grading_region), so that a
cervical NIfTI or PNG is not graded with the lumbar cut-offs by default.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from .geometry import PlaneGrid

AIR_FRACTION = 0.1  # of the slice's 99th intensity percentile: darker is air
NECK_WIDTH_MM = (80.0, 170.0)  # a body this wide left to right is a neck (the real necks here: 115-156 mm); a
# narrower "body" is a bright island in dark tissue (e.g. the sac in a fat-suppressed image), not an outline
SHOWN_SHARE = 2 / 3  # of the slices with a canal, those that must show a neck, or the cord
# the image is smoothed over this much before air is told from tissue: noise in the air reaches AIR_FRACTION (in the
# demo's cervical series, a quarter of the air's pixels) and would otherwise join the body to the edge of the view
SMOOTHING_MM = 1.0
# The cord on a T2 or T2* slice: a dark region inside the canal (under CORD_DARKER_THAN of the canal's 90th
# percentile, the image smoothed over CORD_SMOOTHING_MM), of CORD_MIN_MM2 or more and CORD_SHARE of the canal's area,
# its centre in it and at most CORD_OFF_MIDLINE_MM left or right of the canal's, with CSF (CSF_BRIGHTER_THAN of that
# percentile) beside it within CSF_RING_MM in CSF_SECTORS of the eight directions.
# Set on synthetic stacks with the shipped networks' masks: on benchmarks/evaluate_synthetic.py --stacks 100, the
# cord shows none of the 100 lumbar stacks as cervical (without the bound on the area, or under contrast curves
# without the one on the midline, central clumps of roots show some) and 29 of the 40 cervical ones that show no
# whole neck (benchmarks/EXPERIMENTS.md).
CORD_SMOOTHING_MM = 0.5
CORD_DARKER_THAN = 0.6
CSF_BRIGHTER_THAN = 0.7
CORD_MIN_MM2 = 40.0  # a cervical cord is 60-90 mm² (its dark core a little less); a clump of roots mostly smaller
CORD_SHARE = (0.1, 0.85)
CORD_OFF_MIDLINE_MM = 2.0  # the cord lies in the sac's midline; a clump of roots mostly beside it
CSF_RING_MM = 2.0
CSF_SECTORS = 6
# the cord shows on single lumbar slices now and then (central clumps of roots): on 14 of 100 synthetic lumbar T2
# slices one at a time, and of their T1 twins; so one slice, a 2-D image, does not show the region by its cord
MIN_CORD_SLICES = 2
NECK, CORD = "a whole neck", "the spinal cord inside the sac"


class ShownRegion(NamedTuple):
    """The region an image shows, and what shows it (NECK or CORD: what the user is told)."""

    region: str
    evidence: str


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


def holds_cord(image: np.ndarray, canal: np.ndarray, grid: PlaneGrid) -> bool:
    """Whether the canal (its mask on the slice) holds the spinal cord: a dark region of cord size inside it with
    CSF around it (the constants above)."""
    from scipy import ndimage

    from .measurement import largest_component
    from .visibility import grown_box

    canal = np.asarray(canal) > 0.5
    if not canal.any():
        return False
    margin = math.ceil(4 * CORD_SMOOTHING_MM / min(grid.pixel_size_mm))  # what the smoothing reaches
    box = grown_box(canal, (margin, margin))
    canal = canal[box]
    inner = ndimage.binary_erosion(canal)
    if not inner.any():
        return False
    smoothed = ndimage.gaussian_filter(np.asarray(image[box], np.float32),
                                       [CORD_SMOOTHING_MM / size for size in grid.pixel_size_mm])
    csf = np.percentile(smoothed[inner], 90)
    cord = largest_component(inner & (smoothed < CORD_DARKER_THAN * csf)) >= 0.5
    if not (csf > 0 and cord.sum() * grid.pixel_area_mm2 >= CORD_MIN_MM2
            and CORD_SHARE[0] <= cord.sum() / canal.sum() <= CORD_SHARE[1]):
        return False
    cord_rows, cord_columns = np.nonzero(cord)
    centre = (round(cord_rows.mean()), round(cord_columns.mean()))
    if not cord[centre]:  # not a cord but dark around something bright (a T1 image's CSF around the cord)
        return False
    canal_rows, canal_columns = np.nonzero(canal)
    off_centre_ras = (grid.row_step_ras * (cord_rows.mean() - canal_rows.mean())
                      + grid.column_step_ras * (cord_columns.mean() - canal_columns.mean()))
    if abs(off_centre_ras @ grid.in_plane_axes()[1]) > CORD_OFF_MIDLINE_MM:
        return False
    ring = ndimage.binary_dilation(cord, iterations=max(1, round(CSF_RING_MM / min(grid.pixel_size_mm))))
    ring_rows, ring_columns = np.nonzero(ring & canal & ~cord)
    directions = np.arctan2(ring_rows - cord_rows.mean(), ring_columns - cord_columns.mean())
    sectors = np.floor((directions + np.pi) / (np.pi / 4)).astype(int) % 8
    bright = smoothed[ring_rows, ring_columns] >= CSF_BRIGHTER_THAN * csf
    return len(np.unique(sectors[bright])) >= CSF_SECTORS


def region_shown(slices: Iterable[tuple[np.ndarray, np.ndarray, PlaneGrid]], count: int | None = None
                 ) -> ShownRegion | None:
    """The cervical spine (and its evidence) when the body around the canal is as wide as a neck (NECK_WIDTH_MM),
    or else the canal holds the cord (holds_cord), on at least SHOWN_SHARE of the slices (image, canal mask, grid),
    each with its canal found (the cord on MIN_CORD_SLICES at least); None otherwise: the image shows neither, as a
    lumbar series cropped to the spine (lumbar, the default, is never inferred, so nothing changes where the body
    runs out of view). count: how many slices the iterable yields (by default its len); the slices are looked at one
    by one, and no more once too few are left to make the share for either."""
    count = len(slices) if count is None else count
    needed, seen = SHOWN_SHARE * count, {NECK: 0, CORD: 0}
    for looked, (image, canal, grid) in enumerate(slices, 1):
        width = body_width_mm(image, canal, grid)
        seen[NECK] += width is not None and NECK_WIDTH_MM[0] <= width <= NECK_WIDTH_MM[1]
        seen[CORD] += holds_cord(image, canal, grid)
        if max(seen.values()) + count - looked < needed:
            return None
    shown = [evidence for evidence, slices_seen in seen.items()
             if count and slices_seen >= needed and (evidence != CORD or slices_seen >= MIN_CORD_SLICES)]
    return ShownRegion("cervical", shown[0]) if shown else None
