"""Stenosis grades from the published cut-offs (sources in the README and ../shared/design).

* Canal AP, lumbar: < 10 mm absolute, 10-12 mm relative stenosis (Verbiest 1977; Talekar 2017 gives < 12 mm for
  lumbar stenosis). Cervical: < 10 mm (the seed paper, after Talekar 2017), with no relative band: the quoted 10-13 mm
  band is for the bony canal on radiographs and CT, while this tool measures the thecal sac, whose normal AP on MR
  is 11.2 ± 1.4 mm at mid-C5 (../shared/design/axial-spine-anatomy.md §1g), so that band would flag healthy necks.
* Dural-sac cross-sectional area: < 75 mm² absolute, 75-100 mm² relative (Bolender 1985: < 100 mm²; 75 mm² as the
  threshold of clinically significant dural compression, PMC2997206; the "Schönström" bands as widely quoted). These
  are lumbar studies' and grade the cervical sac too, where they flag only severe narrowing (the README's Grades).
* Foramen: narrowest width < 3 mm = stenosis (Talekar 2017).

The thoracic and sacral canal is not graded: above the conus the sac holds the cord, below L5-S1 it tapers to its
end, and no cut-off here is for either. A slice named at a vertebral level is graded with that level's region's
cut-offs, whatever the study's region.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from .body_region import ShownRegion
from .level_names import vertebrae_no_spine_has
from .number_text import number_text

CANAL_AP_CUTOFFS_MM = {"lumbar": (10.0, 12.0), "cervical": (10.0, 10.0)}  # (absolute below, relative below)
CANAL_AREA_CUTOFFS_MM2 = (75.0, 100.0)
FORAMEN_CUTOFF_MM = 3.0
GRADE_COLUMNS = ("canal_ap_grade", "canal_area_grade", "left_foramen_grade", "right_foramen_grade")
REGIONS = tuple(CANAL_AP_CUTOFFS_MM)  # the regions with canal cut-offs (and synthetic series)
THORACIC, SACRAL = "thoracic", "sacral"  # regions whose canal is not graded
GRADING_REGIONS = (*REGIONS, THORACIC)  # what a study may be graded as
# a named level's region, by the letter of its first vertebra: "C5-C6", "T11-T12", "Th12/L1", "L4-L5", "S1-S2"
LEVEL_REGIONS = {"C": "cervical", "T": THORACIC, "TH": THORACIC, "L": "lumbar", "S": SACRAL}
LEVEL_VERTEBRA = re.compile(r"\s*(C|TH?|L|S)\d", re.IGNORECASE)
# how DICOM headers name a region: Body Part Examined's defined terms; the words of series and study descriptions
# (HWS, BWS, LWS: the German abbreviations). Whole-spine, cervicothoracic and thoracolumbar series name none.
REGION_TAGS = ("0018,0015", "0008,103E", "0008,1030")  # Body Part Examined, Series Description, Study Description
BODY_PARTS = {"CSPINE": "cervical", "TSPINE": THORACIC, "LSPINE": "lumbar", "LSSPINE": "lumbar", "SSPINE": "lumbar"}
REGION_WORDS = {"cervical": re.compile(r"\b(C[- ]?SPINE|CERVICAL[- ]SPINE|HWS)\b"),
                THORACIC: re.compile(r"\b(T[- ]?SPINE|THORACIC[- ]SPINE|BWS)\b"),
                "lumbar": re.compile(r"\b(L[- ]?SPINE|LUMBAR|LUMBOSACRAL|LWS)\b")}


FORAMEN_MEASUREMENTS = ("left_foramen_width_mm", "right_foramen_width_mm")


def stenosis_cutoffs(measurement: str, region: str) -> tuple[float, float] | None:
    """A measurement's cut-offs in a region: (absolute stenosis below, relative stenosis below), the same twice where
    there is no relative band (the cervical canal AP, a foramen); None where it is not graded (the transverse
    diameter, a thoracic or sacral canal)."""
    if measurement in FORAMEN_MEASUREMENTS:
        return FORAMEN_CUTOFF_MM, FORAMEN_CUTOFF_MM
    if region not in CANAL_AP_CUTOFFS_MM:
        return None
    return {"canal_ap_mm": CANAL_AP_CUTOFFS_MM[region], "canal_area_mm2": CANAL_AREA_CUTOFFS_MM2}.get(measurement)


# every cut-off a measurement is graded against, in any region (a value is shown to the decimals that keep it below)
MEASUREMENT_CUTOFFS = {name: tuple(sorted({c for region in REGIONS for c in stenosis_cutoffs(name, region)}))
                       for name in ("canal_ap_mm", "canal_area_mm2", *FORAMEN_MEASUREMENTS)}
# the unit each measurement is shown in
MEASUREMENT_UNITS = {"canal_ap_mm": "mm", "canal_transverse_mm": "mm", "canal_area_mm2": "mm²",
                     "left_foramen_width_mm": "mm", "right_foramen_width_mm": "mm"}


def value_text(measurement: str, value: float) -> str:
    """A measured value as the reader is shown it: to 0.1, or to as many more decimals as keep it below a cut-off it
    lies below (MEASUREMENT_CUTOFFS), so that the text agrees with the grade: 9.98 mm graded absolute stenosis (below
    10 mm) reads "9.98", not "10.0"."""
    return number_text(value, 1, bounds=MEASUREMENT_CUTOFFS.get(measurement, ()))


def value_with_unit(measurement: str, value: float) -> str:
    """A measured value with its unit (MEASUREMENT_UNITS) as the reader is shown it: "9.98 mm" (value_text)."""
    return f"{value_text(measurement, value)} {MEASUREMENT_UNITS[measurement]}"


def _banded(value: float, absolute_below: float, relative_below: float) -> str:
    if math.isnan(value):
        return ""
    if value < absolute_below:
        return "absolute stenosis"
    if value < relative_below:
        return "relative stenosis"
    return "normal"


def _foramen(value: float, below: float) -> str:
    if math.isnan(value):
        return ""
    return "stenosis" if value < below else "normal"


def slice_region(region: str, level: str = "") -> str:
    """The region whose cut-offs grade a slice: the one its named level lies in (LEVEL_REGIONS), else the study's
    region."""
    vertebra = LEVEL_VERTEBRA.match(level)
    return LEVEL_REGIONS[vertebra.group(1).upper()] if vertebra else region


def level_warnings(levels: Iterable[str], region: str) -> list[str]:
    """What to tell of the levels named: those naming a vertebra no spine has (typed into 3D Slicer's table; a line
    of levels with one is refused), and those of the other graded region than the study's (a cervical level in a
    study graded as lumbar, or the reverse: a slip of the letter?), whose own region's cut-offs grade their slices."""
    named = sorted(set(filter(None, levels)))
    warnings = [f"level {level} names {' and '.join(wrong)}, which no spine has"
                for level in named if (wrong := vertebrae_no_spine_has(level))]
    other = [level for level in named if slice_region(region, level) in set(REGIONS) - {region}]
    if region in REGIONS and other:
        other_region = slice_region(region, other[0])
        warnings.append(f"level{'s' * (len(other) > 1)} {', '.join(other)} {'are' if len(other) > 1 else 'is'} "
                        f"{other_region}, in a study graded as {region}: graded with the {other_region} cut-offs; "
                        "check the level's name")
    return warnings


def grade(values: dict[str, float], region: str = "lumbar", level: str = "") -> dict[str, str]:
    """Grade one slice's measurements with the cut-offs of its slice_region; empty text where the measurement is
    NaN, and for a thoracic or sacral canal."""
    if region not in GRADING_REGIONS:
        raise ValueError(f"unknown region {region!r}; expected one of {', '.join(GRADING_REGIONS)}")
    region = slice_region(region, level)

    def banded(measurement: str) -> str:
        limits = stenosis_cutoffs(measurement, region)
        return _banded(values[measurement], *limits) if limits else ""

    def foramen(measurement: str) -> str:
        return _foramen(values[measurement], stenosis_cutoffs(measurement, region)[0])

    return {
        "canal_ap_grade": banded("canal_ap_mm"),
        "canal_area_grade": banded("canal_area_mm2"),
        "left_foramen_grade": foramen("left_foramen_width_mm"),
        "right_foramen_grade": foramen("right_foramen_width_mm"),
    }


def grading_region(chosen: str | None, named: str | None, shown: ShownRegion | None = None) -> str:
    """The region whose cut-offs grade the canal: the one chosen (--region, the module's Region), else the one the
    input's DICOM header names (see region_named), else the one the image shows (body_region.region_shown: a whole
    neck, or the cord in the sac), else lumbar."""
    return chosen or named or (shown.region if shown else None) or "lumbar"


def region_named(body_part: str = "", descriptions: Sequence[str] = ()) -> str | None:
    """The region a DICOM header names: by its Body Part Examined, else by the first description (series, then
    study) that names exactly one region; None when they name none. The values are those of REGION_TAGS."""
    if body_part.strip().upper() in BODY_PARTS:
        return BODY_PARTS[body_part.strip().upper()]
    for text in descriptions:
        named = [region for region, words in REGION_WORDS.items() if words.search(text.upper())]
        if len(named) == 1:
            return named[0]
    return None
