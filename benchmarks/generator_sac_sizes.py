"""How small the generator's lumbar sacs get: the dural sac area by stenosis grade and slice kind, against the
clinical cut-offs (absolute stenosis under 75 mm², relative 75-100 mm²) and published sizes (L4-L5: controls
152 ± 54 mm², lumbar spinal stenosis patients 80 ± 35 mm²; ../shared/design/axial-spine-anatomy.md).

    .venv/bin/python benchmarks/generator_sac_sizes.py [--anatomies 1000] [--seed 123]

Labels only, no images: each random lumbar anatomy's sac (the canal's tissues) is painted on a 0.1 mm grid.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from SpinalStenosisLib.grading import CANAL_AREA_CUTOFFS_MM2  # noqa: E402
from SpinalStenosisLib.synth.anatomy import SLICE_KINDS, STENOSIS_GRADES, sac_area_mm2, sample_anatomy  # noqa: E402

ABSOLUTE_MM2, RELATIVE_MM2 = CANAL_AREA_CUTOFFS_MM2


def row(label: str, areas: list[float]) -> str:
    if not areas:
        return f"{label:<28}{0:>6}"
    a = np.array(areas)
    low, median, high = np.percentile(a, [5, 50, 95])
    return (f"{label:<28}{len(a):>6}{median:>9.0f}{f'{low:.0f}-{high:.0f}':>11}{a.mean():>8.0f} ± {a.std():<5.0f}"
            f"{np.mean(a < ABSOLUTE_MM2):>9.1%}{np.mean(a < RELATIVE_MM2):>9.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anatomies", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    samples = []
    for n in range(args.anatomies):
        anatomy = sample_anatomy(np.random.default_rng([args.seed, n]), "lumbar")
        samples.append((anatomy.stenosis, anatomy.kind, anatomy.level, sac_area_mm2(anatomy)))
    print(f"{'lumbar sac area (mm²)':<28}{'n':>6}{'median':>9}{'5-95 %':>11}{'mean ± sd':>14}"
          f"{'< 75':>9}{'< 100':>9}")
    for kind in SLICE_KINDS:
        for grade in STENOSIS_GRADES:
            print(row(f"{kind}, {grade}", [a for g, k, _, a in samples if g == grade and k == kind]))
    print(row("L4-L5 disc, no stenosis", [a for g, k, lv, a in samples if (g, k, lv) == ("none", "disc", "L4-L5")]))
    print(row("L4-L5 disc, any stenosis", [a for g, k, lv, a in samples
                                           if g != "none" and (k, lv) == ("disc", "L4-L5")]))
    print(row("all", [a for *_, a in samples]))


if __name__ == "__main__":
    main()
