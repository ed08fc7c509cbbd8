"""The two network views of a slice, as PlaneGrids of the native slice grid (one convention for training and
inference): the whole slice padded to a square (network 1) and a square crop around the region of interest,
resized to a finer grid (network 2)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import WHOLE_PIXEL_TOLERANCE, PlaneGrid, ceil_pixels, floor_pixels

ROI_SIZE = 128
CROP_SIZE = 128
MIN_CROP_MM, MAX_CROP_MM = 36.0, 96.0
ROI_PADDING_MM = 4.0
ROI_LATERAL_PADDING_MM = 12.0  # when no foramen is visible the crop must still reach where foramina would be
# the native pixel sizes (across; a pixel 0.9-1.1 times as tall) the synthetic training slices are drawn with
# (synth.sampler.native_grid): the networks have learnt from none coarser (pipeline.coarse_pixel_warnings)
TRAINING_PIXEL_MM = {"cervical": (0.3, 0.8), "lumbar": (0.45, 1.3)}
TRAINING_ROW_PIXEL_SCALE = (0.9, 1.1)
COARSEST_PIXEL_MM = max(high for _, high in TRAINING_PIXEL_MM.values()) * TRAINING_ROW_PIXEL_SCALE[1]


def roi_box(targets: np.ndarray, grid: PlaneGrid) -> tuple[int, int, int, int] | None:
    """The region of interest: the box around canal and foramina plus padding, as pixel bounds (row0, row1,
    column0, column1; end-exclusive) on grid, not clipped to it; None without a canal.
    targets: [left foramen, canal, right foramen] fractions or probabilities."""
    if not (targets[1] >= 0.5).any():
        return None
    rows, columns = np.nonzero((targets >= 0.5).any(axis=0))
    row_mm, column_mm = grid.pixel_size_mm
    lateral = ROI_PADDING_MM if (targets[0] >= 0.5).any() and (targets[2] >= 0.5).any() else ROI_LATERAL_PADDING_MM
    return (floor_pixels(rows.min() - ROI_PADDING_MM / row_mm), ceil_pixels(rows.max() + ROI_PADDING_MM / row_mm) + 1,
            floor_pixels(columns.min() - lateral / column_mm), ceil_pixels(columns.max() + lateral / column_mm) + 1)


def roi_box_mask(targets: np.ndarray, grid: PlaneGrid) -> np.ndarray:
    """Network 1's target: roi_box filled on grid (empty without a canal)."""
    mask = np.zeros(grid.shape, np.float32)
    box = roi_box(targets, grid)
    if box is not None:
        r0, r1, c0, c1 = box
        mask[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = 1.0
    return mask


def field_of_view_side_mm(native: PlaneGrid) -> float:
    """The longer side of the slice's field of view, to 1e-6 mm: 128 pixels of 0.75 mm are 96 mm (MAX_CROP_MM), not
    96.00000000000001, whether the grid was read from DICOM text or not."""
    return round(max(native.shape[0] * native.pixel_size_mm[0], native.shape[1] * native.pixel_size_mm[1]), 6)


def whole_slice_grid(native: PlaneGrid, size: int = ROI_SIZE) -> PlaneGrid:
    """The native slice padded to a square in mm (centred) and resized to size x size."""
    row_mm, column_mm = native.pixel_size_mm
    side_mm = field_of_view_side_mm(native)
    height, width = side_mm / row_mm, side_mm / column_mm
    return native.crop((native.shape[0] - height) / 2, (native.shape[1] - width) / 2, height, width, (size, size))


def half_slice_grids(native: PlaneGrid, size: int = ROI_SIZE) -> list[PlaneGrid]:
    """Nine views half as wide as whole_slice_grid's, overlapping by half, that cover it (network 1 looking
    closer at a large field of view)."""
    whole = whole_slice_grid(native, size)
    quarter = size / 4
    return [whole.crop(i * quarter, j * quarter, 2 * quarter, 2 * quarter, (size, size))
            for i in range(3) for j in range(3)]


def crop_side_mm(roi_height_mm: float, roi_width_mm: float) -> float:
    return float(np.clip(1.15 * max(roi_height_mm, roi_width_mm) + 6.0, MIN_CROP_MM, MAX_CROP_MM))


def crop_grid(native: PlaneGrid, centre_rc: tuple[float, float], side_mm: float, size: int = CROP_SIZE) -> PlaneGrid:
    """Square crop of side_mm centred at a native (row, column), resized to size x size."""
    row_mm, column_mm = native.pixel_size_mm
    height, width = side_mm / row_mm, side_mm / column_mm
    return native.crop(centre_rc[0] + 0.5 - height / 2, centre_rc[1] + 0.5 - width / 2, height, width, (size, size))


def crops_from_roi(native: PlaneGrid, roi_grid: PlaneGrid, roi_mask: np.ndarray, count: int = 3) -> list[PlaneGrid]:
    """One crop per connected region of network 1's mask, the largest first (at most count)."""
    labelled, found = ndimage.label(roi_mask >= 0.5)
    if found == 0:
        return []
    sizes = ndimage.sum_labels(np.ones(roi_mask.shape), labelled, index=np.arange(1, found + 1))
    crops = []
    for label in np.argsort(-sizes)[:count]:
        rows, columns = np.nonzero(labelled == label + 1)
        crops.append(crop_from_box(native, roi_grid, (rows.min(), rows.max() + 1, columns.min(), columns.max() + 1)))
    return crops


def crop_from_box(native: PlaneGrid, box_grid: PlaneGrid, box: tuple[int, int, int, int]) -> PlaneGrid:
    """The square network-2 crop around a box given as pixel bounds (row0, row1, column0, column1; end-exclusive)
    on box_grid, which may reach beyond it."""
    r0, r1, c0, c1 = box
    corners = box_grid.to_ras(np.array([r0 - 0.5, r1 - 0.5]), np.array([c0 - 0.5, c1 - 0.5]))
    native_rows, native_columns = native.to_index(corners)
    row_mm, column_mm = native.pixel_size_mm
    height_mm = abs(native_rows[1] - native_rows[0]) * row_mm
    width_mm = abs(native_columns[1] - native_columns[0]) * column_mm
    centre = (float(native_rows.mean()), float(native_columns.mean()))
    return crop_grid(native, centre, crop_side_mm(height_mm, width_mm))


def resample(image: np.ndarray, source: PlaneGrid, target: PlaneGrid, order: int = 1) -> np.ndarray:
    """Sample image (on source; [rows, columns] or [channels, rows, columns]) at target's pixel centres;
    anti-aliased when target is coarser; zero outside."""
    # target (row, column) → source (row, column) is affine: its origin and the images of the two unit steps
    origin = np.array(source.to_index(target.to_ras(0.0, 0.0)))
    steps = np.stack([np.array(source.to_index(target.to_ras(1.0, 0.0))) - origin,
                      np.array(source.to_index(target.to_ras(0.0, 1.0))) - origin], axis=1)
    at = origin[:, None, None] + np.tensordot(steps, np.indices(target.shape, np.float64), axes=1)
    # a sample on the source's outer pixel centres but for float rounding is taken there: outside, even by 1e-9 of a
    # pixel, it would be zero (a target whose pixels lie on the source's, as a native 128 x 128 slice's whole view)
    on_grid = np.clip(at, 0, np.reshape(source.shape, (2, 1, 1)) - 1)
    at = np.where(np.abs(at - on_grid) <= WHOLE_PIXEL_TOLERANCE, on_grid, at)
    # rounded: a grid read back from DICOM text makes 0.75 mm over 0.5 mm 1.5000000000000002, which would blur
    shrink = np.round(np.array(target.pixel_size_mm) / np.array(source.pixel_size_mm), 6)
    channels = np.asarray(image, np.float32).reshape(-1, *source.shape)
    out = np.empty((len(channels), *target.shape), np.float32)
    # a blur as wide as the image leaves it about flat: wider ones (pixels of a header in metres, 1e-6 of the target's)
    # would only build kernels of gigabytes
    sigma = np.minimum(0.4 * np.maximum(shrink, 1.0), source.shape)
    for n, channel in enumerate(channels):
        if shrink.max() > 1.5:
            channel = ndimage.gaussian_filter(channel, sigma)
        out[n] = ndimage.map_coordinates(channel, at, order=order, mode="constant", cval=0.0)
    return out if np.ndim(image) == 3 else out[0]


def normalise(image: np.ndarray) -> np.ndarray:
    """Network input scaling: robust maximum to 1 (shared by training and inference), whatever the image's unit."""
    scale = float(np.percentile(image, 99.5))
    return np.clip(np.asarray(image, np.float32) / (scale if scale > 0 else 1.0), 0.0, 1.5)
