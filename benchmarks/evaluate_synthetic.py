"""Synthetic held-out evaluation of the shipped networks (fixed seed, never trained on).

    .venv/bin/python benchmarks/evaluate_synthetic.py [--count 300] [--stacks 40] [--stack-region cervical]
                                                      [--json out.json] [--compare MODELS_FOLDER] [--noise-scale 0.1]
                                                      [--validation] [--check-below 0.95,0.92] [--smear-mm 4]

Each case is a native-resolution synthetic slice; truth comes from 0.08 mm label maps. Prints, for all contrasts and
for the T2 family the product is meant for (T2, T2*, fat-suppressed T2): Dice per class (native grid, over the
slices where the structure exists), the canal AP / transverse / foramen-width error CDF at 1, 2, 3 mm (the paper's
Fig. 6), whether absent foramina are reported absent (and a canal on slices without one), whether issue 5's
synthetic targets are met (canal Dice >= 0.95, canal AP within 1 mm on 95 %, foramen width within 2 mm on 90 % of
the foramina that exist) with a 95 % bootstrap interval of each over slices, the canal AP error per contrast and
region, the foramen width within 2 mm and the foramina missed per contrast; on T2-family slices by how bright the
epidural fat is against the CSF (where they are alike and the thin dura is lost to partial volume, the sac's edge is
hard to see); by the native pixel size (all contrasts and T2 family); and by the true AP (all contrasts, with how
many of the canals off by more than 1 mm overestimate). It also measures the true area-fraction masks on the very
crop network 2 was given, the same way (measurements, and canal Dice after the same mapping to the native grid):
what that crop's resolution allows, so the rest of the error is the network's. The canal Dice's median and the
slices below 0.8 (gross failures) show how much of the mean's shortfall is a few wrong finds rather than edges, and
the gross failures are counted by kind (gross_failure_kind: over-drawn, elsewhere, a part, misplaced, nothing). The
grades (grading.py's cut-offs: canal AP, dural-sac area, foramen) show how often a slice's grade comes out as its
truth's, and how the others were graded. The check column (what network 2 was unsure of: its confidence below
measurement.CHECK_BELOW; for the canal also an outline the image barely shows, visibility.faint): on how many slices
the canal is to check, the canal AP within 1 mm on those and on the others, and how many gross failures they hold;
how many of the reported foramina are to check, how many of those and of the others are within 2 mm, and how many
foramina reported where there is none are to check (--check-below: at other confidence cut-offs too, to choose
one). --json also
writes every slice's record (its index in the set, contrast, pixel size, Dice, true and found measurements and
grades, confidences), for looking at failures.

With --stacks N it also measures N synthetic multi-level T2 series, each one patient and one scanner (pedicle, disc
and mid-body slices of L3-S1, as in the demo; with --stack-region cervical, disc and mid-body slices of C4-C7) end to
end, with the stack step and slice by slice, and prints the canal AP error of each, on how many slices the stack
step changes the canal, how often a slice's grades and a level's are the truth's (a level's: the worst finding of
its slices, named by their true level, against the smallest true value among them, as a report states each level),
and the largest front-to-back blur the product estimates on these untilted stacks and on how many it warns of thick
slices (centreline.thick_slice_warnings: none should), and how many show a whole neck or the cord in the sac
(body_region, which grades a series cervical where nothing names its region: none of the lumbar ones should).

With --compare it also runs the networks of another models folder (e.g. a fine-tune, see `spinal-stenosis
package-models`) on the same slices and prints, for each outcome, both models' shares, on how many slices (or
foramina) the candidate is better and worse, and the exact McNemar p-value of that split: whether a difference is
more than the luck of which slices were drawn.

With --validation the slices are drawn from the validation seed instead (training.VALIDATION_SEED, never trained on
either, and not the held-out set): where a cut-off such as measurement.CHECK_BELOW is chosen, so that the
held-out set stays untouched.

With --noise-scale S the held-out slices are the same (anatomy, contrast, texture, blur, artefacts) with their noise
level multiplied by S: whether the noise is what limits the networks (the multi-level stacks keep theirs).

With --smear-mm W the held-out slices are the same, imaged as thick slices through a spine tilted in the sagittal
plane: each structure smeared over W mm front to back before the noise (synth.sampler.smeared_front_to_back; the
truth is the mid-plane's), as a 7.7 mm slice at 30° smears it over about 4.4 mm (the multi-level stacks keep theirs).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from SpinalStenosisLib.body_region import CORD, NECK  # noqa: E402
from SpinalStenosisLib.centreline import front_to_back_blur_mm, thick_slice_warnings  # noqa: E402
from SpinalStenosisLib.evaluation import dice, error  # noqa: E402
from SpinalStenosisLib.findings import worst_findings_by_level  # noqa: E402
from SpinalStenosisLib.grading import CANAL_AREA_CUTOFFS_MM2, FORAMEN_CUTOFF_MM, REGIONS, grade  # noqa: E402
from SpinalStenosisLib.inference import (CHANNELS, PRECISIONS, SHIPPED_MIRROR_AVERAGE, load_segmenter,  # noqa: E402
                                         native_labels)
from SpinalStenosisLib.measurement import (CHECK_BELOW, MAX_AREA_TO_CHORDS, MEASUREMENT_COLUMNS,  # noqa: E402
                                           STRUCTURE_WORDS, STRUCTURES, doubted, measure_slice, structure_to_check,
                                           unmatched_foramen)
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.symmetry import OFF_AXIS_MM  # noqa: E402
from SpinalStenosisLib.synth.anatomy import T  # noqa: E402
from SpinalStenosisLib.synth.dataset import SyntheticSlice, synthetic_slice, synthetic_stack  # noqa: E402
from SpinalStenosisLib.synth.sampler import fractions  # noqa: E402
from SpinalStenosisLib.training import VALIDATION_SEED  # noqa: E402
from SpinalStenosisLib.visibility import (MIN_CANAL_EDGE_TO_NOISE, RAISED_FLOOR_SHARE, checked_pixels,  # noqa: E402
                                          darkest_share, field_of_view, intensity_floor, networks_view)
from SpinalStenosisLib.volume_io import axial_from_array  # noqa: E402

HELD_OUT_SEED = 9_000_000  # training seeds are (run seed, step); the validation seed is 2_000_000
STACK_SEED = 7_000_000
CERVICAL_EVERY = 4  # 1 in 4 held-out slices is cervical
CLASSES = {1: "canal", 2: "left foramen", 3: "right foramen"}
T2_FAMILY = ("T2", "T2star", "T2FS")
GROUPS = ("all", "T2 family")  # the slices each summary table is over: every contrast, the T2 family
ERROR_KEYS = ("canal_ap_mm", "canal_transverse_mm", "foramen_width_mm")
FORAMEN_KEYS = ("left_foramen_width_mm", "right_foramen_width_mm")
FAT_TO_CSF_BANDS = (0.0, 0.5, 0.7, 0.85, math.inf)
PIXEL_MM_BANDS = (0.0, 0.5, 0.75, 1.0, math.inf)  # the native slice's (smaller) pixel side
TRUE_CANAL_AP_BANDS = (0.0, 6.0, 10.0, 14.0, math.inf)
TRUE_CANAL_AREA_BANDS = (0.0, *CANAL_AREA_CUTOFFS_MM2, math.inf)  # the dural-sac area grades
GRADED = (("canal AP", ("canal_ap_grade",)), ("dural-sac area", ("canal_area_grade",)),
          ("foramen", ("left_foramen_grade", "right_foramen_grade")))  # what a grade is, and its grading.grade keys
PAIRED_OUTCOMES = (("canal AP within 1 mm", lambda r: [e <= 1 for e in r["errors"]["canal_ap_mm"]]),
                   ("canal AP within 2 mm", lambda r: [e <= 2 for e in r["errors"]["canal_ap_mm"]]),
                   ("foramen width within 2 mm", lambda r: [e <= 2 for e in r["errors"]["foramen_width_mm"]]),
                   ("absent foramen reported absent", lambda r: r["absent"]))
DICE_CHANGE = 0.01  # a slice's canal Dice counts as better or worse when it moves by more than this
# issue 5's synthetic targets: (what, a slice's part of it as (sum, count), the least it must be); the target is the
# sum over slices divided by the count (canal Dice: the mean over slices with a canal)
TARGETS = (("canal Dice", lambda r: (0.0, 0) if math.isnan(r["dice"]["canal"]) else (r["dice"]["canal"], 1), 0.95),
           ("canal AP within 1 mm", lambda r: (sum(e <= 1 for e in r["errors"]["canal_ap_mm"]),
                                               len(r["errors"]["canal_ap_mm"])), 0.95),
           ("foramen width within 2 mm", lambda r: (sum(e <= 2 for e in r["errors"]["foramen_width_mm"]),
                                                    len(r["errors"]["foramen_width_mm"])), 0.90))
BOOTSTRAP_RESAMPLES = 2000
# --mirror-average: where probabilities are averaged with the left-right mirror view's (inference.NetworkSegmenter)
MIRROR_AVERAGED = {"final": SHIPPED_MIRROR_AVERAGE, "none": (), "canal": ("canal",), "all": ("roi", "canal")}


def fat_to_csf(image: np.ndarray, tissues: np.ndarray) -> float:
    """Mean image intensity of the epidural fat over that of the CSF (NaN where either is not on the slice)."""
    fat, csf = tissues == T["epidural_fat"], tissues == T["csf"]
    return float(image[fat].mean() / max(image[csf].mean(), 1e-6)) if fat.any() and csf.any() else math.nan


def add_noise_scale_option(parser: argparse.ArgumentParser) -> None:
    """--noise-scale, for the scripts that run the held-out slices."""
    parser.add_argument("--noise-scale", type=float, default=1.0,
                        help="the same held-out slices with their noise level multiplied by this (e.g. 0.1)")


def add_network_options(parser: argparse.ArgumentParser, compare: bool = True) -> None:
    """--precision and --mirror-average (and with compare, their --candidate- forms for --compare), for the scripts
    that run the networks."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="what the networks compute in (inference.network_dtype)")
    parser.add_argument("--mirror-average", choices=tuple(MIRROR_AVERAGED), default="final",
                        help="where the networks' probabilities are averaged with those on the left-right mirror "
                             "image: final (shipped), network 2 on each slice's final crop; none (models 1.7.0's "
                             "pipeline); canal / all, every pass of network 2 / of all networks (not shipped)")
    if compare:
        parser.add_argument("--candidate-precision", choices=PRECISIONS,
                            help="the --compare networks' precision (default: --precision); with --compare naming "
                                 "the shipped folder, compares two precisions")
        parser.add_argument("--candidate-mirror-average", choices=tuple(MIRROR_AVERAGED),
                            help="--mirror-average for the --compare networks (default: --mirror-average); with "
                                 "--compare naming the shipped folder, compares two ways of averaging")


def network_options(args: argparse.Namespace, candidate: bool = False) -> dict:
    """load_segmenter's precision and mirror_average from add_network_options' arguments (the --compare networks'
    with candidate)."""
    if candidate:
        return {"precision": args.candidate_precision or args.precision,
                "mirror_average": MIRROR_AVERAGED[args.candidate_mirror_average or args.mirror_average]}
    return {"precision": args.precision, "mirror_average": MIRROR_AVERAGED[args.mirror_average]}


def held_out_slice(n: int, noise_scale: float = 1.0, seed: int = HELD_OUT_SEED, smear_mm: float = 0.0
                   ) -> SyntheticSlice:
    """Held-out slice n (its region is case.scene.anatomy.region); noise_scale < 1: the same slice with less noise;
    seed VALIDATION_SEED: validation slice n instead; smear_mm: the same slice smeared front to back."""
    region = "cervical" if n % CERVICAL_EVERY == 0 else "lumbar"
    return synthetic_slice(np.random.default_rng([seed, n]), region, noise_scale=noise_scale, smear_mm=smear_mm)


def evaluate_case(segmenter, n: int, noise_scale: float = 1.0, seed: int = HELD_OUT_SEED,
                  smear_mm: float = 0.0) -> dict:
    case = held_out_slice(n, noise_scale, seed, smear_mm)
    region = case.scene.anatomy.region
    [result] = segmenter.segment([case.image], [case.grid])
    found = measure_slice(result.masks, result.grid, canal_edge_to_noise=result.canal_edge_to_noise,
                          canal_off_axis_mm=result.canal_off_axis_mm,
                          field_of_view=field_of_view(case.image, case.grid))
    predicted, truth = found.values, case.truth
    record = {"slice": n, "region": region, "contrast": case.scene.contrast,
              "fat_to_csf": fat_to_csf(case.image, case.tissues),
              "pixel_mm": min(case.grid.pixel_size_mm),
              "dice": {name: dice(result.native_labels == value, case.labels == value)
                       for value, name in CLASSES.items()},
              "errors": {key: [] for key in ERROR_KEYS}, "absent": [], "present_found": [],
              "confidences": found.confidences, "canal_edge_to_noise": found.canal_edge_to_noise,
              "canal_off_axis_mm": found.canal_off_axis_mm, "canal_area_to_chords": found.canal_area_to_chords,
              "cut_by_field_of_view": sorted(found.cut_by_field_of_view),
              "reported_foramina": [], "unmatched_foramina": [], "obliterated_foramina": []}
    for key in ("canal_ap_mm", "canal_transverse_mm"):
        if not math.isnan(truth[key]):
            record["errors"][key].append(error(predicted[key], truth[key]))
    record["measurements"] = {key: {"truth": truth[key], "found": predicted[key]} for key in MEASUREMENT_COLUMNS}
    record["grades"] = graded(truth, predicted, region)
    if math.isnan(truth["canal_area_mm2"]):
        record["canal_reported_without_one"] = not math.isnan(predicted["canal_area_mm2"])
    elif not math.isnan(predicted["canal_area_mm2"]):
        record["canal_area_rel"] = predicted["canal_area_mm2"] / truth["canal_area_mm2"] - 1
        record["canal_ap_signed_mm"] = predicted["canal_ap_mm"] - truth["canal_ap_mm"]
    for side in ("left", "right"):
        key = f"{side}_foramen_width_mm"
        if not math.isnan(predicted[key]):  # (confidence, whether a true one exists, within 2 mm of it)
            record["reported_foramina"].append((found.confidences[f"{side}_foramen_confidence"],
                                                not math.isnan(truth[key]), error(predicted[key], truth[key]) <= 2.0,
                                                f"{side}_foramen" in found.cut_by_field_of_view))
        if math.isnan(truth[key]):
            record["absent"].append(math.isnan(predicted[key]))
        else:
            record["present_found"].append(not math.isnan(predicted[key]))
            record["errors"]["foramen_width_mm"].append(error(predicted[key], truth[key]))
        unmatched = unmatched_foramen(f"{side}_foramen", found.confidences)
        truth_there = unmatched_truth(case, side, truth[key])
        if unmatched:
            record["unmatched_foramina"].append(truth_there)
        if truth_there == "obliterated":  # (the width found, NaN if none; flagged)
            record["obliterated_foramina"].append((predicted[key], unmatched))
    _, floor = intensity_floor(case.image.ravel())
    if floor:  # measure sees this slice from its darkest level up
        record["seen_from_darkest_level"] = from_darkest_level(segmenter, case, floor)
    if result.roi_box_rc is not None:
        true_masks = dict(zip(CHANNELS, fractions(case.scene.paint(result.grid, 2), 2)))
        on_crop = measure_slice(true_masks, result.grid).values
        record["true_masks_on_crop"] = {
            "canal_ap_mm": [error(on_crop[key], truth[key]) for key in ["canal_ap_mm"] if not math.isnan(truth[key])],
            "foramen_width_mm": [error(on_crop[key], truth[key]) for key in FORAMEN_KEYS if not math.isnan(truth[key])]}
        record["true_masks_on_crop_canal_dice"] = dice(native_labels(true_masks, result.grid, case.grid) == 1,
                                                       case.labels == 1)
    return record


def from_darkest_level(segmenter, case: SyntheticSlice, floor: float) -> dict:
    """A slice as measure sees it where its darkest level, floor, is far above 0 (visibility.intensity_floor; a slice
    whose air is grey with noise, or cropped tightly around the spine without air): measured from that level up. Its
    errors and field of view."""
    [result] = segmenter.segment([networks_view(case.image, floor)], [case.grid])
    found, truth = measure_slice(result.masks, result.grid).values, case.truth
    return {"canal_ap_mm": [error(found[key], truth[key]) for key in ["canal_ap_mm"] if not math.isnan(truth[key])],
            "foramen_width_mm": [error(found[key], truth[key]) for key in FORAMEN_KEYS if not math.isnan(truth[key])],
            "field_of_view_mm": float(max(np.multiply(case.grid.shape, case.grid.pixel_size_mm)))}


def seen_from_darkest_level(records: list[dict]) -> dict:
    """The slices measure sees from their darkest level up (from_darkest_level): how many, their fields of view, and
    their canal AP within 1 mm and foramen widths within 2 mm as evaluated here (the networks given the slice as it
    is) and from that level up."""
    seen = [r for r in records if "seen_from_darkest_level" in r]
    views = [r["seen_from_darkest_level"]["field_of_view_mm"] for r in seen]
    return {"n": len(seen), "of": len(records), "field_of_view_mm": (min(views), max(views)) if views else None,
            **{f"{key}_within_{mm}mm": {
                "as_is": shares_within([e for r in seen for e in r["errors"][key]], (mm,))[str(mm)],
                "from_darkest_level": shares_within([e for r in seen for e in r["seen_from_darkest_level"][key]],
                                                    (mm,))[str(mm)]}
               for key, mm in (("canal_ap_mm", 1), ("foramen_width_mm", 2))}}


def gross_failure_kind(record: dict) -> str:
    """What a canal found with a Dice below 0.8 is: nothing, elsewhere (Dice under 0.1), over-drawn (its area over
    1.3 times the truth's), a part of the sac (under 0.7 times), or misplaced (about the size, partly off)."""
    area_rel = record.get("canal_area_rel")
    if area_rel is None:
        return "nothing"
    if record["dice"]["canal"] < 0.1:
        return "elsewhere"
    return "over-drawn" if area_rel > 0.3 else "a part" if area_rel < -0.3 else "misplaced"


def _canal_ap_without_gross_failures(records: list[dict]) -> dict:
    """On the slices whose canal Dice is 0.8 or more (its edges, not a wrong find): the share of canal APs within 1 mm,
    and how many are over- and underestimated by more than 1 mm."""
    signed = np.array([r["canal_ap_signed_mm"] for r in records if r["dice"]["canal"] >= 0.8])
    return {"n": len(signed), "within_1mm": float((np.abs(signed) <= 1).mean()) if len(signed) else math.nan,
            "over_1mm": int((signed > 1).sum()), "under_1mm": int((signed < -1).sum())}


def summarise(records: list[dict]) -> dict:
    errors = {key: np.array([e for r in records for e in r["errors"][key]]) for key in ERROR_KEYS}
    absent = [a for r in records for a in r["absent"]]
    found = [f for r in records for f in r["present_found"]]
    canal_dice = np.array([r["dice"]["canal"] for r in records if not math.isnan(r["dice"]["canal"])])
    without_canal = [r["canal_reported_without_one"] for r in records if "canal_reported_without_one" in r]
    return {"cases": len(records),
            "dice": {name: float(np.nanmean([r["dice"][name] for r in records])) for name in CLASSES.values()},
            "canal_dice_median": float(np.median(canal_dice)),
            "canal_dice_below_0_8": int((canal_dice < 0.8).sum()),
            "canal_dice_without_those": float(canal_dice[canal_dice >= 0.8].mean()),
            "canal_ap_without_gross_failures": _canal_ap_without_gross_failures(records),
            "gross_failures_by_kind": dict(Counter(gross_failure_kind(r) for r in records
                                                   if r["dice"]["canal"] < 0.8).most_common()),
            "over_drawn_true_sac_under_100mm2": sum(gross_failure_kind(r) == "over-drawn"
                                                    and r["measurements"]["canal_area_mm2"]["truth"] < 100
                                                    for r in records if r["dice"]["canal"] < 0.8),
            "true_masks_on_crop_canal_dice": float(np.nanmean([r.get("true_masks_on_crop_canal_dice", math.nan)
                                                               for r in records])),
            "within_mm": {key: shares_within(values, (1, 2, 3))
                          for key, values in errors.items()},
            "median_error_mm": {key: float(np.median(values)) for key, values in errors.items()},
            "counts": {key: len(values) for key, values in errors.items()},
            "canal_area_median_relative_error": float(np.median([abs(r["canal_area_rel"]) for r in records
                                                                 if "canal_area_rel" in r])),
            "canal_bias": {"ap_median_mm": float(np.nanmedian([r["canal_ap_signed_mm"] for r in records
                                                                if "canal_ap_signed_mm" in r])),
                           "area_median_relative": float(np.median([r["canal_area_rel"] for r in records
                                                                    if "canal_area_rel" in r]))},
            "true_masks_on_crop": {key: within_of([e for r in records if "true_masks_on_crop" in r
                                                   for e in r["true_masks_on_crop"][key]])
                                   for key in ("canal_ap_mm", "foramen_width_mm")},
            "foramen_absent_reported_absent": float(np.mean(absent)) if absent else float("nan"),
            "foramen_present_reported_present": float(np.mean(found)) if found else float("nan"),
            "canal_missed": int(np.isinf(errors["canal_ap_mm"]).sum()),
            "slices_without_canal": len(without_canal),
            "canal_reported_without_one": int(sum(without_canal)),
            "absent_count": len(absent),
            "grades": grade_agreement([r["grades"] for r in records])}


def graded(truth: dict[str, float], found: dict[str, float], region: str) -> dict[str, dict[str, str]]:
    """Each grade of grading.grade for the true and the found measurements of one slice."""
    true_grades, found_grades = grade(truth, region), grade(found, region)
    return {key: {"truth": true_grades[key], "found": found_grades[key]} for key in true_grades}


def level_graded(truth: list[dict], measurements: list, region: str, doubted: bool = False
                 ) -> list[dict[str, dict[str, str]]]:
    """Per level of a stack, as graded() for a slice: the grade of each worst finding of the level's slices
    (findings.worst_findings_by_level, the slices named by their true level; with doubted, of its smaller value to
    check where it has one, Finding.smaller_to_check, not one not found) and the grade of the smallest true value
    among the same slices, as a report states each level."""
    _name_true_levels(truth, measurements)
    level_grades = []
    for level, findings in worst_findings_by_level(measurements, region).items():
        smallest = {name: min((t[name] for t in truth if t["level"] == level), key=lambda v: (math.isnan(v), v))
                    for name in MEASUREMENT_COLUMNS}
        found = {name: f.smaller_to_check.value if doubted and f.smaller_to_check
                 and not math.isnan(f.smaller_to_check.value) else f.value for name, f in findings.items()}
        found_grades = grade({name: found.get(name, math.nan) for name in MEASUREMENT_COLUMNS}, region)
        level_grades.append({key: {"truth": value, "found": found_grades[key]}
                             for key, value in grade(smallest, region).items()})
    return level_grades


def unfound_level_foramina(truth: list[dict], measurements: list, region: str) -> list[tuple[bool, bool]]:
    """Per foramen of a level of a stack that its line names "not found" (found on none of the level's slices, the
    other side's found, or neither side's: findings.Finding with no value, findings.foramina_not_found; the slices
    named by their true level): whether the truth has that foramen on any of the level's slices (a miss), not only
    obliterated or none, and whether the other side's was not found either."""
    _name_true_levels(truth, measurements)
    return [(any(not math.isnan(t[name]) for t in truth if t["level"] == level),
             all(side in findings and not findings[side].found for side in FORAMEN_KEYS))
            for level, findings in worst_findings_by_level(measurements, region).items()
            for name in FORAMEN_KEYS if name in findings and not findings[name].found]


def _name_true_levels(truth: list[dict], measurements: list) -> None:
    """Name each measured slice by its true level (SliceMeasurement.level)."""
    for m, slice_truth in zip(measurements, truth):
        m.level = slice_truth["level"]


def grade_agreement(slice_grades: list[dict[str, dict[str, str]]]) -> dict:
    """For each graded measurement, over the structures that exist (slice_grades: graded() of each slice): the share
    found with the true grade, and how the others were graded ("normal -> relative stenosis"; "missed" where the
    structure was not found)."""
    agreement = {}
    for name, keys in GRADED:
        pairs = [(g["truth"], g["found"] or "missed") for grades in slice_grades for g in (grades[k] for k in keys)
                 if g["truth"]]
        wrong = Counter(f"{truth} -> {found}" for truth, found in pairs if truth != found)
        agreement[name] = {"n": len(pairs), "same": float(np.mean([t == f for t, f in pairs])) if pairs else math.nan,
                           "others": dict(wrong.most_common())}
    return agreement


def shares_within(errors, thresholds_mm: tuple[float, ...]) -> dict[str, float]:
    """The share of errors within each threshold, keyed by the threshold (NaN without any error)."""
    values = np.asarray(errors, float)
    return {str(t): float(np.mean(values <= t)) if len(values) else math.nan for t in thresholds_mm}


def within_of(errors: list[float]) -> dict:
    """How many errors, and the share within 0.5, 1 and 2 mm."""
    return {"n": len(errors), **shares_within(errors, (0.5, 1, 2))}


def canal_ap_within(errors: list[float]) -> dict:
    """How many canal AP errors, and the share within 1 and 2 mm (NaN without any)."""
    shares = shares_within(errors, (1, 2))
    return {"n": len(errors), "within_1mm": shares["1"], "within_2mm": shares["2"]}


def held_out_records(segmenter, count: int, noise_scale: float = 1.0, seed: int = HELD_OUT_SEED,
                     smear_mm: float = 0.0) -> list[dict]:
    """One record per held-out slice (see evaluate_case)."""
    return [evaluate_case(segmenter, n, noise_scale, seed, smear_mm) for n in range(count)]


def in_group(records: list[dict], group: str) -> list[dict]:
    return records if group == "all" else [r for r in records if r["contrast"] in T2_FAMILY]


def canal_ap_in_bands(records: list[dict], value: Callable[[dict], float], bands: tuple[float, ...]) -> dict:
    """canal_ap_within of the records whose value(record) lies in each band ("low-high": low <= value < high)."""
    return {f"{low}-{high}": canal_ap_within([e for r in records if low <= value(r) < high
                                              for e in r["errors"]["canal_ap_mm"]])
            for low, high in zip(bands, bands[1:])}


def foramen_by_contrast(records: list[dict]) -> dict:
    """Per contrast: how many true foramina, the share measured within 2 mm, and how many were missed."""
    result = {}
    for contrast in sorted({r["contrast"] for r in records}):
        errors = [e for r in records if r["contrast"] == contrast for e in r["errors"]["foramen_width_mm"]]
        result[contrast] = {"n": len(errors), "within_2mm": shares_within(errors, (2,))["2"],
                            "missed": sum(math.isinf(e) for e in errors)}
    return result


def unmatched_truth(case: SyntheticSlice, side: str, true_width_mm: float) -> str:
    """What the truth holds on a side of a slice, as where a foramen was not found while the other side's was
    (measurement.unmatched_foramen): a foramen (there "missed"); one "obliterated" (the generator's fused foramen, no
    gap left); "none at this level" (a pedicle slice, a cervical mid-body slice); or "not in view"."""
    channel = case.scene.anatomy.channels.get(side)
    if not math.isnan(true_width_mm):
        return "missed"
    if channel is None:
        return "none at this level"
    return "obliterated" if channel.narrowest_half_width <= 0 else "not in view"


def checks(records: list[dict], below: float = CHECK_BELOW) -> dict:
    """The slices whose canal is to check (confidence below ``below``, a faint outline, off the spine's axis, not one
    round outline, or cut by the edge of the image): how many, their canal AP within 1 mm and the others', and how
    many of the gross failures (canal Dice below 0.8) they hold. The reported foramina to check: how many, the share
    within 2 mm of those and of the others, and of the foramina reported where there is none, how many are to
    check. The foramina not found where the other side's was, to check, by what the truth holds there
    (unmatched_truth); and the obliterated foramina: how many, reported absent (and of those, to check), reported
    with a width (and of those, under the cut-off: graded stenosis)."""
    canal_doubted = [structure_to_check("canal", r["confidences"], r["canal_edge_to_noise"], below,
                                        frozenset(r["cut_by_field_of_view"]), r["canal_off_axis_mm"],
                                        r["canal_area_to_chords"]) for r in records]
    flagged = [r for r, check in zip(records, canal_doubted) if check]
    others = [r for r, check in zip(records, canal_doubted) if not check]

    def within_1mm(group: list[dict]) -> float:
        return canal_ap_within([e for r in group for e in r["errors"]["canal_ap_mm"]])["within_1mm"]

    gross_failures_doubted = [check for r, check in zip(records, canal_doubted) if r["dice"]["canal"] < 0.8]
    foramina = [f for r in records for f in r["reported_foramina"]]
    flags = [doubted(confidence, below) or cut for confidence, _, _, cut in foramina]
    to_check = [within for (_, _, within, _), flagged_foramen in zip(foramina, flags) if flagged_foramen]
    trusted = [within for (_, _, within, _), flagged_foramen in zip(foramina, flags) if not flagged_foramen]
    where_none = [flagged_foramen for (_, exists, _, _), flagged_foramen in zip(foramina, flags) if not exists]
    return {"below": below, "n": len(records), "flagged": len(flagged),
            "flagged_canal_ap_within_1mm": within_1mm(flagged), "others_canal_ap_within_1mm": within_1mm(others),
            "gross_failures": len(gross_failures_doubted),
            "gross_failures_flagged": sum(gross_failures_doubted),
            "foramina_reported": len(foramina), "foramina_flagged": len(to_check),
            "flagged_foramina_within_2mm": float(np.mean(to_check)) if to_check else math.nan,
            "other_foramina_within_2mm": float(np.mean(trusted)) if trusted else math.nan,
            "foramina_reported_where_none": len(where_none), "foramina_reported_where_none_flagged": sum(where_none),
            "unmatched_foramina": dict(Counter(u for r in records for u in r.get("unmatched_foramina", []))),
            "obliterated_foramina": obliterated_foramina(records)}


def obliterated_foramina(records: list[dict]) -> dict:
    """How the obliterated foramina (unmatched_truth) were reported: absent, absent and to check, with a width, with a
    width under the cut-off (graded stenosis)."""
    found = [(width, flagged) for r in records for width, flagged in r.get("obliterated_foramina", [])]
    absent = [flagged for width, flagged in found if math.isnan(width)]
    widths = [width for width, _ in found if not math.isnan(width)]
    return {"n": len(found), "absent": len(absent), "absent_to_check": sum(absent), "with_width": len(widths),
            "graded_stenosis": sum(width < FORAMEN_CUTOFF_MM for width in widths)}


def targets(records: list[dict]) -> dict:
    """Each of issue 5's targets on these slices: its value, whether it is met, and a 95 % bootstrap interval over
    slices (resampling slices, so a slice's two foramina stay together): how far the luck of which slices were drawn
    moves it."""
    rng = np.random.default_rng(0)
    resampled = rng.integers(0, len(records), (BOOTSTRAP_RESAMPLES, len(records)))
    result = {}
    for name, part, least in TARGETS:
        sums, counts = np.array([part(r) for r in records], float).T
        value = sums.sum() / counts.sum()
        low, high = np.percentile(sums[resampled].sum(axis=1) / counts[resampled].sum(axis=1), [2.5, 97.5])
        result[name] = {"value": float(value), "least": least, "met": bool(value >= least),
                        "interval_95": [float(low), float(high)]}
    return result


def evaluate(records: list[dict], seed: int = HELD_OUT_SEED, check_below: tuple[float, ...] = (CHECK_BELOW,)) -> dict:
    groups = {name: in_group(records, name) for name in GROUPS}
    canal_ap = {key: canal_ap_within([e for r in records if key in (r["contrast"], r["region"])
                                      for e in r["errors"]["canal_ap_mm"]])
                for key in sorted({r["contrast"] for r in records}) + ["lumbar", "cervical"]}
    by_fat = canal_ap_in_bands(groups["T2 family"], lambda r: r["fat_to_csf"], FAT_TO_CSF_BANDS)
    by_pixel = {f"{name}, {band} mm": within for name, group in groups.items()
                for band, within in canal_ap_in_bands(group, lambda r: r["pixel_mm"], PIXEL_MM_BANDS).items()}
    off_signed = [r["canal_ap_signed_mm"] for r in records
                  if "canal_ap_signed_mm" in r and abs(r["canal_ap_signed_mm"]) > 1]
    return {"cases": len(records), "seed": seed, **{name: summarise(group) for name, group in groups.items()},
            "targets": {name: targets(group) for name, group in groups.items()},
            "checks": [{name: checks(group, below) for name, group in groups.items()} for below in check_below],
            "cut_by_field_of_view": {name: sum(name in r["cut_by_field_of_view"] for r in records)
                                     for name in STRUCTURES},
            "canal_ap_by_contrast_and_region": canal_ap, "foramen_by_contrast": foramen_by_contrast(records),
            "t2_family_canal_ap_by_fat_to_csf": by_fat,
            "canal_ap_by_native_pixel_mm": by_pixel,
            "canal_ap_by_true_ap_mm": canal_ap_in_bands(records, lambda r: r["measurements"]["canal_ap_mm"]["truth"],
                                                        TRUE_CANAL_AP_BANDS),
            "canal_ap_by_true_area_mm2": canal_ap_in_bands(
                records, lambda r: r["measurements"]["canal_area_mm2"]["truth"], TRUE_CANAL_AREA_BANDS),
            "canal_ap_found_off_by_over_1mm": {"n": len(off_signed), "overestimated": sum(e > 0 for e in off_signed)},
            "seen_from_darkest_level": seen_from_darkest_level(records)}


def exact_mcnemar_p(better: int, worse: int) -> float:
    """Two-sided exact McNemar p-value (a sign test on the pairs whose outcome changed): how likely a split at least
    this uneven is if the two models were equally good."""
    changed = better + worse
    tail = sum(math.comb(changed, k) for k in range(min(better, worse) + 1)) / 2 ** changed
    return min(1.0, 2 * tail)


def paired_outcome(shipped: list, candidate: list, margin: float = 0.0) -> dict:
    """Two models' values of one outcome on the same items (bools, or scores compared with margin): each model's
    mean, on how many items the candidate is better and worse, and the exact McNemar p-value of that split."""
    better = sum(c > s + margin for s, c in zip(shipped, candidate))
    worse = sum(c < s - margin for s, c in zip(shipped, candidate))
    return {"shipped": float(np.mean(shipped)), "candidate": float(np.mean(candidate)),
            "better": better, "worse": worse, "p": exact_mcnemar_p(better, worse)}


def paired_comparison(records: list[dict], candidate_records: list[dict]) -> dict:
    """paired_outcome of each PAIRED_OUTCOMES and of canal Dice (better or worse by more than DICE_CHANGE) on the same
    slices, for all contrasts and the T2 family."""
    comparison = {}
    for group in GROUPS:
        pairs = list(zip(in_group(records, group), in_group(candidate_records, group)))
        for name, outcomes in PAIRED_OUTCOMES:
            comparison[f"{name}, {group}"] = paired_outcome([o for r, _ in pairs for o in outcomes(r)],
                                                            [o for _, r in pairs for o in outcomes(r)])
        dice_pairs = [(r["dice"]["canal"], c["dice"]["canal"]) for r, c in pairs
                      if not math.isnan(r["dice"]["canal"]) and not math.isnan(c["dice"]["canal"])]
        comparison[f"canal Dice, {group}"] = paired_outcome([s for s, _ in dice_pairs], [c for _, c in dice_pairs],
                                                            margin=DICE_CHANGE)
    return comparison


def print_comparison(comparison: dict, shipped: str, candidate: str) -> None:
    print(f"\n== Paired comparison on the same slices: {shipped} against the candidate {candidate}")
    print(f"{'outcome, slices':<48}{'shipped':>9}{'candidate':>11}{'better':>8}{'worse':>7}{'exact p':>9}")
    for name, c in comparison.items():
        value = (lambda v: f"{v:.3f}") if name.startswith("canal Dice") else (lambda v: f"{v:.1%}")
        print(f"{name:<48}{value(c['shipped']):>9}{value(c['candidate']):>11}{c['better']:>8}{c['worse']:>7}"
              f"{c['p']:>9.3f}")


def evaluate_stacks(segmenter, count: int, region: str = "lumbar") -> dict:
    """Canal AP errors on multi-level stacks of a region, with the stack step and slice by slice (see
    evaluate_real)."""
    from evaluate_real import SliceBySlice

    errors, changed, grades = {"stack step": [], "slice by slice": []}, 0, []
    level_grades, doubted_level_grades, unfound_foramina = [], [], []
    blur_mm, warned, darkest, shown = [], 0, [], []
    for n in range(count):
        image, _, geometry, truth = synthetic_stack(STACK_SEED + n, region)
        volume = axial_from_array(image, geometry)
        darkest.append(darkest_share(checked_pixels(volume.read_slice, volume.n_slices)))
        runs = {"stack step": measure_with_segmenter(volume, segmenter),
                "slice by slice": measure_with_segmenter(volume, SliceBySlice(segmenter))}
        for name, run in runs.items():
            errors[name] += [error(m.values["canal_ap_mm"], t["canal_ap_mm"]) for m, t in zip(run.measurements, truth)]
        grades += [graded(t, m.values, region) for m, t in zip(runs["stack step"].measurements, truth)]
        level_grades += level_graded(truth, runs["stack step"].measurements, region)
        doubted_level_grades += level_graded(truth, runs["stack step"].measurements, region, doubted=True)
        unfound_foramina += unfound_level_foramina(truth, runs["stack step"].measurements, region)
        with_step, alone = (run.stack_labels == 1 for run in runs.values())
        changed += int((with_step != alone).any(axis=(1, 2)).sum())
        blur_mm.append(float(np.nanmedian(front_to_back_blur_mm(with_step, volume.layout))))
        warned += bool(thick_slice_warnings(with_step, volume.layout))
        shown.append(runs["stack step"].shown_region)
    return {"stacks": count, "region": region, "seed": STACK_SEED, "slices": len(errors["stack step"]),
            "slices_changed": changed, "largest_blur_mm": max(blur_mm), "thick_slice_warnings": warned,
            "largest_darkest_share": max(darkest), "raised_floors": sum(d >= RAISED_FLOOR_SHARE for d in darkest),
            "shown_region": {evidence: sum(s is not None and s.evidence == evidence for s in shown)
                             for evidence in (NECK, CORD)},
            **{name: shares_within(values, (1, 2, 3)) for name, values in errors.items()},
            "grades": grade_agreement(grades), "level_grades": grade_agreement(level_grades),
            "doubted_level_grades": grade_agreement(doubted_level_grades),
            "unfound_level_foramina": {"n": len(unfound_foramina), "present": sum(p for p, _ in unfound_foramina),
                                       "neither_side": sum(n for _, n in unfound_foramina),
                                       "neither_side_present": sum(p and n for p, n in unfound_foramina)}}


def print_stacks(stacks: dict) -> None:
    print(f"\nMulti-level {stacks['region']} T2 stacks: {stacks['stacks']} stacks, {stacks['slices']} slices "
          f"(seed {stacks['seed']}); "
          f"canal AP within 1 / 2 / 3 mm: " + "; ".join(
              f"{name} {v['1']:.1%} / {v['2']:.1%} / {v['3']:.1%}" for name, v in stacks.items()
              if name in ("stack step", "slice by slice"))
          + f"; slices whose canal the stack step changes: {stacks['slices_changed']}")
    print("stacks, graded as the truth (stack step): " + _grade_line(stacks["grades"]))
    print("stacks, each level's worst finding (its slices named by level) graded as the truth's worst: "
          + _grade_line(stacks["level_grades"]))
    print("the same, a level's smaller value to check taken where it has one (what ', or ... to check' names): "
          + _grade_line(stacks["doubted_level_grades"]))
    unfound = stacks["unfound_level_foramina"]
    print(f"level foramina found on none of the level's slices ('not found ... to check'): {unfound['n']}, a true "
          f"foramen on one of the level's slices: {unfound['present']}; of them where neither side's was found: "
          f"{unfound['neither_side']}, a true foramen: {unfound['neither_side_present']}")
    print(f"stacks, front-to-back blur of their untilted slices (centreline.front_to_back_blur_mm, median per stack): "
          f"at most {stacks['largest_blur_mm']:.2f} mm; thick-slice warnings on {stacks['thick_slice_warnings']} of "
          f"{stacks['stacks']}")
    print(f"stacks, darkest level over bright level (visibility.darkest_share): at most "
          f"{stacks['largest_darkest_share']:.1%}; seen from the darkest level up as an image with an offset added "
          f"(from {RAISED_FLOOR_SHARE:.0%}): {stacks['raised_floors']} of {stacks['stacks']}")
    shown = stacks["shown_region"]
    print(f"stacks graded cervical without --region, by what the image shows (body_region): {sum(shown.values())} "
          f"of {stacks['stacks']}, " + ", ".join(f"{count} by {evidence}" for evidence, count in shown.items()))


def print_table(summary: dict) -> None:
    imaged = f", noise level x {summary['noise_scale']}" if summary["noise_scale"] != 1.0 else ""
    imaged += f", smeared {summary['smear_mm']:g} mm front to back" if summary["smear_mm"] else ""
    kind = "validation" if summary["seed"] == VALIDATION_SEED else "held-out"
    print(f"Synthetic {kind} set: {summary['cases']} slices (seed {summary['seed']}, 1 in 4 cervical{imaged})")
    for name in GROUPS:
        s = summary[name]
        print(f"\n== {name} ({s['cases']} slices)")
        print("Dice (native grid)     " + "  ".join(f"{k}: {v:.3f}" for k, v in s["dice"].items()))
        print(f"canal Dice median {s['canal_dice_median']:.3f}; below 0.8 (a gross failure: the wrong structure, "
              f"a part of the sac, nothing) on {s['canal_dice_below_0_8']} slices, mean of the others "
              f"{s['canal_dice_without_those']:.3f}; the true masks on network 2's crops, mapped to the native grid "
              f"the same way: {s['true_masks_on_crop_canal_dice']:.3f}")
        edges = s["canal_ap_without_gross_failures"]
        print(f"on the {edges['n']} slices that are not gross failures, canal AP within 1 mm on "
              f"{edges['within_1mm']:.1%}; off by more than 1 mm: {edges['over_1mm']} too long, "
              f"{edges['under_1mm']} too short")
        print("gross failures by kind (over-drawn: area over 1.3 times the truth's; a part: under 0.7 times; "
              "elsewhere: Dice under 0.1; misplaced: about the size, partly off): "
              + (", ".join(f"{kind} {n}" for kind, n in s["gross_failures_by_kind"].items()) or "none")
              + f"; of the over-drawn, {s['over_drawn_true_sac_under_100mm2']} on true sacs under 100 mm²")
        print(f"{'measurement':<24}{'<=1 mm':>9}{'<=2 mm':>9}{'<=3 mm':>9}{'median':>9}{'n':>6}")
        for key, cdf in s["within_mm"].items():
            print(f"{key:<24}{cdf['1']:>9.1%}{cdf['2']:>9.1%}{cdf['3']:>9.1%}"
                  f"{s['median_error_mm'][key]:>8.2f}m{s['counts'][key]:>6}")
        print(f"canal area median relative error: {s['canal_area_median_relative_error']:.1%}; absent foramina "
              f"reported absent: {s['foramen_absent_reported_absent']:.1%} (of {s['absent_count']}); present "
              f"reported present: {s['foramen_present_reported_present']:.1%}; canal missed on "
              f"{s['canal_missed']} of {s['counts']['canal_ap_mm']} slices, reported on "
              f"{s['canal_reported_without_one']} of the {s['slices_without_canal']} without one")
        print(f"canal bias (prediction - truth, median): AP {s['canal_bias']['ap_median_mm']:+.2f} mm, area "
              f"{s['canal_bias']['area_median_relative']:+.1%}")
        print("graded as the truth (where the structure exists): " + _grade_line(s["grades"]))
        print("true area-fraction masks on network 2's crops, measured the same way: " + "; ".join(
            f"{key} (n={v['n']}) within 0.5 / 1 / 2 mm {v['0.5']:.1%} / {v['1']:.1%} / {v['2']:.1%}"
            for key, v in s["true_masks_on_crop"].items()))
    print("\nissue targets, all / T2 family, each with its 95 % bootstrap interval over slices: " + "; ".join(
        f"{name} >= {least:.2f}: " + " / ".join(
            f"{t['value']:.3f} [{t['interval_95'][0]:.3f}-{t['interval_95'][1]:.3f}] "
            f"({'met' if t['met'] else 'not met'})" for t in (summary["targets"][group][name] for group in GROUPS))
        for name, _, least in TARGETS))
    print("canal AP by contrast / region: " + _canal_ap_line(summary["canal_ap_by_contrast_and_region"]))
    print("foramen width by contrast: " + "; ".join(
        f"{name} (n={v['n']}) <=2 mm {v['within_2mm']:.0%}, missed {v['missed']}"
        for name, v in summary["foramen_by_contrast"].items()))
    print("T2-family canal AP by epidural fat / CSF brightness: "
          + _canal_ap_line(summary["t2_family_canal_ap_by_fat_to_csf"]))
    print("canal AP by the native pixel size: " + _canal_ap_line(summary["canal_ap_by_native_pixel_mm"]))
    off = summary["canal_ap_found_off_by_over_1mm"]
    print("canal AP by the true AP (mm): " + _canal_ap_line(summary["canal_ap_by_true_ap_mm"])
          + f"; of the {off['n']} canals found but off by more than 1 mm, {off['overestimated']} overestimate")
    print("canal AP by the true dural-sac area (mm²): " + _canal_ap_line(summary["canal_ap_by_true_area_mm2"]))
    print("structures the edge of the slice, its padding or network 2's crop cuts (to check): " + ", ".join(
        f"{STRUCTURE_WORDS[name]} on {slices} slices" for name, slices in summary["cut_by_field_of_view"].items()))
    seen = summary["seen_from_darkest_level"]
    print(f"slices whose darkest level is {RAISED_FLOOR_SHARE:.0%} of their bright level or more, which measure sees "
          f"from that level up (visibility.intensity_floor): {seen['n']} of {seen['of']}" + (
              f" (fields of view {seen['field_of_view_mm'][0]:.0f}-{seen['field_of_view_mm'][1]:.0f} mm); canal AP "
              f"within 1 mm on them {seen['canal_ap_mm_within_1mm']['as_is']:.1%} as evaluated here, "
              f"{seen['canal_ap_mm_within_1mm']['from_darkest_level']:.1%} from that level up; foramen width within "
              f"2 mm {seen['foramen_width_mm_within_2mm']['as_is']:.1%} and "
              f"{seen['foramen_width_mm_within_2mm']['from_darkest_level']:.1%}" if seen["n"] else ""))
    for cutoff in summary["checks"]:
        print(f"check (confidence below {next(iter(cutoff.values()))['below']:.2f}; for the canal also an outline "
              f"under {MIN_CANAL_EDGE_TO_NOISE} times as clear as noise, {OFF_AXIS_MM:.0f} mm or more off the "
              f"spine's axis, or an area {MAX_AREA_TO_CHORDS} times the ellipse of its chords or more; what the edge "
              "of the image cuts), all / T2 family: " + _check_line(cutoff))


def _check_line(checks_by_group: dict) -> str:
    return "; ".join(
        f"{name}: the canal on {c['flagged']} of {c['n']} slices, canal AP within 1 mm there "
        f"{c['flagged_canal_ap_within_1mm']:.0%} and on the others {c['others_canal_ap_within_1mm']:.0%}, "
        f"{c['gross_failures_flagged']} of the {c['gross_failures']} gross failures; {c['foramina_flagged']} of "
        f"{c['foramina_reported']} reported foramina, within 2 mm of a true one there "
        f"{c['flagged_foramina_within_2mm']:.0%} and of the others {c['other_foramina_within_2mm']:.0%}, "
        f"{c['foramina_reported_where_none_flagged']} of the {c['foramina_reported_where_none']} reported where there "
        f"is none; {sum(c['unmatched_foramina'].values())} foramina not found where the other side's is ("
        + (", ".join(f"{what} {n}" for what, n in sorted(c["unmatched_foramina"].items())) or "none") + "); "
        + _obliterated_text(c["obliterated_foramina"]) for name, c in checks_by_group.items())


def _obliterated_text(obliterated: dict) -> str:
    return (f"{obliterated['n']} obliterated foramina: {obliterated['absent']} reported absent, "
            f"{obliterated['absent_to_check']} of them to check; {obliterated['with_width']} reported with a width, "
            f"{obliterated['graded_stenosis']} of them under {FORAMEN_CUTOFF_MM:g} mm (graded stenosis)")


def _grade_line(agreement: dict) -> str:
    return "; ".join(f"{name} {v['same']:.1%} of {v['n']} ("
                     + (", ".join(f"{k} {c}" for k, c in v["others"].items()) or "none") + ")"
                     for name, v in agreement.items())


def _canal_ap_line(groups: dict) -> str:
    return "; ".join(f"{name} (n={v['n']}) <=1 mm {v['within_1mm']:.0%}, <=2 mm {v['within_2mm']:.0%}"
                     for name, v in groups.items())


def models_name(segmenter) -> str:
    """E.g. "1.8.0 (roi 1.3.0, roi_second 1.0.0, canal 1.6.0), bfloat16, mirror average: final"."""
    versions = ", ".join(f"{name} {entry['version']}" for name, entry in segmenter.provenance["models"].items())
    mirror = "+".join(segmenter.provenance["mirror_average"]) or "none"
    return (f"{segmenter.provenance['models_release']} ({versions}), {segmenter.provenance['precision']}, "
            f"mirror average: {mirror}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--stacks", type=int, default=0, help="also measure this many multi-level stacks")
    parser.add_argument("--stack-region", choices=REGIONS, default="lumbar", help="the stacks' region")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--compare", type=Path, metavar="MODELS_FOLDER",
                        help="also run the networks of this models folder (see package-models) on the same slices "
                             "and compare them slice by slice with the shipped ones")
    parser.add_argument("--check-below", type=lambda text: tuple(float(v) for v in text.split(",")),
                        default=(CHECK_BELOW,), metavar="CUTOFFS",
                        help="the check column's confidence cut-offs to print, comma-separated (default "
                             f"measurement.CHECK_BELOW, {CHECK_BELOW:g}): what another cut-off would flag")
    parser.add_argument("--validation", action="store_true",
                        help="the validation slices (training.VALIDATION_SEED) instead of the held-out set")
    add_noise_scale_option(parser)
    parser.add_argument("--smear-mm", type=float, default=0.0,
                        help="the same held-out slices as thick slices through a tilted spine: each structure "
                             "smeared over this many mm front to back (e.g. 4)")
    add_network_options(parser)
    args = parser.parse_args()
    seed = VALIDATION_SEED if args.validation else HELD_OUT_SEED
    segmenter = load_segmenter(threads=2, **network_options(args))
    records = held_out_records(segmenter, args.count, args.noise_scale, seed, args.smear_mm)
    summary = {}
    if records:  # --count 0: the stacks only
        summary = {**evaluate(records, seed, args.check_below), "noise_scale": args.noise_scale,
                   "smear_mm": args.smear_mm}
        print_table(summary)
    if args.compare and records:
        candidate = load_segmenter(threads=2, folder=args.compare, **network_options(args, candidate=True))
        candidate_records = held_out_records(candidate, args.count, args.noise_scale, seed, args.smear_mm)
        summary["compare"] = {"models": str(args.compare),
                              "candidate": evaluate(candidate_records, seed, args.check_below),
                              "paired": paired_comparison(records, candidate_records)}
        print_comparison(summary["compare"]["paired"], models_name(segmenter), models_name(candidate))
    if args.stacks:
        summary["multi_level_stacks"] = evaluate_stacks(segmenter, args.stacks, args.stack_region)
        print_stacks(summary["multi_level_stacks"])
    if args.json:
        args.json.write_text(json.dumps({**summary, "slices": records}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
