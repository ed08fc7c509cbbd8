"""Whether a canal lies on the spine's axis of mirror symmetry. The laminae, facets, vertebral body, psoas and
paraspinal muscles mirror each other about a line through the canal. A "canal" the networks find on another
structure (a vessel or a loop of bowel in front of the spine, a kidney) lies off that line, and the image around it
shows where the line is: mirrored about a line some centimetres to one side it matches itself better than mirrored
about one through what was found. Such a canal is to check (measurement.structure_to_check)."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .crop import normalise
from .geometry import PlaneGrid

SAMPLE_MM = 2.0
HALF_WIDTH_MM = 40.0  # the image compared on each side of the line
# the window runs from this far behind the canal's centre (the posterior elements, the paraspinal muscles) to this
# far in front of it (the back of the vertebral body); not over the abdominal organs and vessels further forward,
# which are not symmetric (the liver and the vena cava on the right)
BEHIND_MM, IN_FRONT_MM = 45.0, 15.0
MAX_SHIFT_MM = 40.0  # the farthest line from the canal tried: a vena cava or aorta lies 2-3 cm off the midline
TILTS_DEG = (-12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0)  # a patient turned about the long axis in the scanner
# the windows are compared on the image less its blur over this scale: on edges and texture, not on slow changes
# of intensity across them (coil shading, a bias field, an organ's brightness)
DETAIL_MM = 8.0
MIN_IN_VIEW = 0.9  # of a window's pixels inside the image, for its line to be judged
# On 1 000 synthetic validation slices (seed 2 000 000, shipped networks), with this margin: canals found elsewhere
# (canal Dice below 0.1) off the axis on 8 of 35, canals found in place (Dice 0.8 or more) on 3 of 863
CLEARER_BY = 0.15  # the correlation the best line must add to that of the line through the canal
OFF_AXIS_MM = 10.0  # about half a canal's width: the best line then runs outside the canal


def canal_off_axis_mm(image: np.ndarray, canal: np.ndarray, grid: PlaneGrid) -> float:
    """How far the line about which the image around the canal is most mirror-symmetric lies from the canal's
    centre (mm): 0 where no line is clearer than the one through it by CLEARER_BY. NaN without a canal, and where the
    image does not show the window around the canal (a tight crop)."""
    if not canal.any():
        return math.nan
    # as the networks see it, in any unit: a few pixels far brighter than the rest (spikes, the pile-up beside a
    # screw's artefact) would otherwise outweigh the anatomy, and a line through one mirror it onto itself
    image = normalise(image).astype(float)
    centre = grid.centroid_ras(canal)
    anterior, left = grid.in_plane_axes()
    half, shifts = round(HALF_WIDTH_MM / SAMPLE_MM), round(MAX_SHIFT_MM / SAMPLE_MM)
    margin = math.ceil(4 * DETAIL_MM / SAMPLE_MM)  # what the blur of the window's edge reaches (4 sigma)
    across = np.arange(-(half + shifts + margin), half + shifts + margin + 1) * SAMPLE_MM
    along = np.arange(-(round(BEHIND_MM / SAMPLE_MM) + margin), round(IN_FRONT_MM / SAMPLE_MM) + margin + 1)
    along = along * SAMPLE_MM
    tilts = np.radians(TILTS_DEG)[:, None, None, None]
    sideways = np.cos(tilts) * left + np.sin(tilts) * anterior  # [tilt, 1, 1, xyz]
    forwards = np.cos(tilts) * anterior - np.sin(tilts) * left
    points = centre + across[None, None, :, None] * sideways + along[None, :, None, None] * forwards
    rows, columns = grid.to_index(points.reshape(-1, 3))
    patches = ndimage.map_coordinates(image, [rows, columns], order=1, cval=np.nan).reshape(points.shape[:3])
    detail = _less_blur(patches)[:, margin:-margin, margin:-margin]
    symmetry = _mirror_correlations(detail, half).max(axis=0)  # the best correlation of each line (by its shift)
    through_canal = symmetry[shifts]
    if not np.isfinite(through_canal):
        return math.nan
    best = int(np.argmax(symmetry))
    return abs(best - shifts) * SAMPLE_MM if symmetry[best] - through_canal >= CLEARER_BY else 0.0


def _less_blur(patches: np.ndarray) -> np.ndarray:
    """Patches ([tilt, row, column]) sampled every SAMPLE_MM less their blur over DETAIL_MM, the blur over the
    pixels in view only (NaN outside them)."""
    shown = np.isfinite(patches)
    sigma = (0.0, DETAIL_MM / SAMPLE_MM, DETAIL_MM / SAMPLE_MM)
    weight = ndimage.gaussian_filter(shown.astype(float), sigma, mode="constant")
    blur = ndimage.gaussian_filter(np.where(shown, patches, 0.0), sigma, mode="constant") / np.maximum(weight, 1e-6)
    return np.where(shown, patches - blur, np.nan)


def _mirror_correlations(detail: np.ndarray, half: int) -> np.ndarray:
    """The correlation of each window 2 * half + 1 lines wide of detail ([tilt, row, line]; NaN out of view) with its
    left-right mirror, over the pixels both show ([tilt, window], the first window centred on line half); -inf where
    fewer than MIN_IN_VIEW of them are in view, or the window is flat (of an image scaled as the networks see it, as
    canal_off_axis_mm scales it). Summed over the pairs of lines a window mirrors onto each other, (centre + k,
    centre - k), rather than over each window and its mirror: half the work, the same sums."""
    shown = np.isfinite(detail)
    offsets = np.arange(half + 1)[:, None]
    centres = np.arange(detail.shape[2] - 2 * half) + half
    right, left = centres + offsets, centres - offsets  # [offset, window]
    both = shown[..., right] & shown[..., left]  # [tilt, row, offset, window]: a pixel counts where its mirror does
    on_right, on_left = np.where(both, detail[..., right], 0.0), np.where(both, detail[..., left], 0.0)
    pair = np.where(offsets[:, 0] > 0, 2.0, 1.0)  # a pair of lines off the centre stands in a window twice

    def summed(terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.einsum("trkw,k->tw", terms, weights)

    count = summed(both.astype(float), pair)
    mean = summed(on_right + on_left, pair / 2) / np.maximum(count, 1)
    # a window and its mirror hold the same pixels, so the same mean and spread
    spread = summed(on_right * on_right + on_left * on_left, pair / 2) - count * mean ** 2
    covariance = summed(on_right * on_left, pair) - count * mean ** 2
    judged = (count >= MIN_IN_VIEW * detail.shape[1] * (2 * half + 1)) & (spread > 1e-12 * np.maximum(count, 1))
    return np.where(judged, covariance / np.where(judged, spread, 1.0), -np.inf)


def off_axis(canal_off_axis: float) -> bool:
    """Whether a canal lies OFF_AXIS_MM or more off the spine's axis (canal_off_axis_mm; False where not judged)."""
    return canal_off_axis >= OFF_AXIS_MM
