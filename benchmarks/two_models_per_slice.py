"""What two canal networks could give together, slice by slice, on the synthetic held-out set: the shipped one with a
candidate (e.g. one trained on narrowed sacs) taking over where the shipped one finds a small sac, and two oracles
that no product could be: the candidate where the true sac is small, and the better of the two on every slice.

    .venv/bin/python benchmarks/evaluate_synthetic.py --count 300 --json shipped.json
    SPINAL_STENOSIS_MODELS=runs/models_X .venv/bin/python benchmarks/evaluate_synthetic.py --count 300 --json X.json
    .venv/bin/python benchmarks/two_models_per_slice.py shipped.json X.json

Each choice takes a slice's whole record (canal and foramina) from one network or the other. Prints, per choice,
how many slices the candidate takes and the canal AP within 1 mm (all contrasts / T2 family), the mean canal Dice
and the foramen width within 2 mm (all contrasts): whether a gate on the shipped network's own sac area could keep
what a narrow-sac network learns where the shipped one draws the sac too large.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_synthetic import in_group, shares_within  # noqa: E402
from SpinalStenosisLib.grading import CANAL_AREA_CUTOFFS_MM2  # noqa: E402

GATE_AREAS_MM2 = (80.0, 100.0, 120.0, 140.0, 160.0)
TRUE_STENOSIS_MM2 = CANAL_AREA_CUTOFFS_MM2[1]  # a relative stenosis or worse


def within(records: list[dict], key: str, limit_mm: float) -> float:
    return shares_within([e for r in records for e in r["errors"][key]], (limit_mm,))[str(limit_mm)]


def canal_area_mm2(record: dict, which: str) -> float:
    return record["measurements"]["canal_area_mm2"][which]


def summary_line(name: str, records: list[dict], taken: int) -> str:
    t2 = in_group(records, "T2 family")
    canal_dice = np.nanmean([r["dice"]["canal"] for r in records])
    return (f"{name:<46}{taken:>7}{within(records, 'canal_ap_mm', 1.0):>10.1%}{within(t2, 'canal_ap_mm', 1.0):>10.1%}"
            f"{canal_dice:>8.3f}{within(records, 'foramen_width_mm', 2.0):>10.1%}")


def combined(shipped: list[dict], candidate: list[dict], take: Callable[[dict, dict], bool]
             ) -> tuple[list[dict], int]:
    """Per slice the candidate's record where take(shipped, candidate), else the shipped one's."""
    chosen = [c if take(s, c) else s for s, c in zip(shipped, candidate)]
    return chosen, sum(c is not s for c, s in zip(chosen, shipped))


def canal_ap_error(record: dict) -> float:
    return record["errors"]["canal_ap_mm"][0] if record["errors"]["canal_ap_mm"] else math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shipped", type=Path, help="evaluate_synthetic.py --json of the shipped networks")
    parser.add_argument("candidate", type=Path, help="the same for the candidate's models folder")
    args = parser.parse_args()
    shipped, candidate = (json.loads(path.read_text(encoding="utf-8"))["slices"] for path in (args.shipped,
                                                                                              args.candidate))
    if [r["slice"] for r in shipped] != [r["slice"] for r in candidate]:
        raise SystemExit("the two files hold different slices: run both with the same --count and --noise-scale")
    print(f"{'':<46}{'taken':>7}{'AP<=1mm':>10}{'T2 fam.':>10}{'Dice':>8}{'for.<=2mm':>10}")
    print(summary_line("shipped", shipped, 0))
    print(summary_line("candidate", candidate, len(candidate)))
    for gate_mm2 in GATE_AREAS_MM2:
        chosen, taken = combined(shipped, candidate, lambda s, c: canal_area_mm2(s, "found") < gate_mm2)
        print(summary_line(f"candidate where shipped sac < {gate_mm2:g} mm²", chosen, taken))
    chosen, taken = combined(shipped, candidate, lambda s, c: canal_area_mm2(s, "truth") < TRUE_STENOSIS_MM2)
    print(summary_line(f"oracle: candidate where true sac < {TRUE_STENOSIS_MM2:g} mm²", chosen, taken))
    chosen, taken = combined(shipped, candidate, lambda s, c: canal_ap_error(c) < canal_ap_error(s))
    print(summary_line("oracle: the better canal AP on each slice", chosen, taken))


if __name__ == "__main__":
    main()
