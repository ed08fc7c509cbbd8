"""How the networks' canals score on visibility.canal_edge_to_noise, and what the check column gains from flagging a
canal below visibility.MIN_CANAL_EDGE_TO_NOISE (visibility.faint) besides the canals network 2 is unsure of.

    .venv/bin/python benchmarks/canal_visibility.py [--count 400] [--held-out] [--noise-slices 40] [--real DIR]

1. Synthetic slices (the validation slices, seed training.VALIDATION_SEED, where the bound is chosen; --held-out: the
   held-out set instead). It prints the score's quantiles over the canals found, and for several bounds how many
   canals fall below each, how many of those are gross failures (canal Dice below 0.8), how many have their AP within
   1 mm of the truth, and how many network 2 is unsure of anyway (measurement.doubted).
2. Noise-only slices: each held-out slice's grid filled with Rayleigh noise, as a magnitude image is beyond the
   coil, white or spread over neighbouring pixels as interpolation spreads it (its complex parts smoothed over
   NOISE_SPREAD_PX). It prints on how many the networks report a canal, and of those how many are to check: by
   network 2's confidence alone, and with the visibility flag.
3. The real validation volumes (if --real exists; never trained on), measured end to end. It lists every slice whose
   canal only the visibility flag puts to check (network 2 is sure of it), with its score.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_real import CERVICAL, LABEL_FILE_MARKERS, LUMBAR_FOLDERS, REAL_FOLDER  # noqa: E402
from evaluate_synthetic import HELD_OUT_SEED, dice, held_out_slice  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.measurement import doubted, measure_slice  # noqa: E402
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.training import VALIDATION_SEED  # noqa: E402
from SpinalStenosisLib.visibility import MIN_CANAL_EDGE_TO_NOISE, faint  # noqa: E402
from SpinalStenosisLib.volume_io import open_axial  # noqa: E402

BOUNDS = (1.5, MIN_CANAL_EDGE_TO_NOISE, 2.0, 2.5)
NOISE_SEED = 5_000_000
NOISE_SPREAD_PX = 0.8


def synthetic_scores(segmenter, count: int, seed: int) -> list[dict]:
    """Per slice with a canal found: its score, whether network 2 is unsure of it, canal Dice and AP error."""
    records = []
    for n in range(count):
        case = held_out_slice(n, seed=seed)
        [result] = segmenter.segment([case.image], [case.grid])
        canal = result.native_labels == 1
        if not canal.any():
            continue
        found = measure_slice(result.masks, result.grid)
        found_ap_mm = found.values["canal_ap_mm"]
        records.append({"slice": n, "contrast": case.scene.contrast, "score": result.canal_edge_to_noise,
                        "doubted": doubted(found.confidences["canal_confidence"]),
                        "dice": dice(canal, case.labels == 1),
                        "ap_error_mm": abs(found_ap_mm - case.truth["canal_ap_mm"])})
    return records


def print_synthetic(records: list[dict], count: int, seed: int) -> None:
    scores = np.array([r["score"] for r in records])
    print(f"synthetic slices (seed {seed}): a canal found on {len(records)} of {count}; its edge-to-noise score, "
          f"quantiles 0/1/5/25/50 %: " + " / ".join(f"{q:.2f}" for q in np.percentile(scores, [0, 1, 5, 25, 50])))
    for bound in BOUNDS:
        below = [r for r in records if r["score"] < bound]
        print(f"  below {bound:g}{' (the bound)' if bound == MIN_CANAL_EDGE_TO_NOISE else ''}: {len(below)} canals, "
              f"{sum(r['dice'] < 0.8 for r in below)} of them gross failures (canal Dice below 0.8), "
              f"{sum(r['ap_error_mm'] <= 1 for r in below)} with the AP within 1 mm, "
              f"{sum(r['doubted'] for r in below)} doubted by network 2 anyway"
              + (f"; slices {', '.join(str(r['slice']) for r in below)}" if below and bound <= 1.5 else ""))


def noise_only_canals(segmenter, count: int, spread_px: float) -> tuple[int, int, int]:
    """On count noise-only slices: canals reported, of which to check by network 2's confidence, and by the check
    column (confidence or visibility.faint)."""
    rng = np.random.default_rng(NOISE_SEED)
    images, grids = [], []
    for n in range(count):
        grid = held_out_slice(n).grid
        parts = rng.normal(0.0, 1.0, (2, *grid.shape))
        if spread_px:
            parts = ndimage.gaussian_filter(parts, (0, spread_px, spread_px))
        images.append(np.hypot(*parts).astype(np.float32))
        grids.append(grid)
    found = [measure_slice(r.masks, r.grid, canal_edge_to_noise=r.canal_edge_to_noise)
             for r in segmenter.segment(images, grids)]
    found = [m for m in found if not math.isnan(m.values["canal_area_mm2"])]
    return (len(found), sum(doubted(m.confidences["canal_confidence"]) for m in found),
            sum(m.is_to_check("canal") for m in found))


def real_volumes(real: Path) -> list[Path]:
    cervical = [real / folder / image for folder, image, _ in CERVICAL]
    lumbar = [path for folder in LUMBAR_FOLDERS for path in sorted((real / folder).glob("*.nii.gz"))
              if not any(marker in path.name for marker in LABEL_FILE_MARKERS)]
    return cervical + lumbar


def print_real_flags(segmenter, real: Path) -> None:
    flagged = canals = 0
    for path in real_volumes(real):
        run = measure_with_segmenter(open_axial(path), segmenter)
        for m in run.measurements:
            if math.isnan(m.values["canal_area_mm2"]):
                continue
            canals += 1
            if faint(m.canal_edge_to_noise) and not doubted(m.confidences["canal_confidence"]):
                flagged += 1
                print(f"  {path.parent.name}/{path.name} slice {m.slice_index}: score {m.canal_edge_to_noise:.2f}; "
                      f"AP {m.values['canal_ap_mm']:.1f} mm, {m.values['canal_area_mm2']:.0f} mm²")
    print(f"  {flagged} of {canals} canals found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--held-out", action="store_true", help="the held-out slices instead of the validation ones")
    parser.add_argument("--noise-slices", type=int, default=40)
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    args = parser.parse_args()
    segmenter = load_segmenter(threads=2, precision="float32")
    seed = HELD_OUT_SEED if args.held_out else VALIDATION_SEED
    print_synthetic(synthetic_scores(segmenter, args.count, seed), args.count, seed)
    for spread_px, kind in ((0.0, "white"), (NOISE_SPREAD_PX, f"spread over {NOISE_SPREAD_PX} pixels")):
        found, doubted_canals, to_check = noise_only_canals(segmenter, args.noise_slices, spread_px)
        print(f"noise-only slices, {kind}: a canal reported on {found} of {args.noise_slices}; to check by network "
              f"2's confidence {doubted_canals}, with the visibility flag {to_check}")
    if args.real.is_dir():
        print(f"real validation volumes ({args.real}): canals that only the visibility flag puts to check")
        print_real_flags(segmenter, args.real)


if __name__ == "__main__":
    main()
