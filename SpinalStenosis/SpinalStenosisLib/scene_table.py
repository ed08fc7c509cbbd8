"""The measurements table node: one row per slice, its columns, its grades, the worst findings it flags, the values
typed into it, and its CSV.

Qt-free, on a ``vtkMRMLTableNode`` (Slicer or PyPI's ``slicer-core``). The scene-level work (finding the node,
the chart's cut-off lines, the rulers) is scene.StenosisScene's.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

from .body_region import NECK
from .findings import findings_on_slice, worst_findings
from .grading import THORACIC, grade, level_warnings, stenosis_cutoffs
from .level_names import NamedImage, levels_of_images
from .measurement import (CHECK_REASONS, CONFIDENCE_COLUMNS, FOUND_COLUMNS, MEASUREMENT_COLUMNS, SliceMeasurement,
                          structures_in)
from .outputs import CSV_COLUMNS, csv_cell

ATTRIBUTE = "SpinalStenosis."  # the prefix of every attribute this extension sets on a node
MIN_TYPED_VALUE = 0.01  # mm or mm²: a measurement typed into the table below this is no measurement
TABLE_COLUMNS = (*CSV_COLUMNS, "worst_findings")
# what the measurement found, not the user's to type over (the grades and Worst are worked out again anyway)
LOCKED_COLUMNS = ("slice_index", "image_number", "z_mm", *FOUND_COLUMNS)
COLUMN_LABELS = {  # column: (header, unit, tooltip); the names stay the CSV's
    "slice_index": ("Slice", "", "Index of the slice along the volume's axial axis"),
    "image_number": ("Image", "", "The DICOM image the slice is, as a viewer numbers it (its Instance Number); empty "
                                  "for a volume not loaded from DICOM or not stacked as its images"),
    "z_mm": ("z (mm)", "mm", "Position of the slice along the stack"),
    "level": ("Level", "", "The slice's vertebral level as you name it (e.g. L4-L5): type it here; it is kept when "
                           "the volume is measured again, named with the worst findings, and chooses the slice's "
                           "cut-offs (C cervical, L lumbar; a thoracic or sacral level's canal is not graded)"),
    "canal_ap_mm": ("Canal AP (mm)", "mm", "Antero-posterior diameter of the thecal sac through its centroid"),
    "canal_transverse_mm": ("Canal transverse (mm)", "mm", "Left-right diameter of the sac through its centroid"),
    "canal_area_mm2": ("Dural-sac area (mm²)", "mm2", "Cross-sectional area of the thecal sac"),
    "left_foramen_width_mm": ("Left foramen (mm)", "mm", "Narrowest gap of the left neural foramen"),
    "right_foramen_width_mm": ("Right foramen (mm)", "mm", "Narrowest gap of the right neural foramen"),
    "canal_ap_grade": ("Canal AP grade", "", "Canal AP against the cut-offs of the region (or of the level)"),
    "canal_area_grade": ("Area grade", "", "Dural-sac area against the cut-offs"),
    "left_foramen_grade": ("Left foramen grade", "", "Left foramen width against the cut-off"),
    "right_foramen_grade": ("Right foramen grade", "", "Right foramen width against the cut-off"),
    "canal_confidence": ("Canal confidence", "", "The network's mean probability over the canal; 1 once edited"),
    "left_foramen_confidence": ("Left foramen confidence", "", "The same over the left foramen"),
    "right_foramen_confidence": ("Right foramen confidence", "", "The same over the right foramen"),
    "canal_edge_to_noise": ("Canal edge / noise", "", "How clearly the image shows the canal's outline: about 1 "
                            "where it follows only noise; empty once edited"),
    "canal_off_axis_mm": ("Canal off axis (mm)", "mm", "How far the canal lies from the line the image around it "
                          "mirrors about (the spine's axis): 0 on it; 10 or more, another structure? Empty where "
                          "the image does not show 4 cm on each side, and once edited"),
    "canal_area_to_chords": ("Canal area / chords", "", "The canal's area over the ellipse two perpendicular chords "
                             "through its centre span (its rulers, or its chords along its principal axes, whichever "
                             "is smaller): about 1 for one round outline; 1.5 or more, an outline of two lobes"),
    "cut_by_field_of_view": ("Cut by field of view", "", "The structures the edge of the image cuts: their numbers "
                             "are of the part in view"),
    "check": ("Check", "", f"{CHECK_REASONS.capitalize()}: look at it before trusting its numbers"),
    "worst_findings": ("Worst", "", "The study's worst findings on this slice: the smallest canal AP, dural-sac area "
                       "and foramen widths among the slices where the structure is not to check (a foramen found "
                       "on none: on its first slice where the other side's was, else on the first slice of a level "
                       "named at a disc where neither side's was found on any)"),
}

# The tables this code is writing: their ModifiedEvents meanwhile are not the user's edits.
_TABLES_BEING_WRITTEN: set = set()


@contextmanager
def writing(table):
    """While this code writes the table: its ModifiedEvents wait for the end (one event, on a whole table), and
    are not taken for the user's edits. Nested writes end with the outermost."""
    if table in _TABLES_BEING_WRITTEN:
        yield
        return
    _TABLES_BEING_WRITTEN.add(table)
    was_modifying = table.StartModify()
    try:
        yield
    finally:
        table.EndModify(was_modifying)
        _TABLES_BEING_WRITTEN.discard(table)


def has_columns(table) -> bool:
    """Whether the table has every column of this version's (not one of a scene saved by an earlier version)."""
    return all(table.GetTable().GetColumnByName(column) is not None for column in TABLE_COLUMNS)


def fill_table(table, measurements: list[SliceMeasurement], levels: Mapping[int, str], region: str) -> None:
    """(Re)build the table, graded with region (grade_rows); each slice's level is the one its measurement names,
    else the one in levels."""
    from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkIntArray, vtkStringArray

    vtk_table = table.GetTable()
    with writing(table):
        while vtk_table.GetNumberOfColumns():
            vtk_table.RemoveColumn(0)
        for column in TABLE_COLUMNS:
            array = (vtkIntArray() if column == "slice_index" else vtkDoubleArray()
                     if column in ("z_mm", *MEASUREMENT_COLUMNS, *CONFIDENCE_COLUMNS, "canal_edge_to_noise",
                                   "canal_off_axis_mm", "canal_area_to_chords")
                     else vtkStringArray())
            array.SetName(column)
            array.SetNumberOfValues(len(measurements))
            vtk_table.AddColumn(array)
            header, unit, tooltip = COLUMN_LABELS[column]
            table.SetColumnTitle(column, header)
            table.SetColumnUnitLabel(column, unit)
            table.SetColumnDescription(column, tooltip)
        table.SetUseColumnTitleAsColumnHeader(True)
        for row, m in enumerate(measurements):
            vtk_table.GetColumnByName("level").SetValue(row, levels.get(m.slice_index, ""))
            write_row(table, row, m)
        grade_rows(table, region)


def write_row(table, row: int, m: SliceMeasurement) -> None:
    """A slice's measurements and confidences (and its level, if m names one: else the row's stays); grade_rows
    then grades them."""
    vtk_table = table.GetTable()
    write_locked(table, row, m)
    if m.level:
        vtk_table.GetColumnByName("level").SetValue(row, m.level)
    for column in MEASUREMENT_COLUMNS:
        vtk_table.GetColumnByName(column).SetValue(row, m.values[column])


def write_locked(table, row: int, m: SliceMeasurement) -> None:
    """A row's cells the user cannot type over (LOCKED_COLUMNS): what the measurement found."""
    cells = {"slice_index": m.slice_index, "image_number": m.image_number, "z_mm": m.z_mm, **m.found()}
    for column in LOCKED_COLUMNS:
        table.GetTable().GetColumnByName(column).SetValue(row, cells[column])


def grade_rows(table, region: str, changed_row: int | None = None) -> None:
    """Grade every row, or only changed_row when the table was graded with region already, with the cut-offs of
    region (recorded as the table's SpinalStenosis.region) or of the row's level (grading.slice_region), and flag
    the study's worst findings."""
    vtk_table = table.GetTable()
    rows = (range(vtk_table.GetNumberOfRows()) if changed_row is None or graded_with(table) != region
            else (changed_row,))
    with writing(table):
        for row in rows:
            level = vtk_table.GetColumnByName("level").GetValue(row).strip()
            for column, text in grade(row_values(table, row), region, level).items():
                vtk_table.GetColumnByName(column).SetValue(row, text)
        table.SetAttribute(ATTRIBUTE + "region", region)
        _flag_worst(table, region)
        table.Modified()


def _flag_worst(table, region: str) -> None:
    """Name on each row the study's worst findings it holds (findings_on_slice), as the table is graded."""
    findings = worst_findings(measurements_of(table), region)
    vtk_table = table.GetTable()
    slices, flags = vtk_table.GetColumnByName("slice_index"), vtk_table.GetColumnByName("worst_findings")
    for row in range(vtk_table.GetNumberOfRows()):
        flags.SetValue(row, findings_on_slice(findings, slices.GetValue(row)))
    vtk_table.Modified()


def graded_with(table) -> str | None:
    """The region whose cut-offs the table was last graded with (its SpinalStenosis.region)."""
    return table.GetAttribute(ATTRIBUTE + "region")


def fill_cutoffs(cutoffs, table) -> None:
    """The AP cut-offs of the region the table is graded with over its slices, into the cut-offs table of its chart:
    two rows, the first slice's and the last's (NaN, drawing no line, for a thoracic study, whose canal is not
    graded)."""
    from vtkmodules.vtkCommonCore import vtkDoubleArray

    slices = table.GetTable().GetColumnByName("slice_index")
    ends = [slices.GetValue(0), slices.GetValue(slices.GetNumberOfValues() - 1)] if slices.GetNumberOfValues() \
        else [0, 0]
    vtk_table = cutoffs.GetTable()
    while vtk_table.GetNumberOfColumns():
        vtk_table.RemoveColumn(0)
    cutoffs_mm = stenosis_cutoffs("canal_ap_mm", graded_with(table)) or (math.nan, math.nan)
    for column, values in (("slice_index", ends), *zip(("absolute", "relative"), ([v, v] for v in cutoffs_mm))):
        array = vtkDoubleArray()
        array.SetName(column)
        for value in values:
            array.InsertNextValue(float(value))
        vtk_table.AddColumn(array)
    cutoffs.Modified()


def row_values(table, row: int) -> dict[str, float]:
    """A row's measurements (MEASUREMENT_COLUMNS), as the table holds them."""
    vtk_table = table.GetTable()
    return {column: vtk_table.GetColumnByName(column).GetValue(row) for column in MEASUREMENT_COLUMNS}


def row_of(table, slice_index: int) -> int:
    """The row of a slice; a KeyError for a slice the table does not hold."""
    column = table.GetTable().GetColumnByName("slice_index")
    for row in range(table.GetTable().GetNumberOfRows()):
        if column.GetValue(row) == slice_index:
            return row
    raise KeyError(slice_index)


def measurements_of(table) -> list[SliceMeasurement]:
    """The table's rows as measurements (values, confidences and outline score, as the user may have changed them;
    no rulers)."""
    vtk_table = table.GetTable()

    def cell(column: str, row: int):
        return vtk_table.GetColumnByName(column).GetValue(row)

    return [SliceMeasurement(int(cell("slice_index", row)), float(cell("z_mm", row)), row_values(table, row),
                             confidences={column: cell(column, row) for column in CONFIDENCE_COLUMNS},
                             canal_edge_to_noise=cell("canal_edge_to_noise", row),
                             canal_off_axis_mm=cell("canal_off_axis_mm", row),
                             canal_area_to_chords=cell("canal_area_to_chords", row),
                             cut_by_field_of_view=structures_in(cell("cut_by_field_of_view", row)),
                             level=cell("level", row).strip(), image_number=cell("image_number", row))
            for row in range(vtk_table.GetNumberOfRows())]


def write_levels(table, levels: Mapping[int | str | NamedImage, str]) -> None:
    """Write levels (level_names.parse_levels: slice index, or image, → level) into the table's Level column, as if
    typed into each named row's cell (grade_rows then grades them); a ValueError for an angled block's name (here
    each block is a volume of its own), or a slice or image the table does not hold."""
    blocks = [str(name) for name in levels if isinstance(name, str)]
    if blocks:
        raise ValueError(f"levels name {', '.join(blocks)}: in 3D Slicer each angled block of a DICOM series is a "
                         "volume of its own; name the slices of the one measured (e.g. 0-2=L4-L5)")
    vtk_table = table.GetTable()
    rows = {int(vtk_table.GetColumnByName("slice_index").GetValue(row)): row
            for row in range(vtk_table.GetNumberOfRows())}
    images = vtk_table.GetColumnByName("image_number")
    by_image = levels_of_images(levels, [[images.GetValue(row) for row in rows.values()]])
    if by_image is not None:  # as levels by the named images' slices
        slices = list(rows)
        levels = {slices[n]: level for n, level in by_image[0].items()}
    missing = sorted(s for s in levels if s not in rows)
    if missing:
        raise ValueError(f"levels name slice {', '.join(map(str, missing))}, but the table's slices are "
                         f"{min(rows, default=0)} to {max(rows, default=0)}")
    with writing(table):
        for slice_index, level in levels.items():
            vtk_table.GetColumnByName("level").SetValue(rows[slice_index], level)
        vtk_table.Modified()


def take_typed_values(table, accepted: list[SliceMeasurement], region: str) -> None:
    """A value or level typed into the table (the table view writes the cell and modifies the node): regrade it
    with region, as a moved ruler does. The rulers stay where they are. A measurement typed as 0 or less holds an
    absent structure (NaN, as the networks' absent ones); text that is no number the table does not write. Typed
    over a locked column (LOCKED_COLUMNS), the cell gets its value back; a row added or deleted, or a column
    deleted, in the table view is undone: one row per slice, as the table was last accepted. Nothing is done while
    this code writes the table (writing)."""
    if table in _TABLES_BEING_WRITTEN:
        return
    vtk_table = table.GetTable()
    with writing(table):
        if not has_columns(table) or vtk_table.GetNumberOfRows() != len(accepted):
            fill_table(table, accepted, {}, region)
            return
        for row, m in enumerate(accepted):
            write_locked(table, row, m)
        for column in MEASUREMENT_COLUMNS:
            values = vtk_table.GetColumnByName(column)
            for row in range(vtk_table.GetNumberOfRows()):
                if not values.GetValue(row) >= MIN_TYPED_VALUE:
                    values.SetValue(row, math.nan)
        grade_rows(table, region)


def to_check(table) -> dict[int, str]:
    """Slice → what to check on it (the table's check column: what the network was unsure of, the image barely
    shows, lies off the spine's axis or the image's edge cuts), where any."""
    vtk_table = table.GetTable()
    check, slices = vtk_table.GetColumnByName("check"), vtk_table.GetColumnByName("slice_index")
    return {int(slices.GetValue(row)): check.GetValue(row) for row in range(vtk_table.GetNumberOfRows())
            if check.GetValue(row)}


def store_warnings(nodes, warnings: list[str]) -> None:
    """The warnings of the results (pipeline.input_warnings) as the nodes' SpinalStenosis.warnings attribute."""
    for node in nodes:
        node.SetAttribute(ATTRIBUTE + "warnings", json.dumps(warnings))


def warnings_of(table) -> list[str]:
    """The warnings of the results the table holds (store_warnings: pipeline.input_warnings, as last measured or
    re-measured; none for a table of an earlier version)."""
    return json.loads(table.GetAttribute(ATTRIBUTE + "warnings") or "[]")


def region_notes(table) -> list[str]:
    """What to tell the user of the region the table is graded for: that the image shows a whole neck or the cord in
    the sac (body_region.region_shown, as the command line grades it) while the table is graded with the lumbar
    cut-offs; what the levels in its Level column warn of (grading.level_warnings)."""
    shown, graded = table.GetAttribute(ATTRIBUTE + "shownRegion"), graded_with(table)
    notes = []
    if shown and shown != graded:
        graded_as = "as thoracic, its canal not graded" if graded == THORACIC else f"with the {graded} cut-offs"
        evidence = table.GetAttribute(ATTRIBUTE + "shownBy") or NECK  # an earlier version's table: its only evidence
        notes.append(f"the image shows {evidence}, and the table is graded {graded_as}: choose the {shown} Region "
                     "to grade it as the command line does")
    if graded:
        levels = table.GetTable().GetColumnByName("level")
        notes += level_warnings((levels.GetValue(row).strip() for row in range(levels.GetNumberOfValues())), graded)
    return notes


def write_csv(table, path: Path) -> None:
    """The table as CSV, with the command line's columns (outputs.CSV_COLUMNS) and the Worst column."""
    import csv

    vtk_table = table.GetTable()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_COLUMNS)
        for row in range(vtk_table.GetNumberOfRows()):
            writer.writerow([csv_cell(column, vtk_table.GetColumnByName(column).GetValue(row))
                             for column in TABLE_COLUMNS])
