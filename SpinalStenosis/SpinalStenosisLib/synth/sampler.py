"""Synthetic slices imaged like real ones: native grids, partial volume, and the two networks' training pairs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..crop import CROP_SIZE, MAX_CROP_MM, crop_grid, crop_side_mm, resample, roi_box_mask
from ..crop import TRAINING_PIXEL_MM, TRAINING_ROW_PIXEL_SCALE, normalise, whole_slice_grid
from ..geometry import PlaneGrid
from .anatomy import (CANAL_TISSUES, LEFT_FORAMEN_TISSUES, RIGHT_FORAMEN_TISSUES, Anatomy, T, sample_anatomy)
from .render import CONTRASTS, acquire, render

TARGET_GROUPS = (LEFT_FORAMEN_TISSUES, CANAL_TISSUES, RIGHT_FORAMEN_TISSUES)  # network-2 channel order
AUXILIARY_GROUPS = (  # what borders the sac, for network 2's optional extra training outputs (train --auxiliary)
    (T["epidural_fat"], T["epidural_vein"]),
    (T["ligamentum_flavum"], T["posterior_longitudinal_ligament"]),
    (T["cortical_bone"], T["marrow"], T["endplate"], T["annulus"], T["nucleus"]),
)
CONTRAST_WEIGHTS = (0.45, 0.12, 0.13, 0.1, 0.2)
OFF_CENTRE_SHARE = 0.2
SPINE_MARGIN_MM = 35.0  # how far inside a random field of view the canal stays (very tight views aside)


@dataclass
class Scene:
    """One synthetic slice: anatomy, a smooth deformation and an appearance seed."""

    anatomy: Anatomy
    warp: tuple[np.ndarray, np.ndarray, np.ndarray]  # amplitudes (k,2), wave vectors (k,2), phases (k,)
    contrast: str

    def paint(self, grid: PlaneGrid, supersample: int) -> np.ndarray:
        """Tissue labels at supersample x supersample points per pixel of grid."""
        offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
        rows = (np.arange(grid.shape[0])[:, None] + offsets[None, :]).ravel().astype(np.float32)[:, None]
        columns = (np.arange(grid.shape[1])[:, None] + offsets[None, :]).ravel().astype(np.float32)[None, :]
        x = np.float32(grid.origin_ras[0]) + rows * np.float32(grid.row_step_ras[0]) + columns * np.float32(
            grid.column_step_ras[0])
        y = np.float32(grid.origin_ras[1]) + rows * np.float32(grid.row_step_ras[1]) + columns * np.float32(
            grid.column_step_ras[1])
        amplitudes, waves, phases = self.warp
        for amplitude, wave, phase in zip(amplitudes, waves, phases):
            shift = np.sin(x * np.float32(wave[0]) + y * np.float32(wave[1]) + np.float32(phase))
            x, y = x + np.float32(amplitude[0]) * shift, y + np.float32(amplitude[1]) * shift
        return self.anatomy.paint(x, y)


def sample_scene(rng: np.random.Generator, region: str = "lumbar", contrast: str | None = None,
                 among: tuple[str, ...] = CONTRASTS, **anatomy_options) -> Scene:
    """A random scene; its contrast is ``contrast``, or drawn among ``among`` with their CONTRAST_WEIGHTS."""
    anatomy = sample_anatomy(rng, region, **anatomy_options)
    k = int(rng.integers(1, 4))
    warp = (rng.normal(0.0, 0.6, (k, 2)), rng.normal(0.0, 0.06, (k, 2)), rng.uniform(0, 2 * np.pi, k))
    if contrast is None:
        names, weights = zip(*[(name, w) for name, w in zip(CONTRASTS, CONTRAST_WEIGHTS) if name in among])
        contrast = str(rng.choice(names, p=np.array(weights) / sum(weights)))
    return Scene(anatomy, warp, contrast)


def fractions(tissues: np.ndarray, supersample: int, groups=TARGET_GROUPS) -> np.ndarray:
    """Per-pixel fraction of each tissue group: [group, rows, columns]."""
    h, w = tissues.shape[0] // supersample, tissues.shape[1] // supersample
    out = np.empty((len(groups), h, w), np.float32)
    for n, group in enumerate(groups):
        out[n] = np.isin(tissues, group).reshape(h, supersample, w, supersample).mean(axis=(1, 3))
    return out


def native_grid(rng: np.random.Generator, scene: Scene, centre_ras: np.ndarray | None = None) -> PlaneGrid:
    """A random acquisition grid in canonical orientation (rows A→P, columns R→L), rotated up to ±25°."""
    region = scene.anatomy.region
    pixel = rng.uniform(*TRAINING_PIXEL_MM["cervical" if region == "cervical" else "lumbar"])
    row_mm, column_mm = pixel * rng.uniform(*TRAINING_ROW_PIXEL_SCALE), pixel
    if rng.random() < 0.05:  # a very tight crop (e.g. cervical T2* at 25 mm), canal near the border
        fov_mm = rng.uniform(25.0, 60.0)
    elif rng.random() < 0.3:  # tight field of view around the spine
        fov_mm = rng.uniform(60.0, 140.0)
    else:
        fov_mm = rng.uniform(1.4, 2.3) * scene.anatomy.extent_mm
    shape = (int(fov_mm * rng.uniform(0.8, 1.0) / row_mm), int(fov_mm / column_mm))
    angle = np.radians(rng.uniform(-25.0, 25.0))
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    row_step = rotation @ np.array([0.0, -row_mm, 0.0])
    column_step = rotation @ np.array([-column_mm, 0.0, 0.0])
    if centre_ras is None:
        reach = max(0.0, fov_mm / 2 - SPINE_MARGIN_MM)
        centre_ras = np.array([rng.uniform(-reach, reach) * 0.5, rng.uniform(0.0, reach), 0.0])
        centre_ras = _spine_in_view(centre_ras, row_step, column_step, shape)
    origin = centre_ras - (shape[0] - 1) / 2 * row_step - (shape[1] - 1) / 2 * column_step
    return PlaneGrid(origin, row_step, column_step, shape)


def _spine_in_view(centre_ras: np.ndarray, row_step: np.ndarray, column_step: np.ndarray,
                   shape: tuple[int, int]) -> np.ndarray:
    """The field of view's centre moved towards the canal (at the origin) as far as it takes to keep the canal
    SPINE_MARGIN_MM inside both sides: the rows span less than the columns, and the view is rotated."""
    scale = 1.0
    for step, count in ((row_step, shape[0]), (column_step, shape[1])):
        offset_mm = abs(centre_ras @ step) / np.linalg.norm(step)
        limit_mm = max((count - 1) / 2 * np.linalg.norm(step) - SPINE_MARGIN_MM, 0.0)
        if offset_mm > limit_mm:
            scale = min(scale, limit_mm / offset_mm)
    return centre_ras * scale


def _image(rng: np.random.Generator, scene: Scene, grid: PlaneGrid, native_pixel_mm: float,
           max_supersample: int = 4, noise_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Image and super-sampled tissues on grid; blur stands in for a coarser native resolution (``noise_scale``: see
    render.acquire)."""
    supersample = int(np.clip(np.ceil(min(grid.pixel_size_mm) / 0.4), 1, max_supersample))
    tissues = scene.paint(grid, supersample)
    image = render(rng, tissues, supersample, scene.contrast)
    blur = 0.45 * max(native_pixel_mm / min(grid.pixel_size_mm), 1.0) * rng.uniform(0.6, 1.4)
    return acquire(rng, image, blur, noise_scale), tissues


def smeared_front_to_back(image: np.ndarray, grid: PlaneGrid, length_mm: float) -> np.ndarray:
    """image (on grid) averaged over shifts along the patient's AP axis spread evenly over length_mm: a slice of
    thickness t through a spine tilted by an angle a in the sagittal plane meets each structure over an AP range of
    t tan(a). Edges blur front to back; their half-way points stay where the mid-plane's are."""
    if length_mm <= 0:
        return image
    anterior, _ = grid.in_plane_axes()
    rows, columns = grid.to_index(np.stack([grid.origin_ras, grid.origin_ras + anterior]))
    direction_px = np.array([rows[1] - rows[0], columns[1] - columns[0]])  # 1 mm anterior, in (row, column)
    shifts_mm = np.linspace(-length_mm / 2, length_mm / 2, int(np.ceil(2 * length_mm / min(grid.pixel_size_mm))) + 1)
    return np.mean([ndimage.shift(image, direction_px * t, order=1, mode="nearest") for t in shifts_mm], axis=0)


def roi_pair(rng: np.random.Generator, region: str = "lumbar", contrasts: tuple[str, ...] = CONTRASTS,
             noise_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Network-1 pair: whole slice at 128² → ROI box mask."""
    scene = sample_scene(rng, region, among=contrasts)
    native = native_grid(rng, scene)
    if rng.random() < 0.1:
        native = _narrow_left_right(rng, native)
    if rng.random() < 0.04:  # no spine in view
        native = PlaneGrid(native.origin_ras + native.row_step_ras * native.shape[0],
                           native.row_step_ras, native.column_step_ras, native.shape)
    view = whole_slice_grid(native)
    image, tissues = _image(rng, scene, view, min(native.pixel_size_mm), max_supersample=2, noise_scale=noise_scale)
    supersample = tissues.shape[0] // view.shape[0]
    targets = fractions(tissues, supersample)
    image = _outside_fov_zero(image, view, native)
    return normalise(image), roi_box_mask(targets, view)


def _narrow_left_right(rng: np.random.Generator, native: PlaneGrid) -> PlaneGrid:
    """The columns of native within a 30-80 mm band holding the spine (at RAS 0): an axial reslice of a sagittal
    3-D acquisition is narrow from left to right."""
    column_mm = native.pixel_size_mm[1]
    columns = min(native.shape[1], int(rng.uniform(30.0, 80.0) / column_mm))
    spine_column = float(native.to_index(np.zeros((1, 3)))[1][0])
    slack = max(columns / 2 - 12.0 / column_mm, 0.0)
    first = int(round(spine_column - columns / 2 + rng.uniform(-slack, slack)))
    first = int(np.clip(first, 0, native.shape[1] - columns))
    return native.crop(0, first, native.shape[0], columns, (native.shape[0], columns))


def _outside_fov_zero(image: np.ndarray, view: PlaneGrid, native: PlaneGrid) -> np.ndarray:
    rows, columns = np.meshgrid(np.arange(view.shape[0]), np.arange(view.shape[1]), indexing="ij")
    native_rows, native_columns = native.to_index(view.to_ras(rows.ravel(), columns.ravel()))
    inside = ((native_rows >= -0.5) & (native_rows <= native.shape[0] - 0.5) & (native_columns >= -0.5)
              & (native_columns <= native.shape[1] - 0.5)).reshape(view.shape)
    return np.where(inside, image, 0.0)


def canal_pair(rng: np.random.Generator, region: str = "lumbar", contrasts: tuple[str, ...] = CONTRASTS,
               auxiliary: bool = False, noise_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Network-2 pair: native image around the spine, cropped from a jittered ROI and resized to 128²
    → soft masks [left foramen, canal, right foramen], then AUXILIARY_GROUPS' when auxiliary."""
    scene = sample_scene(rng, region, among=contrasts)
    native = native_grid(rng, scene, centre_ras=np.zeros(3))
    window = _centre_window(native, 56.0)
    crop = jittered_crop(rng, window, roi_box_mask(fractions(scene.paint(window, 1), 1), window))
    window = _covering(native, crop)  # render the image (super-sampled) only where the crop needs it
    image, _ = _image(rng, scene, window, min(native.pixel_size_mm) * rng.uniform(1.0, 1.3), noise_scale=noise_scale)
    targets = fractions(scene.paint(crop, 2), 2, TARGET_GROUPS + AUXILIARY_GROUPS if auxiliary else TARGET_GROUPS)
    if rng.random() < 0.15:  # the acquisition's field of view ends near the spine: nothing beyond it
        imaged = _field_of_view(rng, window)
        image = image * imaged
        targets *= resample(imaged, window, crop) >= 0.5
    return normalise(resample(image, window, crop)), targets


def _field_of_view(rng: np.random.Generator, window: PlaneGrid) -> np.ndarray:
    """1 inside a random rectangle of window that holds the canal centre, 0 outside (narrow or tight FOVs)."""
    centre_row, centre_column = (float(v[0]) for v in window.to_index(np.zeros((1, 3))))
    row_mm, column_mm = window.pixel_size_mm
    reach = [rng.uniform(8.0, 40.0) for _ in range(4)]  # mm kept above, below, right, left of the canal centre
    imaged = np.zeros(window.shape, np.float32)
    r0, r1 = int(max(centre_row - reach[0] / row_mm, 0)), int(centre_row + reach[1] / row_mm)
    c0, c1 = int(max(centre_column - reach[2] / column_mm, 0)), int(centre_column + reach[3] / column_mm)
    imaged[r0:r1, c0:c1] = 1.0
    return imaged


def _covering(window: PlaneGrid, crop: PlaneGrid, margin_px: int = 4) -> PlaneGrid:
    """The pixel-aligned part of window that covers crop, plus a margin for blurring and interpolation."""
    row_min, row_max, column_min, column_max = crop.extent_on(window)
    r0, c0 = int(np.floor(row_min)) - margin_px, int(np.floor(column_min)) - margin_px
    n_rows = int(np.ceil(row_max)) + margin_px - r0 + 1
    n_columns = int(np.ceil(column_max)) + margin_px - c0 + 1
    return window.crop(r0, c0, n_rows, n_columns, (n_rows, n_columns))


def _centre_window(native: PlaneGrid, half_mm: float) -> PlaneGrid:
    """The part of the native grid within half_mm of the canal centre (integer pixel aligned)."""
    centre_rows, centre_columns = native.to_index(np.zeros((1, 3)))
    row_mm, column_mm = native.pixel_size_mm
    r0 = int(np.floor(centre_rows[0] - half_mm / row_mm))
    c0 = int(np.floor(centre_columns[0] - half_mm / column_mm))
    n_rows, n_columns = int(2 * half_mm / row_mm) + 2, int(2 * half_mm / column_mm) + 2
    return native.crop(r0, c0, n_rows, n_columns, (n_rows, n_columns))


def jittered_crop(rng: np.random.Generator, window: PlaneGrid, roi: np.ndarray) -> PlaneGrid:
    """The inference crop rule applied to a perturbed true ROI (network 1 is never exact). A share
    OFF_CENTRE_SHARE of the crops is enlarged (up to the largest crop) and moved off the canal, up to its border:
    network 1's region can merge with bright vessels or viscera, and network 2 must then find the canal where it
    is, not invent one in the middle, so that the second crop can centre on it."""
    rows, columns = np.nonzero(roi)
    row_mm, column_mm = window.pixel_size_mm
    if len(rows) == 0:
        centre, side = (window.shape[0] / 2, window.shape[1] / 2), 60.0
    else:
        centre = ((rows.min() + rows.max()) / 2, (columns.min() + columns.max()) / 2)
        side = crop_side_mm((rows.max() - rows.min() + 1) * row_mm, (columns.max() - columns.min() + 1) * column_mm)
    if rng.random() < OFF_CENTRE_SHARE:
        side = rng.uniform(side, MAX_CROP_MM)
        shift_mm = rng.uniform(-0.45, 0.45, 2) * side
    else:
        side, shift_mm = side * rng.uniform(0.9, 1.15), rng.normal(0.0, 2.0, 2)
    centre = (centre[0] + shift_mm[0] / row_mm, centre[1] + shift_mm[1] / column_mm)
    side = float(np.clip(side, 30.0, 110.0))
    return crop_grid(window, centre, side, CROP_SIZE)
