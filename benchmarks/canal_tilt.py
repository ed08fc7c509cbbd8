"""How far the canal moves front to back from one real lumbar slice to the next: the spine's tilt against the slice
normal, and so how much a slice as thick as the spacing blurs the sac front to back (see evaluate_synthetic.py
--smear-mm for what a blur costs on slices with truth), and on which volumes the product warns of it.

    .venv/bin/python benchmarks/canal_tilt.py [--real ../shared/eval/real] [--only chaos]

For each real lumbar volume the shipped networks measure (with the stack step): the AP distance between the canal
centroids of neighbouring slices that both have a canal (median and 90th percentile); the blur the product estimates
(centreline.front_to_back_blur_mm: the slice spacing times the canal's AP slope fitted over TILT_WINDOW_MM, median
over slices) and the tilt it implies; and whether MeasurementRun.warnings warns of it (a median blur of
centreline.BLURRED_OVER_MM or more). A slice of thickness t meets a sac whose centre moves d mm per spacing s over
about t d / s mm of AP; here t is taken as s (no gap). The centroids are of the found masks, so a mask drawn short
adds to the moves; the fitted slope is less moved by a single slice.

The last columns give the tilt on the 90th-percentile slice and how much longer an axial cut through a canal tilted
so reads its AP than a cut across the canal (1 / cos of the tilt, the factor SCT's angle correction takes out); the
product reports the AP in the slice, as its rulers measure it and a reader measures it on that slice.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_real import REAL_FOLDER, real_volumes  # noqa: E402
from SpinalStenosisLib.centreline import (canal_anterior_mm, front_to_back_blur_mm, thick_slice_warnings,  # noqa: E402
                                         tilt_degrees)
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.volume_io import open_axial  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    parser.add_argument("--only", default="", help="only the volumes whose path contains this")
    args = parser.parse_args()
    segmenter = load_segmenter(threads=2, precision="float32")
    print(f"{'lumbar volume':<62} {'spacing':>8} {'pairs':>6} {'moves: median':>14} {'90th pct':>9} "
          f"{'fitted blur':>12} {'tilt':>5} warned {'90th pct tilt':>14} {'AP long by':>10}")
    every = []
    for name, path, region, _ in real_volumes(args.real, args.only):
        if region != "lumbar":
            continue
        run = measure_with_segmenter(open_axial(path), segmenter)
        layout, canal_stack = run.volume.layout, run.stack_labels == 1
        moves = np.abs(np.diff(canal_anterior_mm(canal_stack, layout)))
        moves = moves[np.isfinite(moves)]
        blur = front_to_back_blur_mm(canal_stack, layout)
        blur = blur[np.isfinite(blur)]
        if not len(moves) or not len(blur):
            continue
        every.append(moves)
        blur_mm = float(np.median(blur))
        tilt_deg = tilt_degrees(blur_mm, layout.slice_spacing_mm)
        warned = "yes" if thick_slice_warnings(canal_stack, layout) else "no"
        steep_deg = tilt_degrees(float(np.percentile(blur, 90)), layout.slice_spacing_mm)
        print(f"{name[-62:]:<62} {layout.slice_spacing_mm:>6.1f}mm {len(moves):>6} {np.median(moves):>12.1f}mm "
              f"{np.percentile(moves, 90):>7.1f}mm {blur_mm:>10.2f}mm {tilt_deg:>4.0f}° {warned:<6} "
              f"{steep_deg:>13.0f}° {100 / np.cos(np.radians(steep_deg)) - 100:>9.1f}%")
    if every:
        moves = np.concatenate(every)
        print(f"{'all':<62} {'':>8} {len(moves):>6} {np.median(moves):>12.1f}mm {np.percentile(moves, 90):>7.1f}mm")


if __name__ == "__main__":
    main()
