"""How the networks measure a user's own labelled images (``spinal-stenosis evaluate``): a site's check before use,
or a fine-tune's against the shipped networks. Each slice whose labels have a canal is measured twice, by the
networks and from its labels (as ``measure --masks`` measures a drawn mask, on the native grid, so a label's
one-pixel rim is part of the errors), and compared: Dice per structure on the native grid, the errors of the graded
measurements and whether their grades agree, and whether the check column flags the canals that are off."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .grading import grade
from .inference import LABEL_OF
from .measurement import STRUCTURES
from .outputs import csv_cell
from .pipeline import Segmenter, measure_with_labels, measure_with_segmenter
from .real_data import LabelledCase

COMPARED = ("canal_ap_mm", "canal_area_mm2", "left_foramen_width_mm", "right_foramen_width_mm")
FORAMEN_WIDTHS = {"left_foramen": "left_foramen_width_mm", "right_foramen": "right_foramen_width_mm"}
GRADES = ("canal_ap_grade", "canal_area_grade")
WITHIN_MM = (1.0, 2.0, 3.0)
GROSS_FAILURE_DICE = 0.8
COMPARISON_COLUMNS = ("case", "slice_index", *(f"{name}_dice" for name in STRUCTURES),
                      *(f"{name}_{source}" for name in COMPARED for source in ("labels", "found")),
                      *(f"{name}_{source}" for name in GRADES for source in ("labels", "found")), "canal_to_check")


@dataclass(frozen=True)
class SliceComparison:
    case: str
    slice_index: int
    has_foramina: bool  # whether the labels have foramina (else only the canal is compared)
    dice: dict[str, float]  # structure → Dice on the native grid; NaN where the labels do not have it
    labelled: dict[str, float]  # COMPARED measured on the labels
    found: dict[str, float]  # the same measured on the networks' segmentation
    labelled_grades: dict[str, str]
    found_grades: dict[str, str]
    canal_to_check: bool  # whether the check column names the canal the networks found


def dice(found: np.ndarray, reference: np.ndarray) -> float:
    """NaN where the reference has no such structure: one found there is counted apart (a foramen reported where
    none is), not as a Dice of 0 that would mix detection into the overlap."""
    return float(2 * (found & reference).sum() / (found.sum() + reference.sum())) if reference.any() else math.nan


def error(found: float, reference: float) -> float:
    """Absolute error; a structure that was not found counts as an infinite error."""
    return abs(found - reference) if not math.isnan(found) else math.inf


def compare_case(case: LabelledCase, segmenter: Segmenter, region: str) -> list[SliceComparison]:
    """The networks against the labels, on each slice of the case whose labels have a canal."""
    found_run = measure_with_segmenter(case.volume, segmenter)
    labelled_run = measure_with_labels(case.volume, case.volume.to_source_grid(case.labels))
    structures = STRUCTURES if case.has_foramina else ("canal",)
    comparisons = []
    for s in range(case.volume.n_slices):
        if not (case.labels[s] == LABEL_OF["canal"]).any():
            continue
        labelled, found = labelled_run.measurements[s].values, found_run.measurements[s].values
        labelled_grades, found_grades = grade(labelled, region), grade(found, region)
        comparisons.append(SliceComparison(
            case.name, s, case.has_foramina,
            {name: dice(found_run.stack_labels[s] == LABEL_OF[name], case.labels[s] == LABEL_OF[name])
             if name in structures else math.nan for name in STRUCTURES},
            {name: labelled[name] for name in COMPARED}, {name: found[name] for name in COMPARED},
            {name: labelled_grades[name] for name in GRADES}, {name: found_grades[name] for name in GRADES},
            found_run.measurements[s].is_to_check("canal")))
    return comparisons


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "n/a"


def _within(errors: list[float]) -> str:
    """E.g. "within 1 / 2 / 3 mm: 80.0 / 95.0 / 100.0 %"."""
    shares = " / ".join(f"{100.0 * sum(e <= mm for e in errors) / len(errors):.1f}" for mm in WITHIN_MM)
    return f"within {' / '.join(f'{mm:g}' for mm in WITHIN_MM)} mm: {shares} %"


def summary_lines(comparisons: list[SliceComparison]) -> list[str]:
    """The comparison summed up, a line per measure."""
    if not comparisons:
        return ["no slice with a labelled canal"]
    cases = len({c.case for c in comparisons})
    with_foramina = [c for c in comparisons if c.has_foramina]
    canal_dice = np.array([c.dice["canal"] for c in comparisons])
    ap_errors = [error(c.found["canal_ap_mm"], c.labelled["canal_ap_mm"]) for c in comparisons]
    ap_signed = [c.found["canal_ap_mm"] - c.labelled["canal_ap_mm"] for c in comparisons
                 if not math.isnan(c.found["canal_ap_mm"])]
    area_relative = [(c.found["canal_area_mm2"] - c.labelled["canal_area_mm2"]) / c.labelled["canal_area_mm2"]
                     for c in comparisons if not math.isnan(c.found["canal_area_mm2"])]
    lines = [f"{len(comparisons)} slices with a labelled canal in {cases} labelled image{'s' if cases > 1 else ''} "
             f"({len(with_foramina)} with labelled foramina)",
             f"canal Dice: mean {canal_dice.mean():.3f}, median {np.median(canal_dice):.3f}; below "
             f"{GROSS_FAILURE_DICE} on {int((canal_dice < GROSS_FAILURE_DICE).sum())} slices",
             f"canal AP {_within(ap_errors)}; found - labels, median {np.median(ap_signed):+.2f} mm"
             if ap_signed else f"canal AP {_within(ap_errors)}",
             f"dural-sac area: found - labels, median {100 * np.median(area_relative):+.1f} %, median of the absolute "
             f"{100 * np.median(np.abs(area_relative)):.1f} %" if area_relative else "dural-sac area: never found"]
    for name, label in (("canal_ap_grade", "canal AP"), ("canal_area_grade", "dural-sac area")):
        agree = sum(c.found_grades[name] == c.labelled_grades[name] for c in comparisons)
        lines.append(f"{label} graded as its labels: {_percent(agree, len(comparisons))}")
    lines.append(_check_line(comparisons, ap_errors, canal_dice))
    lines.append(_foramina_line(with_foramina) if with_foramina else "foramina: none labelled, not compared")
    return lines


def _check_line(comparisons: list[SliceComparison], ap_errors: list[float], canal_dice: np.ndarray) -> str:
    """On how many slices the check column names the canal, the canal AP within 1 mm of the labels' there and on the
    others, and how many of the gross failures it names: whether a flag is worth a look on these images."""
    flagged = np.array([c.canal_to_check for c in comparisons])
    within = np.array([e <= 1.0 for e in ap_errors])
    gross = canal_dice < GROSS_FAILURE_DICE
    return (f"canal to check (the check column) on {int(flagged.sum())} of {len(comparisons)} slices: canal AP within "
            f"1 mm there {_percent(int(within[flagged].sum()), int(flagged.sum()))}, on the others "
            f"{_percent(int(within[~flagged].sum()), int((~flagged).sum()))}; {int((flagged & gross).sum())} of the "
            f"{int(gross.sum())} slices with canal Dice below {GROSS_FAILURE_DICE}")


def _foramina_line(comparisons: list[SliceComparison]) -> str:
    """Foramen Dice, width errors over the labelled foramina, and whether unlabelled ones are reported absent."""
    dices, errors, absent, reported_absent = [], [], 0, 0
    for c in comparisons:
        for structure, width in FORAMEN_WIDTHS.items():
            if math.isnan(c.dice[structure]):
                absent += 1
                reported_absent += math.isnan(c.found[width])
                continue
            dices.append(c.dice[structure])
            errors.append(error(c.found[width], c.labelled[width]))
    parts = [f"foramina: {len(dices)} labelled"]
    if dices:
        parts.append(f"Dice mean {np.mean(dices):.3f}; width {_within(errors)}")
    parts.append(f"of {absent} not labelled, reported absent {_percent(reported_absent, absent)}")
    return "; ".join(parts)


def write_comparisons_csv(path: Path, comparisons: list[SliceComparison]) -> None:
    """One row per compared slice (COMPARISON_COLUMNS; empty where a value is not measured)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COMPARISON_COLUMNS)
        writer.writeheader()
        for c in comparisons:
            row = {"case": c.case, "slice_index": c.slice_index}
            row.update({f"{name}_dice": c.dice[name] for name in STRUCTURES})
            for name in COMPARED:
                row.update({f"{name}_labels": c.labelled[name], f"{name}_found": c.found[name]})
            for name in GRADES:
                row.update({f"{name}_labels": c.labelled_grades[name], f"{name}_found": c.found_grades[name]})
            row["canal_to_check"] = c.canal_to_check
            # as measurements.csv writes its cells, but a value not measured left empty
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else csv_cell(k, v)
                             for k, v in row.items()})
