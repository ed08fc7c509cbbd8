"""Write a measurement run's files into an output folder, all or nothing."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from . import __version__
from .findings import (GRADED_MEASUREMENTS, findings_document, worst_findings, worst_findings_by_level,
                       worst_findings_by_level_of_blocks, worst_findings_of_blocks)
from .grading import GRADE_COLUMNS, grade
from .markups_json import line_markup, markups_document, ruler_name
from .measurement import FOUND_COLUMNS, MEASUREMENT_COLUMNS, SliceMeasurement
from .number_text import OUTPUT_DECIMALS, json_number

CSV_COLUMNS = ("slice_index", "image_number", "z_mm", "level", *MEASUREMENT_COLUMNS, *GRADE_COLUMNS, *FOUND_COLUMNS)
STUDIES_FILE = "studies.csv"  # among several inputs' output folders: a row of worst findings each
SERIES_FILE = "series.json"  # beside the block folders of a DICOM series in blocks: the whole series' findings
OUTPUT_FILES = ("segmentation.nii.gz", "measurements.csv", "levels.csv", "measurements.json", "rulers.mrk.json",
                "report.png")


_NOT_IN_FILE_NAMES = re.compile(r'[<>:"/\\|?*\x00-\x1f\s]+')  # what Windows or POSIX forbid, and spaces


def file_stem(name: str) -> str:
    """A name (a volume's, e.g. Slicer's "3: T2 AX L4/5" for a DICOM series) as the stem of file names on any
    system: each run of characters a file name may not hold, or of spaces, as one "_"; "volume" if nothing is left."""
    return _NOT_IN_FILE_NAMES.sub("_", name).strip("._") or "volume"


EXPORTED_FILES = {"segmentation": ".seg.nrrd", "rulers": "_rulers.mrk.json", "table": "_measurements.csv",
                  "levels": "_levels.csv", "report": "_report.png"}  # 3D Slicer's Export: kind → suffix of the stem


def exported_files(folder: Path | str, volume_name: str) -> dict[str, Path]:
    """The files 3D Slicer's Export writes into folder for the volume named volume_name, by kind."""
    folder, stem = Path(folder).resolve(), file_stem(volume_name)
    return {kind: folder / f"{stem}{suffix}" for kind, suffix in EXPORTED_FILES.items()}


def block_folder(block: int) -> str:
    """The output subfolder of a DICOM series' block (numbered from 1)."""
    return f"block-{block}"


def earlier_outputs(out_dir: Path) -> list[Path]:
    """What an earlier run wrote into out_dir: the output files, and the block folders with SERIES_FILE."""
    if not out_dir.is_dir():
        return []
    return [out_dir / name for name in (*OUTPUT_FILES, SERIES_FILE) if (out_dir / name).exists()] + sorted(
        p for p in out_dir.glob(block_folder("*")) if p.is_dir())


class OutputError(ValueError):
    """The output folder cannot be written as asked; the message is meant for the user."""


def check_output_folder(out_dir: Path, input_path: Path, overwrite: bool) -> None:
    from .volume_io import not_utf8

    if shown := not_utf8(out_dir):
        raise OutputError(f"{shown}: the output folder's path holds bytes that are not UTF-8, which SimpleITK cannot "
                          "write to; name another")
    out_dir, input_path = Path(out_dir).resolve(), Path(input_path).resolve()
    input_folder = input_path if input_path.is_dir() else input_path.parent
    if out_dir == input_folder:
        raise OutputError(f"{out_dir}: the output folder must not be the input's own folder")
    nearest = next(path for path in (out_dir, *out_dir.parents) if path.exists())
    if not nearest.is_dir():
        raise OutputError(f"{out_dir}: {'it' if nearest == out_dir else nearest} exists and is not a folder")
    existing = [path.name for path in earlier_outputs(out_dir)]
    if existing and not overwrite:
        raise OutputError(f"{out_dir}: already holds {', '.join(existing)}; pass --overwrite to replace them")


def _staging_folder(parent: Path, prefix: str, written: Path) -> Path:
    """A new empty folder in parent (made if need be) to stage the files of written; an OutputError if it cannot."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as error:
        raise OutputError(f"{written}: cannot be written ({error.strerror or error})") from None


@contextmanager
def staged_output(out_dir: Path) -> Iterator[Path]:
    """Yield a staging folder next to out_dir; only if the block succeeds, replace the earlier outputs in out_dir with
    what it wrote there."""
    out_dir = Path(out_dir).resolve()
    staging = _staging_folder(out_dir.parent, f".{out_dir.name}.", out_dir)
    try:
        yield staging
        out_dir.mkdir(exist_ok=True)
        for earlier in earlier_outputs(out_dir):
            shutil.rmtree(earlier) if earlier.is_dir() else earlier.unlink()
        for item in staging.iterdir():
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def staged_files(paths: Mapping[str, Path]) -> Iterator[dict[str, Path]]:
    """Yield a staging path for each of paths (files of one folder); only if the block succeeds, move each onto its
    path, replacing the file there: all of them written, or none."""
    folder = next(iter(paths.values())).parent
    staging = _staging_folder(folder, ".staging.", folder)
    try:
        yield {kind: staging / path.name for kind, path in paths.items()}
        for path in paths.values():
            os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _csv_number(value: float) -> str:
    return f"{value:.{OUTPUT_DECIMALS}f}"


def csv_cell(column: str, value):
    """A cell of measurements.csv (or of 3D Slicer's table saved as CSV): a measured value to OUTPUT_DECIMALS, z_mm
    and the other columns as they are."""
    return _csv_number(value) if isinstance(value, float) and column != "z_mm" else value


def rows(measurements: list[SliceMeasurement], region: str) -> list[dict]:
    """One dict per slice with the CSV columns (NaN stays NaN, grades as text)."""
    table = []
    for m in measurements:
        table.append({"slice_index": m.slice_index, "image_number": m.image_number, "z_mm": round(m.z_mm, 3),
                      "level": m.level, **m.values, **grade(m.values, region, m.level), **m.found()})
    return table


def write_csv(path: Path, measurements: list[SliceMeasurement], region: str) -> None:
    write_series_csv(path, {"": measurements}, region)


def write_series_csv(path: Path, blocks: Mapping[str, list[SliceMeasurement]], region: str) -> None:
    """measurements.csv of the blocks of a DICOM series (each block's measurements by its folder's name), beside
    their folders: every block's rows in one table, each with its block first; of one stack (a single unnamed
    block, write_csv) without that column."""
    named = list(blocks) != [""]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=("block", *CSV_COLUMNS) if named else CSV_COLUMNS)
        writer.writeheader()
        for block, measurements in blocks.items():
            for row in rows(measurements, region):
                values = {k: csv_cell(k, v) for k, v in row.items()}
                writer.writerow({"block": block, **values} if named else values)


def write_json(path: Path, measurements: list[SliceMeasurement], region: str, provenance: dict,
               regions_of_interest_ras: Mapping[int, np.ndarray | None] | None = None) -> None:
    """measurements.json: each slice's row, rulers and region of interest (its corners in RAS, or null), with the
    worst findings, those of each named level, and the provenance."""
    slices = []
    for m, row in zip(measurements, rows(measurements, region)):
        entry = {k: (json_number(v) if isinstance(v, float) else v) for k, v in row.items()}
        corners = (regions_of_interest_ras or {}).get(m.slice_index)
        entry["region_of_interest_ras"] = None if corners is None else np.round(corners, OUTPUT_DECIMALS).tolist()
        entry["rulers"] = {name: {"name": ruler_name(name, m.slice_index),
                                  "start_ras": [round(float(v), OUTPUT_DECIMALS) for v in r.start_ras],
                                  "end_ras": [round(float(v), OUTPUT_DECIMALS) for v in r.end_ras],
                                  "length_mm": round(r.length_mm, OUTPUT_DECIMALS)} for name, r in m.rulers.items()}
        slices.append(entry)
    document = {"tool": "spinal-stenosis", "version": __version__, "region": region, **provenance,
                "worst_findings": findings_document(worst_findings(measurements, region)),
                "worst_findings_by_level": {level: findings_document(findings) for level, findings
                                            in worst_findings_by_level(measurements, region).items()},
                "slices": slices}
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def write_series_json(path: Path, blocks: dict[str, list[SliceMeasurement]], region: str, provenance: dict) -> None:
    """SERIES_FILE: the worst findings of a DICOM series measured in blocks (each block's measurements by its
    folder's name), each naming its block: what the command prints as "the whole series"; and those of each named
    level."""
    document = {"tool": "spinal-stenosis", "version": __version__, "region": region, **provenance,
                "blocks": list(blocks), "worst_findings": findings_document(worst_findings_of_blocks(blocks, region)),
                "worst_findings_by_level": {level: findings_document(findings) for level, findings
                                            in worst_findings_by_level_of_blocks(blocks, region).items()}}
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def write_rulers(path: Path, measurements: list[SliceMeasurement]) -> None:
    lines = [line_markup(ruler_name(name, m.slice_index), ruler, name)
             for m in measurements for name, ruler in m.rulers.items()]
    path.write_text(json.dumps(markups_document(lines), indent=1), encoding="utf-8")


def _finding_columns(name: str, with_level: bool = True) -> tuple[str, ...]:
    """A graded measurement's columns in STUDIES_FILE: its value, slice, the slice's DICOM image number (empty for
    another input), the slice's level (not with_level: in levels.csv, whose rows are levels), grade and whether it
    is to check."""
    grade_column = GRADED_MEASUREMENTS[name].grade_column
    stem = grade_column[:-len("_grade")]
    return (name, f"{stem}_slice", f"{stem}_image", *([f"{stem}_level"] if with_level else []), grade_column,
            f"{stem}_to_check")


STUDIES_COLUMNS = ("folder", "input", "region", "slices", "slices_to_check",
                   *(column for name in GRADED_MEASUREMENTS for column in _finding_columns(name)), "warnings")
LEVELS_COLUMNS = ("level", "slices", *(column for name in GRADED_MEASUREMENTS
                                       for column in _finding_columns(name, with_level=False)))


def write_levels_csv(path: Path, measurements: list[SliceMeasurement], region: str) -> None:
    """levels.csv: a row per level named on the slices (in the stack's order; none without a name), with its slices
    and each graded measurement's worst finding among them (findings.worst_findings_by_level): value, slice, its
    image number, grade and whether it is to check, empty where none was measured (the value nan where a foramen was
    not found: findings.Finding)."""
    rows = []
    for level, findings in worst_findings_by_level(measurements, region).items():
        row = {"level": level, "slices": " ".join(str(m.slice_index) for m in measurements if m.level == level)}
        for name, finding in findings.items():
            row.update(zip(_finding_columns(name, with_level=False),
                           (_csv_number(finding.value), finding.slice_index, finding.image_number, finding.grade,
                            finding.to_check)))
        rows.append(row)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LEVELS_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)


def write_studies_csv(out_dir: Path) -> Path | None:
    """STUDIES_FILE in out_dir: one row per measured input (per block of a DICOM series in blocks) among
    out_dir's folders, with its worst findings, read back from each measurements.json, so that the inputs an earlier
    run measured into out_dir are listed too. None (nothing written) when out_dir holds no measured input."""
    out_dir = Path(out_dir)
    rows = []
    for document_path in sorted([*out_dir.glob("*/measurements.json"),
                                 *out_dir.glob(f"*/{block_folder('*')}/measurements.json")]):
        document = json.loads(document_path.read_text(encoding="utf-8"))
        row = {"folder": document_path.parent.relative_to(out_dir).as_posix(), "input": document["input"],
               "region": document["region"], "slices": len(document["slices"]),
               "slices_to_check": sum(bool(entry["check"]) for entry in document["slices"]),
               "warnings": "; ".join(document.get("input_warnings", []))}
        for name, finding in document.get("worst_findings", {}).items():  # "level": not from an earlier version
            value = math.nan if finding["value"] is None else finding["value"]  # a foramen not found
            row.update(zip(_finding_columns(name), (_csv_number(value), finding["slice_index"],
                                                    finding.get("image_number", ""), finding.get("level", ""),
                                                    finding["grade"], finding["to_check"])))
        rows.append(row)
    if not rows:
        return None
    path = out_dir / STUDIES_FILE
    partial = path.with_name(f".{STUDIES_FILE}.partial")
    # an input's path or an earlier run's warning may hold bytes that are not UTF-8 (JSON keeps them escaped)
    with open(partial, "w", newline="", encoding="utf-8", errors="backslashreplace") as handle:
        writer = csv.DictWriter(handle, fieldnames=STUDIES_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)
    return path
