"""How far the measurements of a real image move when only its presentation changes (validation only: never trained on).

    .venv/bin/python benchmarks/evaluate_robustness.py [--real ../shared/eval/real] [--only TEXT] [--change TEXT]
        [--precision ...]

Each real volume of evaluate_real.py is measured as it is, and again after each of these changes to its axial stack
(slices, rows anterior to posterior, columns patient right to left; see geometry.py):

* mirrored: the image mirrored left-right in the same geometry, so the patient's left foramen becomes the right one;
* rotated +10° / -10°: each slice turned about its canal, as a patient lying turned in the scanner;
* coarser pixels: pixels 1.5 times as large over the same field of view (smoothed to the new pixel, then resampled;
  not on 3-D volumes whose slices are not clearly thicker than that);
* finer pixels: pixels half as large (cubic spline), as a scanner interpolating its images to twice the matrix
  delivers them;
* gamma 0.7 / 1.5: the contrast changed by a monotone curve of the intensities;
* noisier: Rician noise added, sigma 3 % of the volume's 99th intensity percentile (fixed seed);
* shifted: the content moved a sixth of the image width towards the patient's left, background filled in;
* zero mean: the intensities normalised to zero mean and unit variance (z-scored), as preprocessing tools write
  images, so that the background and the dark tissues are negative;
* coil shading: the intensities falling off from the back of the image to a third at its front, as a spine coil
  under the patient's back shades an image;
* offset: a fifth of the 99th intensity percentile added to every pixel, so that the air is no longer dark (an
  offset that leaves every pixel positive, which the networks see from its darkest level up:
  visibility.intensity_floor);
* smaller offset: a tenth, which leaves the darkest level under visibility.RAISED_FLOOR_SHARE of the bright one, so
  that the networks see the image as it is;
* spikes: ten pixels of each slice, drawn at random, set to ten times the volume's 99th intensity percentile, as
  spike noise or the pile-up beside a screw's artefact leaves a few pixels far brighter than the anatomy;
* ghosted: a copy of each slice at a fifth of its intensity added, moved half the field of view front to back and
  wrapped round, as breathing or another motion ghosts an image along a front-to-back phase-encoding direction.

Over the slices on which the volume as it is gives one plausible canal (one component, area 50-350 mm², AP 6-20 mm,
evaluate_real.one_plausible_canal) it prints, per change and region: on how many the canal is still found, its AP
within 1 mm of the first measurement (and the median absolute change), its dural-sac area within 10 %, both grades
unchanged, and on how many the canal is to check (the check column) before and after; and over the foramina found
on those slices, how many are found again on the same patient side (the other side when mirrored) with a width
within 1 mm. No truth is needed: what moves when only the presentation changes is the product's own noise. A reader
measuring the same image twice varies by about ±1-2 mm in the sac's diameter (intra-rater limits of agreement,
../shared/design/method-thresholds-datasets.md §4). On a turned slice the AP is measured along the acquisition's AP
axis, so it may change by a few per cent by design (README, Limitations): the area is the change's fair measure
there.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_real import REAL_FOLDER, one_plausible_canal, real_volumes  # noqa: E402
from evaluate_synthetic import add_network_options, models_name, network_options  # noqa: E402
from SpinalStenosisLib.geometry import ISOTROPIC_RATIO, AxialLayout, VolumeGeometry  # noqa: E402
from SpinalStenosisLib.grading import grade  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import MeasurementRun, measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.volume_io import axial_from_array, open_axial  # noqa: E402

COARSER = 1.5
ROTATION_DEG = 10.0
NOISE_FRACTION = 0.03
SHIFT_FRACTION = 1 / 6
COIL_FALL_OFF = 1 / 3  # the front of the image against its back
# of the 99th percentile: a fifth raises the real volumes' darkest level to 14-21 % of their bright one (seen from
# there up: visibility.RAISED_FLOOR_SHARE), a tenth to 7-11 % (seen as it is), but for the SCT T2* crop's 14 %
OFFSET_FRACTIONS = {"offset": 0.2, "smaller offset": 0.1}
NOISE_SEED = 20261203
SPIKES_PER_SLICE, SPIKE_FRACTION = 10, 10.0  # of the 99th percentile
GHOST_FRACTION = 0.2
AP_WITHIN_MM, AREA_WITHIN, FORAMEN_WITHIN_MM = 1.0, 0.10, 1.0
SIDES = ("left_foramen", "right_foramen")
# a change of presentation: (axial stack, its layout, the first measurement) → (changed stack, its geometry)
Change = Callable[[np.ndarray, AxialLayout, MeasurementRun], tuple[np.ndarray, VolumeGeometry]]


def stack_geometry(layout: AxialLayout, shape: tuple[int, int, int] | None = None,
                   pixel_scale: tuple[float, float] = (1.0, 1.0)) -> VolumeGeometry:
    """The geometry of an array in axial-stack order [slice, row, column] on layout's slices; with shape and
    pixel_scale, of a resampled stack of that shape whose pixels are pixel_scale (rows, columns) times as large over
    the same field of view."""
    matrix = layout.stack_index_to_ras().copy()
    for axis, scale in ((1, pixel_scale[0]), (2, pixel_scale[1])):
        matrix[:3, 3] += (scale - 1) / 2 * matrix[:3, axis]  # the first new pixel's centre
        matrix[:3, axis] *= scale
    n_slices, n_rows, n_columns = shape or layout.stack_shape
    return VolumeGeometry((n_columns, n_rows, n_slices), matrix[:, [2, 1, 0, 3]])


def rotated(degrees: float) -> Change:
    """Each slice turned about its canal's centre as first measured (about its own centre where none was found):
    a patient turned about the spine, which stays in the field of view."""
    turn = math.radians(degrees)
    matrix = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])

    def change(stack, layout, first):
        turned = np.empty_like(stack)
        for s, image in enumerate(stack):
            canal = first.stack_labels[s] == 1
            centre = np.argwhere(canal).mean(axis=0) if canal.any() else (np.array(image.shape) - 1) / 2
            turned[s] = ndimage.affine_transform(image, matrix, centre - matrix @ centre, order=1, mode="constant",
                                                 cval=float(image.min()))
        return turned, stack_geometry(layout)
    return change


def gamma(power: float) -> Change:
    def change(stack, layout, first):
        low, high = np.percentile(stack, [0.0, 99.0])
        scaled = np.clip((stack - low) / max(high - low, 1e-6), 0.0, None)
        return (low + (high - low) * scaled ** power).astype(np.float32), stack_geometry(layout)
    return change


def mirrored(stack, layout, first):
    return stack[:, :, ::-1].copy(), stack_geometry(layout)


def coarser(stack, layout, first):
    sigma_px = math.sqrt((COARSER ** 2 - 1) / 12)  # a box of COARSER pixels has the variance of 1 + this Gaussian
    smooth = ndimage.gaussian_filter(stack, (0, sigma_px, sigma_px))
    shape = (stack.shape[0], *(max(int(round(n / COARSER)), 1) for n in stack.shape[1:]))
    scale = (stack.shape[1] / shape[1], stack.shape[2] / shape[2])
    resampled = ndimage.zoom(smooth, (1, 1 / scale[0], 1 / scale[1]), output=np.float32, order=1, grid_mode=True,
                             mode="nearest")[:, :shape[1], :shape[2]]
    return resampled, stack_geometry(layout, resampled.shape, scale)


def finer(stack, layout, first):
    interpolated = ndimage.zoom(stack, (1, 2, 2), output=np.float32, order=3, grid_mode=True, mode="nearest")
    return np.clip(interpolated, 0.0, None), stack_geometry(layout, interpolated.shape, (0.5, 0.5))


def noisier(stack, layout, first):
    sigma = NOISE_FRACTION * float(np.percentile(stack, 99.0))
    rng = np.random.default_rng(NOISE_SEED)
    real, imaginary = stack + rng.normal(0, sigma, stack.shape), rng.normal(0, sigma, stack.shape)
    return np.hypot(real, imaginary).astype(np.float32), stack_geometry(layout)


def shifted(stack, layout, first):
    columns = int(round(stack.shape[2] * SHIFT_FRACTION))
    moved = np.empty_like(stack)
    for s, image in enumerate(stack):
        moved[s] = image.min()
        moved[s, :, columns:] = image[:, :-columns]
    return moved, stack_geometry(layout)


def zero_mean(stack, layout, first):
    return ((stack - stack.mean()) / max(float(stack.std()), 1e-6)).astype(np.float32), stack_geometry(layout)


def coil_shaded(stack, layout, first):
    rows = stack.shape[1]
    fall_off = COIL_FALL_OFF ** (np.arange(rows)[::-1] / max(rows - 1, 1))  # rows run anterior to posterior
    return (stack * fall_off[None, :, None]).astype(np.float32), stack_geometry(layout)


def added_offset(fraction: float) -> Change:
    def offset(stack, layout, first):
        return (stack + fraction * float(np.percentile(stack, 99.0))).astype(np.float32), stack_geometry(layout)
    return offset


def spiked(stack, layout, first):
    spikes, level = stack.copy(), SPIKE_FRACTION * float(np.percentile(stack, 99.0))
    rng = np.random.default_rng(NOISE_SEED)
    for image in spikes:
        rows, columns = rng.integers(0, image.shape, (SPIKES_PER_SLICE, 2)).T
        image[rows, columns] = level
    return spikes, stack_geometry(layout)


def ghosted(stack, layout, first):
    ghost = np.roll(stack, stack.shape[1] // 2, axis=1)  # rows run anterior to posterior
    return (stack + GHOST_FRACTION * ghost).astype(np.float32), stack_geometry(layout)


CHANGES = {"mirrored": mirrored, f"rotated +{ROTATION_DEG:g}°": rotated(ROTATION_DEG),
           f"rotated -{ROTATION_DEG:g}°": rotated(-ROTATION_DEG), f"pixels {COARSER:g}x coarser": coarser,
           "pixels 2x finer": finer, "gamma 0.7": gamma(0.7), "gamma 1.5": gamma(1.5), "noisier": noisier,
           "shifted": shifted, "zero mean": zero_mean, "coil shading": coil_shaded,
           **{name: added_offset(fraction) for name, fraction in OFFSET_FRACTIONS.items()}, "spikes": spiked,
           "ghosted": ghosted}


def compare_runs(first: MeasurementRun, again: MeasurementRun, slices: list[int], region: str,
                 mirror: bool) -> list[dict]:
    """Per slice of slices: how the canal and foramina of again compare with first's."""
    records = []
    for s in slices:
        b, a = first.measurements[s].values, again.measurements[s].values
        grades_before, grades_after = grade(b, region), grade(a, region)
        record = {"found": not math.isnan(a["canal_ap_mm"]), "ap_change_mm": abs(a["canal_ap_mm"] - b["canal_ap_mm"]),
                  "area_change": abs(a["canal_area_mm2"] / b["canal_area_mm2"] - 1),
                  "same_grades": all(grades_before[key] == grades_after[key]
                                     for key in ("canal_ap_grade", "canal_area_grade")),
                  "checked": [run.measurements[s].is_to_check("canal") for run in (first, again)],
                  "foramina": []}
        for side in SIDES:
            if not math.isnan(b[f"{side}_width_mm"]):
                other = SIDES[1 - SIDES.index(side)] if mirror else side
                record["foramina"].append(abs(a[f"{other}_width_mm"] - b[f"{side}_width_mm"]))
        records.append(record)
    return records


def summary(records: list[dict]) -> dict:
    """The shares printed for one change and region (NaN comparisons, i.e. not found, count as moved)."""
    ap = np.array([r["ap_change_mm"] for r in records])
    widths = np.array([w for r in records for w in r["foramina"]])
    return {"slices": len(records), "found": np.mean([r["found"] for r in records]),
            "ap_within": np.mean(ap <= AP_WITHIN_MM), "ap_median_mm": np.nanmedian(ap) if len(ap) else math.nan,
            "area_within": np.mean([r["area_change"] <= AREA_WITHIN for r in records]),
            "same_grades": np.mean([r["same_grades"] for r in records]),
            "checked": "{}→{}".format(*np.sum([r["checked"] for r in records], axis=0, dtype=int)),
            "foramina": len(widths),
            "foramen_found": np.mean(~np.isnan(widths)) if len(widths) else math.nan,
            "foramen_within": np.mean(widths <= FORAMEN_WITHIN_MM) if len(widths) else math.nan}


def evaluate(segmenter, real: Path, only: str, changes: str = "") -> list[dict]:
    """The slice records (compare_runs) of every real volume and change (those whose name contains changes), each
    with its change, region and volume."""
    records = []
    for name, path, region, _ in real_volumes(real, only):
        volume = open_axial(path)
        first = measure_with_segmenter(volume, segmenter)
        stack = volume.stack()
        pixel_mm = volume.layout.slice_grid(0).pixel_size_mm
        square = np.isclose(*pixel_mm, rtol=0.02)
        thin_slices = volume.layout.geometry.spacing_mm.max() < COARSER * ISOTROPIC_RATIO * max(pixel_mm)
        plausible = [s for s in range(volume.n_slices) if one_plausible_canal(first, s)]
        print(f"{name}: {len(plausible)} of {volume.n_slices} slices with one plausible canal", flush=True)
        for change_name, change in CHANGES.items():
            if changes not in change_name:
                continue
            if change_name.startswith("rotated") and not square:
                continue  # turning an index grid of oblong pixels is no rigid turn
            if change is coarser and thin_slices:
                continue  # a 3-D volume: pixels coarser than its slices are thick would make it another stack
            changed, geometry = change(stack, volume.layout, first)
            again = measure_with_segmenter(axial_from_array(changed, geometry, name), segmenter)
            records += [{**record, "change": change_name, "region": region, "volume": name}
                        for record in compare_runs(first, again, plausible, region, change is mirrored)]
    return records


def print_table(records: list[dict], group: str) -> None:
    """summary of the records of each change and group ("region" or "volume")."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["change"], record[group]), []).append(record)
    width = max(len(name) for _, name in groups) + 2
    print(f"\n{'change':<22}{group:<{width}}{'slices':>7}{'found':>8}{'AP ≤1 mm':>10}{'|ΔAP| med':>11}"
          f"{'area ≤10 %':>12}{'grades same':>13}{'canal to check':>16}{'foramina':>10}{'found again':>13}"
          f"{'width ≤1 mm':>13}")
    order = list(CHANGES)
    for (change_name, name), rows in sorted(groups.items(), key=lambda item: (item[0][1], order.index(item[0][0]))):
        s = summary(rows)
        print(f"{change_name:<22}{name:<{width}}{s['slices']:>7}{s['found']:>8.1%}{s['ap_within']:>10.1%}"
              f"{s['ap_median_mm']:>9.2f}mm{s['area_within']:>12.1%}{s['same_grades']:>13.1%}{s['checked']:>16}"
              f"{s['foramina']:>10}{s['foramen_found']:>13.1%}{s['foramen_within']:>13.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    parser.add_argument("--only", default="", help="evaluate only volumes whose path contains this text")
    parser.add_argument("--change", default="", help="only the changes whose name contains this text")
    parser.add_argument("--by-volume", action="store_true", help="also print each volume's row per change")
    add_network_options(parser, compare=False)
    args = parser.parse_args()
    if not args.real.is_dir():
        sys.exit(f"no real validation folder at {args.real}")
    segmenter = load_segmenter(threads=2, **network_options(args))
    print(f"models {models_name(segmenter)}")
    records = evaluate(segmenter, args.real, args.only, args.change)
    print_table(records, "region")
    if args.by_volume:
        print_table(records, "volume")


if __name__ == "__main__":
    main()
