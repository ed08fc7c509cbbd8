"""The study's worst findings: for each graded measurement, the slice where it is smallest, among the slices whose
structure is not to check (among all of them when every one is: a doubted find, often a speck on a slice of noise,
is not what the study's worst should name while a sure one exists)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from .grading import grade, value_with_unit
from .level_names import names_a_disc
from .measurement import OTHER_FORAMEN, SliceMeasurement, unmatched_foramen
from .number_text import json_number


class GradedMeasurement(NamedTuple):
    structure: str  # whose check decides whether the value is trusted
    grade_column: str
    superlative: str  # "narrowest", "smallest"
    label: str  # what it is called, e.g. "canal AP"


GRADED_MEASUREMENTS = {
    "canal_ap_mm": GradedMeasurement("canal", "canal_ap_grade", "narrowest", "canal AP"),
    "canal_area_mm2": GradedMeasurement("canal", "canal_area_grade", "smallest", "dural-sac area"),
    "right_foramen_width_mm": GradedMeasurement("right_foramen", "right_foramen_grade", "narrowest",
                                                "right foramen"),
    "left_foramen_width_mm": GradedMeasurement("left_foramen", "left_foramen_grade", "narrowest", "left foramen"),
}


class DoubtedValue(NamedTuple):
    """A graded measurement's value on a slice where its structure is to check; NaN where it was not found there
    but is to check all the same (a foramen not found: foramina_not_found, most often obliterated), which counts as
    smaller than any value."""

    slice_index: int
    value: float
    block: str = ""  # the block of a DICOM series that holds the slice, if any

    @property
    def order(self) -> float:
        """Its place among smaller values: not found before any width."""
        return -math.inf if math.isnan(self.value) else self.value


@dataclass(frozen=True)
class Finding:
    """A measurement's smallest value in the study, on the slice that holds it; NaN, ungraded and to check where it
    was measured on no slice but is a foramen not found (the first slice foramina_not_found gives), which the study
    or level would otherwise leave unsaid."""

    slice_index: int
    z_mm: float
    value: float
    grade: str
    to_check: bool  # its structure is to check on that slice (every slice that has it is)
    level: str = ""  # the slice's vertebral level, if named (SliceMeasurement.level)
    block: str = ""  # the block of a DICOM series that holds the slice, if any (e.g. "block-2")
    image_number: str = ""  # the DICOM image the slice is, if any (SliceMeasurement.image_number)
    # a smaller value on a slice where the structure is to check, left out of the worst (a doubted find: often a
    # speck in noise, but also a narrowed sac the network was unsure of), if any
    smaller_to_check: DoubtedValue | None = None

    @property
    def found(self) -> bool:
        """Whether it has a value (not a foramen measured on no slice)."""
        return not math.isnan(self.value)


def smallest_trusted(values: Sequence[float], to_check: Sequence[bool]) -> int | None:
    """The position of the smallest measured (not NaN) value among those not to check; among all measured ones when
    every one is to check; None when none is measured."""
    measured = [n for n, value in enumerate(values) if not math.isnan(value)]
    trusted = [n for n in measured if not to_check[n]] or measured
    return min(trusted, key=lambda n: values[n]) if trusted else None


def levels_with_a_foramen(measurements: Sequence[SliceMeasurement]) -> set[str]:
    """The levels named on slices where a foramen (either side) was measured, or found and then typed absent in 3D
    Slicer's table (its confidence stays: the user's call)."""
    return {m.level for m in measurements
            if any(not math.isnan(m.values[f"{side}_width_mm"]) or not math.isnan(m.confidences[f"{side}_confidence"])
                   for side in OTHER_FORAMEN)}


def foramina_not_found(measurements: Sequence[SliceMeasurement], name: str,
                       levels_with_foramina: set[str]) -> list[SliceMeasurement]:
    """The slices where a foramen (measurement name) was not found but is to check: where network 2 found the other
    side's (measurement.unmatched_foramen), and the first slice of each level named at a disc
    (level_names.names_a_disc) on none of whose slices a foramen was found (not in levels_with_foramina: none
    measured, none typed absent, so network 2 found neither on any) where network 2 found the canal; not a foramen
    drawn or edited away (the slice's canal then has a confidence of 1), nor one typed absent in 3D Slicer's table,
    whose confidence stays. A disc level's slices cut both foramina: of 300 synthetic cervical levels
    (benchmarks/evaluate_synthetic.py --count 0 --stacks 100 --stack-region cervical), the 5 whose foramina were found
    on no slice had none, both obliterated."""
    structure = GRADED_MEASUREMENTS[name].structure
    if structure not in OTHER_FORAMEN:
        return []
    first_of_level: dict[str, int] = {}
    for n, m in enumerate(measurements):
        if m.level not in levels_with_foramina and names_a_disc(m.level) and m.confidences["canal_confidence"] < 1.0:
            first_of_level.setdefault(m.level, n)
    firsts = set(first_of_level.values())
    return [m for n, m in enumerate(measurements) if math.isnan(m.values[name])
            and (unmatched_foramen(structure, m.confidences) or n in firsts)]


def worst_findings(measurements: list[SliceMeasurement], region: str,
                   levels_with_foramina: set[str] | None = None) -> dict[str, Finding]:
    """Per graded measurement measured on any slice (in GRADED_MEASUREMENTS' order): its smallest_trusted value,
    graded with the region's cut-offs (grading.grade), and the smallest value of all where that is on a slice to
    check, or before it the first slice where a foramen was not found (DoubtedValue, foramina_not_found); among the
    slices whose value the cut-offs grade, where any does (not a thoracic or sacral canal). A foramen measured on no
    slice but so not found on one is a Finding with no value (NaN), to check, on the first such slice.
    levels_with_foramina: those of the whole series where measurements are one block of it (default: of these)."""
    if levels_with_foramina is None:
        levels_with_foramina = levels_with_a_foramen(measurements)
    findings, slice_grades = {}, [grade(m.values, region, m.level) for m in measurements]
    for name, graded in GRADED_MEASUREMENTS.items():
        grades = [g[graded.grade_column] for g in slice_grades]
        values = [m.values[name] if grades[n] or not any(grades) else math.nan for n, m in enumerate(measurements)]
        to_check = [m.is_to_check(graded.structure) for m in measurements]
        worst = smallest_trusted(values, to_check)
        unfound = foramina_not_found(measurements, name, levels_with_foramina)
        if worst is not None:
            m, smallest = measurements[worst], smallest_trusted(values, [False] * len(values))
            doubted = (DoubtedValue(measurements[smallest].slice_index, values[smallest])
                       if values[smallest] < values[worst] else None)
            doubted = DoubtedValue(unfound[0].slice_index, math.nan) if unfound else doubted
            findings[name] = Finding(m.slice_index, m.z_mm, values[worst], grades[worst], to_check[worst], m.level,
                                     image_number=m.image_number, smaller_to_check=doubted)
        elif unfound:
            m = unfound[0]
            findings[name] = Finding(m.slice_index, m.z_mm, math.nan, "", True, m.level, image_number=m.image_number)
    return findings


def worst_findings_of_blocks(blocks: Mapping[str, list[SliceMeasurement]], region: str) -> dict[str, Finding]:
    """The worst findings of a DICOM series measured in blocks (each block's measurements by its name): per
    graded measurement, the smallest_trusted of the blocks' worst findings, naming its block, with the smallest
    value to check in any block below it."""
    levels_with_foramina = levels_with_a_foramen([m for measurements in blocks.values() for m in measurements])
    per_block = {name: worst_findings(measurements, region, levels_with_foramina)
                 for name, measurements in blocks.items()}
    findings = {}
    for measurement in GRADED_MEASUREMENTS:
        found = [replace(f[measurement], block=name) for name, f in per_block.items() if measurement in f]
        if any(f.grade for f in found):  # as in worst_findings: the graded ones, and those not found
            found = [f for f in found if f.grade or not f.found]
        worst = smallest_trusted([f.value for f in found], [f.to_check for f in found])
        if worst is not None:
            doubted = [d for f in found for d in (f.smaller_to_check and f.smaller_to_check._replace(block=f.block),
                                                  DoubtedValue(f.slice_index, f.value, f.block) if f.to_check else None)
                       if d is not None and d.order < found[worst].value]
            findings[measurement] = replace(found[worst], smaller_to_check=min(doubted, key=lambda d: d.order,
                                                                                default=None))
        elif found:  # not found in any block, but to check (foramina_not_found)
            findings[measurement] = found[0]
    return findings


def worst_findings_by_level(measurements: list[SliceMeasurement], region: str) -> dict[str, dict[str, Finding]]:
    """Per vertebral level named on any slice (SliceMeasurement.level; in the order of the stack): the worst findings
    of the slices named so, as a report states them level by level."""
    by_level: dict[str, list[SliceMeasurement]] = {}
    for m in measurements:
        if m.level:
            by_level.setdefault(m.level, []).append(m)
    return {level: worst_findings(slices, region) for level, slices in by_level.items()}


def worst_findings_by_level_of_blocks(blocks: Mapping[str, list[SliceMeasurement]], region: str
                                      ) -> dict[str, dict[str, Finding]]:
    """worst_findings_by_level over the blocks of a DICOM series (each block's measurements by its
    name): each level's worst findings among the slices named so in every block, each naming its block."""
    levels = dict.fromkeys(m.level for measurements in blocks.values() for m in measurements if m.level)
    return {level: worst_findings_of_blocks({name: [m for m in measurements if m.level == level]
                                             for name, measurements in blocks.items()}, region) for level in levels}


def describe_levels(by_level: Mapping[str, dict[str, Finding]]) -> list[str]:
    """A line per level: "L4-L5: canal AP 6.7 mm (absolute stenosis, slice 4); dural-sac area ..."."""
    lines = []
    for level, findings in by_level.items():
        phrases = []
        for name, finding in findings.items():
            graded = GRADED_MEASUREMENTS[name]
            said = [*([_grade_said(finding)] if finding.found else []),
                    slice_name(finding.slice_index, block=finding.block, image_number=finding.image_number),
                    *(["to check"] if finding.to_check else [])]
            phrases.append(f"{graded.label} {_value_said(name, finding.value)} ({', '.join(said)}"
                           f"{_smaller_to_check(name, finding)})")
        lines.append(f"{level}: " + ("; ".join(phrases) or "no canal or foramen found"))
    return lines


def slice_name(slice_index: int, level: str = "", block: str = "", image_number: str = "") -> str:
    """How a slice is named to the reader: "slice 4", or "slice 4 (L4-L5)" where its level is named, "block-2
    slice 4" in a block, "slice 4, image 14" where it is a DICOM image (SliceMeasurement.image_number)."""
    return ((f"{block} " if block else "") + f"slice {slice_index}" + (f" ({level})" if level else "")
            + (f", image {image_number}" if image_number else ""))


def describe_findings(findings: dict[str, Finding]) -> str:
    """E.g. "narrowest canal AP 6.7 mm (absolute stenosis) on slice 4 (L4-L5); ..." ("" for no finding); a finding
    whose structure is to check on every slice says so; one with no value, "right foramen not found on slice 2,
    to check"."""
    phrases = []
    for name, finding in findings.items():
        graded = GRADED_MEASUREMENTS[name]
        said = (f"{graded.superlative} {graded.label} {value_with_unit(name, finding.value)} "
                f"({_grade_said(finding)})" if finding.found else f"{graded.label} not found")
        where = slice_name(finding.slice_index, finding.level, finding.block, finding.image_number)
        check = ", to check" if finding.to_check else ""
        phrases.append(f"{said} on {where}{check}{_smaller_to_check(name, finding)}")
    return "; ".join(phrases)


def _grade_said(finding: Finding) -> str:
    """A finding's grade as the findings say it (a measured value is ungraded only where it is a thoracic or sacral
    canal)."""
    return finding.grade or "not graded"


def _smaller_to_check(name: str, finding: Finding) -> str:
    """", or 6.2 mm on slice 4 to check" where the finding of measurement name has a smaller value to check
    (Finding.smaller_to_check); ", or not found on slice 2 to check" where that is a structure not found."""
    if finding.smaller_to_check is None:
        return ""
    doubted = finding.smaller_to_check
    where = slice_name(doubted.slice_index, block=doubted.block)
    return f", or {_value_said(name, doubted.value)} on {where} to check"


def _value_said(name: str, value: float) -> str:
    """A value of measurement name with its unit, or "not found" (NaN)."""
    return "not found" if math.isnan(value) else value_with_unit(name, value)


def findings_document(findings: dict[str, Finding]) -> dict[str, dict]:
    """The findings as JSON-ready dicts (measurement → slice_index, z_mm, level, value, grade, to_check,
    smaller_to_check (null, or the slice_index and value of Finding.smaller_to_check, with its block if any; each
    value null where the structure was not found there), and the block of a DICOM series that holds the slice and
    the slice's image_number, if any)."""
    return {name: {**({"block": f.block} if f.block else {}), "slice_index": f.slice_index,
                   **({"image_number": f.image_number} if f.image_number else {}), "z_mm": round(f.z_mm, 3),
                   "level": f.level, "value": json_number(f.value), "grade": f.grade, "to_check": f.to_check,
                   "smaller_to_check": None if f.smaller_to_check is None else {
                       **({"block": f.smaller_to_check.block} if f.smaller_to_check.block else {}),
                       "slice_index": f.smaller_to_check.slice_index, "value": json_number(f.smaller_to_check.value)}}
            for name, f in findings.items()}


def slices_of(findings: dict[str, Finding]) -> set[int]:
    """The slices that hold the findings, and their smaller values to check (Finding.smaller_to_check)."""
    return ({f.slice_index for f in findings.values()}
            | {f.smaller_to_check.slice_index for f in findings.values() if f.smaller_to_check is not None})


def findings_on_slice(findings: dict[str, Finding], slice_index: int) -> str:
    """The labels of the findings on a slice, e.g. "canal AP, dural-sac area" ("" for none)."""
    return ", ".join(GRADED_MEASUREMENTS[name].label for name, finding in findings.items()
                     if finding.slice_index == slice_index)
