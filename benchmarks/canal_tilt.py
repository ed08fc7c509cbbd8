"""How far the canal moves front to back from one real lumbar slice to the next: the spine's tilt against the slice
normal, and so how much a slice as thick as the spacing smears the sac front to back (see evaluate_synthetic.py
--smear-mm for what a smear costs on slices with truth).

    .venv/bin/python benchmarks/canal_tilt.py [--real ../shared/eval/real] [--only chaos]

For each real lumbar volume the shipped networks measure (with the stack step), the AP distance between the canal
centroids of neighbouring slices that both have a canal, over the slice spacing. A slice of thickness t meets a sac
whose centre moves d mm per spacing s over about t d / s mm of AP; here t is taken as s (no gap), so the move itself
is that smear. The centroids are of the found masks, so a mask drawn short adds to the moves.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_real import REAL_FOLDER, real_volumes  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.volume_io import open_axial  # noqa: E402


def canal_moves_mm(run) -> tuple[float, np.ndarray]:
    """(the slice spacing, the canal centroid's AP move between each pair of neighbouring slices with a canal)."""
    layout = run.volume.layout
    anterior, _ = layout.slice_grid(0).in_plane_axes()
    spacing_mm = abs(float(layout.stack_index_to_ras()[:3, 0] @ layout.slice_grid(0).normal_ras))
    anterior_mm = [layout.slice_grid(s).centroid_ras(canal) @ anterior if canal.any() else np.nan
                   for s, canal in enumerate(run.stack_labels == 1)]
    moves = np.abs(np.diff(anterior_mm))
    return spacing_mm, moves[np.isfinite(moves)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    parser.add_argument("--only", default="", help="only the volumes whose path contains this")
    args = parser.parse_args()
    segmenter = load_segmenter(threads=2, precision="float32")
    print(f"{'lumbar volume':<70} {'spacing':>8} {'pairs':>6} {'median':>7} {'90th pct':>9} {'tilt':>6}")
    every = []
    for name, path, region, _ in real_volumes(args.real, args.only):
        if region != "lumbar":
            continue
        spacing_mm, moves = canal_moves_mm(measure_with_segmenter(open_axial(path), segmenter))
        if not len(moves):
            continue
        every.append(moves)
        median, tilt_deg = float(np.median(moves)), float(np.degrees(np.arctan2(np.median(moves), spacing_mm)))
        print(f"{name[-70:]:<70} {spacing_mm:>6.1f}mm {len(moves):>6} {median:>5.1f}mm "
              f"{np.percentile(moves, 90):>7.1f}mm {tilt_deg:>5.0f}°")
    if every:
        moves = np.concatenate(every)
        print(f"{'all':<70} {'':>8} {len(moves):>6} {np.median(moves):>5.1f}mm {np.percentile(moves, 90):>7.1f}mm")


if __name__ == "__main__":
    main()
