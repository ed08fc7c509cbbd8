"""Synthetic cases as files (image, labels, tissues, truth.csv, gallery) and stacks for the demo."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import PlaneGrid, VolumeGeometry, reordered
from ..measurement import MEASUREMENT_COLUMNS, masks_from_labels, measure_slice
from ..volume_io import write_image, write_labels
from .anatomy import CANAL_TISSUES, LEFT_FORAMEN_TISSUES, RIGHT_FORAMEN_TISSUES
from .render import acquire, render
from .sampler import Scene, fractions, native_grid, sample_scene, smeared_front_to_back

TRUTH_COLUMNS = ("case", "region", "level", "slice_kind", "contrast", "pixel_mm", *MEASUREMENT_COLUMNS)
TRUTH_PIXEL_MM = 0.08
LABEL_GROUPS = (CANAL_TISSUES, LEFT_FORAMEN_TISSUES, RIGHT_FORAMEN_TISSUES)  # label values 1, 2, 3


@dataclass
class SyntheticSlice:
    scene: Scene
    grid: PlaneGrid  # native grid, anatomy frame (RAS, canal at the origin)
    image: np.ndarray  # float32 [rows, columns], rows A→P, columns R→L
    labels: np.ndarray  # uint8: 1 canal, 2 left foramen, 3 right foramen
    tissues: np.ndarray  # uint8 tissue labels (centre sample of each pixel)
    truth: dict[str, float]


def labels_from_tissues(tissues: np.ndarray, supersample: int) -> np.ndarray:
    """Label of each pixel: the structure covering at least half of it."""
    parts = fractions(tissues, supersample, LABEL_GROUPS)
    labels = np.zeros(parts.shape[1:], np.uint8)
    for value in (1, 2, 3):
        labels[parts[value - 1] >= 0.5] = value
    return labels


def truth_measurements(scene: Scene, grid: PlaneGrid) -> dict[str, float]:
    """Measurements on a 0.08 mm grid aligned with the native one, around the canal (the reference)."""
    row_direction = grid.row_step_ras / np.linalg.norm(grid.row_step_ras)
    column_direction = grid.column_step_ras / np.linalg.norm(grid.column_step_ras)
    half_rows, half_columns = 30.0, 45.0
    shape = (int(2 * half_rows / TRUTH_PIXEL_MM), int(2 * half_columns / TRUTH_PIXEL_MM))
    origin = -half_rows * row_direction - half_columns * column_direction
    fine = PlaneGrid(origin, row_direction * TRUTH_PIXEL_MM, column_direction * TRUTH_PIXEL_MM, shape)
    labels = labels_from_tissues(scene.paint(fine, 1), 1)
    return measure_slice(masks_from_labels(labels), fine).values


def synthetic_slice(rng: np.random.Generator, region: str = "lumbar", scene: Scene | None = None,
                    grid: PlaneGrid | None = None, with_truth: bool = True, noise_scale: float = 1.0,
                    protocol: np.random.Generator | None = None, smear_mm: float = 0.0) -> SyntheticSlice:
    """One native-resolution synthetic slice with its labels, tissues and reference measurements (``noise_scale``
    and ``protocol``, the draws the slices of one series share: see render.acquire and render.render). smear_mm:
    the same slice as a thick one through a tilted spine (sampler.smeared_front_to_back; the noise is not smeared,
    and the labels and truth are the mid-plane's)."""
    scene = scene or sample_scene(rng, region)
    grid = grid or native_grid(rng, scene)
    supersample = int(np.clip(np.ceil(min(grid.pixel_size_mm) / 0.25), 1, 4))
    tissues = scene.paint(grid, supersample)
    image = smeared_front_to_back(render(rng, tissues, supersample, scene.contrast, protocol), grid, smear_mm)
    image = acquire(rng, image, (protocol or rng).uniform(0.3, 0.8), noise_scale, protocol).astype(np.float32)
    centre = supersample // 2
    truth = truth_measurements(scene, grid) if with_truth else {}
    return SyntheticSlice(scene, grid, image, labels_from_tissues(tissues, supersample),
                          tissues[centre::supersample, centre::supersample], truth)


def slice_geometry(grid: PlaneGrid, spacing_mm: float, n_slices: int = 1) -> VolumeGeometry:
    """3-D geometry of a volume whose array is [slices, rows, columns] of grid, slices stacked superiorly."""
    matrix = np.eye(4)
    matrix[:3, 0] = grid.column_step_ras
    matrix[:3, 1] = grid.row_step_ras
    matrix[:3, 2] = np.array([0.0, 0.0, spacing_mm])
    matrix[:3, 3] = grid.origin_ras
    return VolumeGeometry((grid.shape[1], grid.shape[0], n_slices), matrix)


def random_storage(rng: np.random.Generator, arrays: list[np.ndarray], geometry: VolumeGeometry):
    """Store the same physical image transposed/flipped at random (patient sides move with the affine)."""
    order = (0, 2, 1) if rng.random() < 0.5 else (0, 1, 2)
    flips = tuple(bool(f) for f in rng.random(3) < 0.5)
    results = [reordered(a, geometry, order, flips) for a in arrays]
    return [r[0] for r in results], results[0][1]


def write_dataset(out: Path, count: int, seed: int, region: str = "both", overwrite: bool = False,
                  gallery_real: str | Path | None = None) -> Path:
    """``spinal-stenosis synth``: case files, truth.csv and gallery.png."""
    from ..outputs import OutputError, staged_output

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out}: not empty; pass --overwrite to replace its files")
    rows, shown = [], []
    with staged_output(out) as staging:
        for n in range(count):
            rng = np.random.default_rng([seed, n])
            case_region = region if region != "both" else ("cervical" if n % 3 == 2 else "lumbar")
            case = synthetic_slice(rng, case_region)
            geometry = slice_geometry(case.grid, float(rng.uniform(2.5, 5.0)))
            (image, labels, tissues), stored = random_storage(
                rng, [case.image[None], case.labels[None], case.tissues[None]], geometry)
            name = f"case_{n:04d}"
            write_image(staging / f"{name}_image.nii.gz", image, stored)
            write_labels(staging / f"{name}_labels.nii.gz", labels, stored)
            write_labels(staging / f"{name}_tissues.nii.gz", tissues, stored)
            anatomy = case.scene.anatomy
            rows.append({"case": name, "region": anatomy.region, "level": anatomy.level, "slice_kind": anatomy.kind,
                         "contrast": case.scene.contrast, "pixel_mm": round(min(case.grid.pixel_size_mm), 4),
                         **{k: round(v, 4) if not math.isnan(v) else "nan" for k, v in case.truth.items()}})
            if len(shown) < 8:
                shown.append(case)
        with open(staging / "truth.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=TRUTH_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        from .gallery import write_gallery

        write_gallery(staging / "gallery.png", shown, gallery_real)
    return out


@dataclass(frozen=True)
class SeriesPlan:
    """What a synthetic multi-level series holds and how it was acquired."""

    levels: tuple[str, ...]
    slice_kinds: tuple[str, ...]  # the slices of each level, in order
    pixel_mm: float
    spacing_mm: float
    view_centre_anterior_mm: float  # how far in front of the canal the field of view is centred


SERIES_PLANS = {
    "lumbar": SeriesPlan(("L3-L4", "L4-L5", "L5-S1"), ("pedicle", "disc", "mid-body"), 0.7, 4.4, 40.0),
    "cervical": SeriesPlan(("C4-C5", "C5-C6", "C6-C7"), ("disc", "mid-body"), 0.5, 3.0, 10.0),
}


def synthetic_stack(seed: int, region: str = "lumbar", levels: tuple[str, ...] | None = None,
                    size: int = 320) -> tuple[np.ndarray, np.ndarray, VolumeGeometry, list[dict]]:
    """A multi-level axial T2 stack of one patient's series (SERIES_PLANS: the slices of each level, pixel size,
    spacing): one geometry, the same scanner settings on every slice (intensities, blur, noise level...; see
    render.render) and the same patient (body outline, muscles, bony canal; see anatomy.sample_anatomy), while each
    level draws its own degeneration. levels: instead of the plan's. Returns image [k, j, i], labels [k, j, i],
    geometry and per-slice truth."""
    plan = SERIES_PLANS[region]
    rng = np.random.default_rng(seed)
    protocol_seed, patient_seed = (int(n) for n in rng.integers(2**63, size=2))
    contrast = "T2"
    row_step, column_step = np.array([0.0, -plan.pixel_mm, 0.0]), np.array([-plan.pixel_mm, 0.0, 0.0])
    origin = np.array([0.0, plan.view_centre_anterior_mm, 0.0]) - (size - 1) / 2 * (row_step + column_step)
    grid = PlaneGrid(origin, row_step, column_step, (size, size))
    images, labels, truth = [], [], []
    for level in levels or plan.levels:
        for kind in plan.slice_kinds:
            scene = sample_scene(rng, region, contrast=contrast, level=level, kind=kind,
                                 patient=np.random.default_rng(patient_seed))
            case = synthetic_slice(rng, region, scene, grid, protocol=np.random.default_rng(protocol_seed))
            images.append(case.image)
            labels.append(case.labels)
            truth.append({"level": level, "slice_kind": kind, **case.truth})
    geometry = slice_geometry(grid, plan.spacing_mm, len(images))
    image = np.stack(images) * 1000.0
    return image.astype(np.float32), np.stack(labels), geometry, truth
