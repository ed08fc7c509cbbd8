"""Synthetic held-out evaluation of the shipped networks (fixed seed, never trained on).

    .venv/bin/python benchmarks/evaluate_synthetic.py [--count 300] [--json out.json]

Each case is a native-resolution synthetic slice; truth comes from 0.08 mm label maps. Prints Dice per class
(native grid), the canal AP / transverse / foramen-width error CDF at 1, 2, 3 mm (the paper's Fig. 6), and
whether absent foramina are reported absent.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.measurement import measure_slice  # noqa: E402
from SpinalStenosisLib.synth.dataset import synthetic_slice  # noqa: E402

HELD_OUT_SEED = 9_000_000  # training seeds are (run seed, step); the validation seed is 2_000_000
CLASSES = {1: "canal", 2: "left foramen", 3: "right foramen"}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else float("nan")


def evaluate(count: int, cervical_every: int = 4) -> dict:
    segmenter = load_segmenter(threads=2)
    errors = {"canal_ap_mm": [], "canal_transverse_mm": [], "foramen_width_mm": [], "canal_area_rel": []}
    dices = {name: [] for name in CLASSES.values()}
    absent = {"truth_absent": 0, "reported_absent": 0, "truth_present": 0, "reported_present": 0}
    per_region = {"lumbar": [], "cervical": []}
    per_contrast: dict[str, list[float]] = {}
    for n in range(count):
        region = "cervical" if n % cervical_every == 0 else "lumbar"
        case = synthetic_slice(np.random.default_rng([HELD_OUT_SEED, n]), region)
        [result] = segmenter.segment([case.image], [case.grid])
        predicted = measure_slice(result.masks, result.grid).values
        for value, name in CLASSES.items():
            dices[name].append(dice(result.native_labels == value, case.labels == value))
        truth = case.truth
        for key in ("canal_ap_mm", "canal_transverse_mm"):
            if not math.isnan(truth[key]):
                error = abs(predicted[key] - truth[key]) if not math.isnan(predicted[key]) else math.inf
                errors[key].append(error)
                if key == "canal_ap_mm":
                    per_region[region].append(error)
                    per_contrast.setdefault(case.scene.contrast, []).append(error)
        if not math.isnan(truth["canal_area_mm2"]) and not math.isnan(predicted["canal_area_mm2"]):
            errors["canal_area_rel"].append(abs(predicted["canal_area_mm2"] / truth["canal_area_mm2"] - 1))
        for side in ("left", "right"):
            key = f"{side}_foramen_width_mm"
            if math.isnan(truth[key]):
                absent["truth_absent"] += 1
                absent["reported_absent"] += math.isnan(predicted[key])
            else:
                absent["truth_present"] += 1
                absent["reported_present"] += not math.isnan(predicted[key])
                errors["foramen_width_mm"].append(abs(predicted[key] - truth[key]) if not math.isnan(predicted[key])
                                                  else math.inf)
    summary = {"cases": count, "seed": HELD_OUT_SEED,
               "dice": {name: float(np.nanmean(values)) for name, values in dices.items()},
               "within_mm": {key: {str(t): float(np.mean(np.array(values) <= t)) for t in (1, 2, 3)}
                             for key, values in errors.items() if key != "canal_area_rel"},
               "median_error_mm": {key: float(np.median(values)) for key, values in errors.items()
                                   if key != "canal_area_rel"},
               "canal_area_median_relative_error": float(np.median(errors["canal_area_rel"])),
               "canal_ap_within_1mm_by_region": {r: float(np.mean(np.array(v) <= 1)) for r, v in per_region.items()},
               "canal_ap_by_contrast": {c: {"n": len(v), "within_1mm": float(np.mean(np.array(v) <= 1)),
                                            "within_2mm": float(np.mean(np.array(v) <= 2))}
                                        for c, v in sorted(per_contrast.items())},
               "foramen_absent_reported_absent": absent["reported_absent"] / max(absent["truth_absent"], 1),
               "foramen_present_reported_present": absent["reported_present"] / max(absent["truth_present"], 1),
               "counts": {**absent, **{k: len(v) for k, v in errors.items()}}}
    return summary


def print_table(summary: dict) -> None:
    print(f"Synthetic held-out set: {summary['cases']} slices (seed {summary['seed']}, 1 in 4 cervical)")
    print("\nDice (native grid)     " + "  ".join(f"{k}: {v:.3f}" for k, v in summary["dice"].items()))
    print(f"\n{'measurement':<24}{'<=1 mm':>9}{'<=2 mm':>9}{'<=3 mm':>9}{'median':>9}{'n':>6}")
    for key, cdf in summary["within_mm"].items():
        print(f"{key:<24}{cdf['1']:>9.1%}{cdf['2']:>9.1%}{cdf['3']:>9.1%}"
              f"{summary['median_error_mm'][key]:>8.2f}m{summary['counts'][key]:>6}")
    print(f"\ncanal area median relative error: {summary['canal_area_median_relative_error']:.1%}")
    print("canal AP <=1 mm by region: " + ", ".join(f"{k} {v:.1%}" for k, v in
                                                    summary["canal_ap_within_1mm_by_region"].items()))
    print("canal AP by contrast: " + "; ".join(
        f"{c} (n={v['n']}) <=1 mm {v['within_1mm']:.0%}, <=2 mm {v['within_2mm']:.0%}"
        for c, v in summary["canal_ap_by_contrast"].items()))
    print(f"absent foramina reported absent: {summary['foramen_absent_reported_absent']:.1%} "
          f"(of {summary['counts']['truth_absent']}); present reported present: "
          f"{summary['foramen_present_reported_present']:.1%} (of {summary['counts']['truth_present']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    summary = evaluate(args.count)
    print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
