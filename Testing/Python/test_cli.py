"""``spinal-stenosis measure --masks``: outputs, contract, bad inputs, atomic writing, exit codes."""
import csv
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import (AveragingSegmenter, BrightnessSegmenter, ThresholdSegmenter, canal_arrays, other_contrast,
                      phantom_arrays, readme_code, tilted, write_dicom_series, write_with_foramina_swapped)

from enhanced_dicom import frame_planes_lps, write_enhanced_mr

from SpinalStenosisLib import cli, pipeline
from SpinalStenosisLib.geometry import VolumeGeometry
from SpinalStenosisLib.grading import grade
from SpinalStenosisLib.measurement import MEASUREMENT_COLUMNS
from SpinalStenosisLib.outputs import CSV_COLUMNS, LEVELS_COLUMNS, OUTPUT_FILES, STUDIES_COLUMNS, STUDIES_FILE
from SpinalStenosisLib.volume_io import open_axial, open_axial_blocks, write_image, write_labels


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_measure_with_masks_writes_the_contract(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    out = tmp_path / "out"
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", out, "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    rows = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(int(r["slice_index"]), r["image_number"]) for r in rows] == [(0, ""), (1, ""), (2, "")]  # not DICOM
    assert (out / "levels.csv").read_text(encoding="utf-8").splitlines() == [",".join(LEVELS_COLUMNS)]  # none named
    for k, row in enumerate(rows):  # phantom: canal AP 12 mm, transverse 18+2k mm, left 3+k mm, right 4 mm
        assert abs(float(row["canal_ap_mm"]) - 12.0) <= 1.0
        assert abs(float(row["canal_transverse_mm"]) - (18.0 + 2 * k)) <= 1.0
        assert abs(float(row["left_foramen_width_mm"]) - (3.0 + k)) <= 1.0
        assert abs(float(row["right_foramen_width_mm"]) - 4.0) <= 1.0
        assert row["canal_ap_grade"] == ("normal" if float(row["canal_ap_mm"]) >= 12.0 else "relative stenosis")
        assert row["left_foramen_grade"] == ("stenosis" if float(row["left_foramen_width_mm"]) < 3.0 else "normal")
        assert [float(row[f"{name}_confidence"]) for name in ("canal", "left_foramen", "right_foramen")] == [1.0] * 3
        assert row["check"] == ""  # the user's masks are not doubted
    document = json.loads((out / "measurements.json").read_text(encoding="utf-8"))
    assert document["version"] and document["slices"][1]["rulers"]["canal_ap_mm"]["name"] == "Canal AP slice 1"
    assert all(entry["region_of_interest_ras"] is None for entry in document["slices"])  # no network, no crop
    narrowest_left = document["worst_findings"]["left_foramen_width_mm"]
    assert narrowest_left["slice_index"] == 0 and narrowest_left["value"] == float(rows[0]["left_foramen_width_mm"])
    assert narrowest_left["grade"] == rows[0]["left_foramen_grade"] and not narrowest_left["to_check"]
    ruler = document["slices"][1]["rulers"]["canal_ap_mm"]
    assert math.dist(ruler["start_ras"], ruler["end_ras"]) == pytest.approx(document["slices"][1]["canal_ap_mm"],
                                                                            abs=1e-3)
    markups = json.loads((out / "rulers.mrk.json").read_text(encoding="utf-8"))
    assert markups["@schema"].endswith("markups-schema-v1.0.3.json#")
    assert {m["name"] for m in markups["markups"]} >= {"Canal AP slice 0", "Left foramen slice 2"}
    written = sitk.ReadImage(str(out / "segmentation.nii.gz"))
    source = sitk.ReadImage(str(labels))
    assert written.GetPixelID() == sitk.sitkUInt8
    assert written.GetSize() == source.GetSize() and np.allclose(written.GetDirection(), source.GetDirection())
    assert np.allclose(written.GetOrigin(), source.GetOrigin())
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source))



def test_masks_that_name_the_foramina_by_the_image_s_sides_are_measured_as_named_with_a_warning(phantom_files,
                                                                                                  tmp_path, capsys):
    image, labels = phantom_files
    write_with_foramina_swapped(labels, tmp_path / "swapped.nii.gz")
    code, err = run(capsys, "measure", image, "--masks", tmp_path / "swapped.nii.gz", "--out", tmp_path / "out",
                    "--quiet")
    assert code == 0, err
    [warning] = json.loads((tmp_path / "out" / "measurements.json").read_text(encoding="utf-8"))["input_warnings"]
    assert warning.startswith("the left foramen lies on the patient's right of the right foramen on 3 of the 3 slices")
    assert f"spinal-stenosis: warning: {image}: {warning}" in err
    rows = list(csv.DictReader(open(tmp_path / "out" / "measurements.csv", encoding="utf-8")))
    assert all(abs(float(row["left_foramen_width_mm"]) - 4.0) <= 1.0 for row in rows)  # the phantom's right, as named


def test_thick_slices_through_a_tilted_spine_are_warned_of_on_screen_and_in_the_json(tmp_path, capsys):
    labels, geometry = canal_arrays(-2.0 * np.arange(8), [6.0] * 8, 7.7)  # 2 mm further back every 7.7 mm slice
    write_image(tmp_path / "abdomen.nii.gz", labels * 800.0 + 100.0, geometry)
    write_labels(tmp_path / "abdomen_labels.nii.gz", labels, geometry)
    code, err = run(capsys, "measure", tmp_path / "abdomen.nii.gz", "--masks", tmp_path / "abdomen_labels.nii.gz",
                    "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    [warning] = json.loads((tmp_path / "out" / "measurements.json").read_text(encoding="utf-8"))["input_warnings"]
    assert warning.startswith("slices 7.7 mm apart through a spine tilted about 15°")
    assert f"spinal-stenosis: warning: {tmp_path / 'abdomen.nii.gz'}: {warning}" in err
    for thickness, warned in (("7.7", "slices 7.7 mm thick, 7.7 mm apart, through a spine tilted about 15°"),
                              ("5.0", None)):  # a DICOM header's thickness: 5 mm slices with gaps blur 1.3 mm
        series = tmp_path / f"dicom_{thickness}"
        series.mkdir()
        write_dicom_series(series, labels * 800.0 + 100.0, geometry, series=1, tags=(("0018|0050", thickness),))
        code, err = run(capsys, "measure", series, "--masks", tmp_path / "abdomen_labels.nii.gz",
                        "--out", tmp_path / f"out_{thickness}", "--quiet")
        assert code == 0, err
        written = json.loads((tmp_path / f"out_{thickness}" / "measurements.json").read_text(encoding="utf-8"))
        assert [w[:len(warned)] for w in written["input_warnings"]] == ([warned] if warned else [])

def test_progress_is_printed_once_for_each_step_though_the_second_look_reports_the_last_again(capsys):
    progress = cli.progress_printer()
    for done, total in ((2, 4), (4, 4), (4, 4), (4, 4)):  # two rounds of the second look after the first pass
        progress(done, total)
    assert capsys.readouterr().err.splitlines() == ["PROGRESS 2/4", "PROGRESS 4/4"]


def test_console_script_runs_as_a_process(phantom_files, tmp_path):
    image, labels = phantom_files
    result = subprocess.run([sys.executable, "-m", "SpinalStenosisLib.cli", "measure", str(image), "--masks",
                             str(labels), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "PROGRESS 3/3" in result.stderr


def test_several_inputs_are_measured_into_a_folder_each_and_listed_in_studies_csv(phantom_files, tmp_path,
                                                                                       capsys, monkeypatch):
    from SpinalStenosisLib import inference

    image, _ = phantom_files
    second = tmp_path / "second.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(image)), str(second))
    broken = tmp_path / "broken.nii.gz"
    broken.write_text("not an image", encoding="utf-8")
    loads = []
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: loads.append(kwargs) or ThresholdSegmenter())
    out = tmp_path / "out"
    code = cli.main([str(a) for a in ("measure", image, broken, second, "--out", out)])
    printed = capsys.readouterr()
    assert code == cli.EXIT_INPUT and len(loads) == 1
    assert sorted(p.name for p in out.iterdir()) == ["phantom", "second", STUDIES_FILE]
    for name in ("phantom", "second"):
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(OUTPUT_FILES)
        rows = list(csv.DictReader(open(out / name / "measurements.csv", encoding="utf-8")))
        assert [abs(float(row["canal_ap_mm"]) - 12.0) <= 1.0 for row in rows] == [True] * 3
    errors = [line for line in printed.err.splitlines() if line.startswith("spinal-stenosis: error:")]
    assert len(errors) == 2 and "broken.nii.gz: not an image" in errors[0] and "1 of 3 inputs" in errors[1]
    assert printed.out.count("wrote ") == 3 and f"wrote {out.resolve() / STUDIES_FILE}" in printed.out
    with open(out / STUDIES_FILE, newline="", encoding="utf-8") as handle:
        studies = list(csv.DictReader(handle))
    assert tuple(studies[0]) == STUDIES_COLUMNS and [row["folder"] for row in studies] == ["phantom", "second"]
    for row in studies:  # phantom: left foramen 3+k mm on slice k
        document = json.loads((out / row["folder"] / "measurements.json").read_text(encoding="utf-8"))
        assert (row["input"], row["slices"], row["slices_to_check"]) == (document["input"], "3", "0")
        assert row["left_foramen_slice"] == "0" and row["left_foramen_to_check"] == "False"
        assert float(row["left_foramen_width_mm"]) == document["slices"][0]["left_foramen_width_mm"]
        assert row["canal_ap_grade"] == document["worst_findings"]["canal_ap_mm"]["grade"]
    third = tmp_path / "third.nrrd"  # measured later into the same folder: listed with the earlier two
    sitk.WriteImage(sitk.ReadImage(str(image)), str(third))
    assert cli.main([str(a) for a in ("measure", third, second, "--out", out, "--quiet")]) == cli.EXIT_INPUT
    assert "second: already holds" in capsys.readouterr().err
    with open(out / STUDIES_FILE, newline="", encoding="utf-8") as handle:
        assert [row["folder"] for row in csv.DictReader(handle)] == ["phantom", "second", "third"]


def test_the_worst_findings_and_the_slices_whose_canal_the_network_doubts_are_said(phantom_files, tmp_path, capsys,
                                                                                     monkeypatch):
    from SpinalStenosisLib import inference

    image, _ = phantom_files
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: ThresholdSegmenter(canal_probability=0.9))
    assert cli.main([str(a) for a in ("measure", image, "--out", tmp_path / "unsure")]) == 0
    said = capsys.readouterr().out
    assert "check the canal on slices 0, 1, 2 (the check column: what the network was unsure of" in said
    assert "narrowest canal AP" in said and "on slice" in said and ", to check" in said
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: ThresholdSegmenter())
    assert cli.main([str(a) for a in ("measure", image, "--out", tmp_path / "sure")]) == 0
    assert "check the" not in capsys.readouterr().out


def test_levels_named_on_the_command_line_are_in_every_output(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    out = tmp_path / "out"
    code = cli.main([str(a) for a in ("measure", image, "--masks", labels, "--out", out, "--levels",
                                      "2=L4-L5, 0=L3-L4")])
    said = capsys.readouterr().out
    assert code == 0
    rows = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))
    assert [row["level"] for row in rows] == ["L3-L4", "", "L4-L5"]
    document = json.loads((out / "measurements.json").read_text(encoding="utf-8"))
    assert [entry["level"] for entry in document["slices"]] == ["L3-L4", "", "L4-L5"]
    for finding in document["worst_findings"].values():
        assert finding["level"] == rows[finding["slice_index"]]["level"]
    assert re.search(r"narrowest left foramen [\d.]+ mm \(\w+\) on slice 0 \(L3-L4\)", said)  # 3+k mm on slice k
    with open(out / "levels.csv", newline="", encoding="utf-8") as handle:
        by_level = list(csv.DictReader(handle))
    assert [(row["level"], row["slices"], row["canal_ap_slice"]) for row in by_level] == [("L3-L4", "0", "0"),
                                                                                        ("L4-L5", "2", "2")]
    assert by_level[0]["canal_ap_mm"] == f"{document['worst_findings_by_level']['L3-L4']['canal_ap_mm']['value']:.4f}"
    assert list(by_level[0])[:7] == ["level", "slices", "canal_ap_mm", "canal_ap_slice", "canal_ap_image",
                                     "canal_ap_grade", "canal_ap_to_check"]
    assert by_level[0]["canal_ap_image"] == ""  # not a DICOM series
    assert re.search(r"^L3-L4: canal AP [\d.]+ mm \([a-z ]+, slice 0\); ", said, re.MULTILINE)
    assert re.search(r"^L4-L5: canal AP [\d.]+ mm \([a-z ]+, slice 2\); ", said, re.MULTILINE)
    assert {level: {name: f["slice_index"] for name, f in findings.items()}
            for level, findings in document["worst_findings_by_level"].items()} == {
        "L3-L4": dict.fromkeys(document["worst_findings"], 0), "L4-L5": dict.fromkeys(document["worst_findings"], 2)}
    code = cli.main([str(a) for a in ("measure", image, "--masks", labels, "--out", tmp_path / "ranges", "--levels",
                                      "0-1=L3-L4,2-2=L4-L5,")])
    document = json.loads((tmp_path / "ranges" / "measurements.json").read_text(encoding="utf-8"))
    assert code == 0 and [entry["level"] for entry in document["slices"]] == ["L3-L4", "L3-L4", "L4-L5"]
    with open(tmp_path / "ranges" / "levels.csv", newline="", encoding="utf-8") as handle:
        assert [row["slices"] for row in csv.DictReader(handle)] == ["0 1", "2"]
    assert list(document["worst_findings_by_level"]) == ["L3-L4", "L4-L5"]
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", tmp_path / "cervical", "--levels",
                    "0=C4-C5, 1=L4-L5")
    warning = "level C4-C5 is cervical, in a study graded as lumbar: graded with the cervical cut-offs"
    assert code == 0 and f"warning: {image}: {warning}" in err
    document = json.loads((tmp_path / "cervical" / "measurements.json").read_text(encoding="utf-8"))
    assert any(said.startswith(warning) for said in document["input_warnings"])  # and the report, as the JSON
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", tmp_path / "beyond", "--levels", "3=L5-S1")
    assert code == cli.EXIT_INPUT and "levels name slice 3, but the stack's slices are 0 to 2" in err
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", tmp_path / "block", "--levels",
                    "block-1=L5-S1")
    assert code == cli.EXIT_INPUT and "levels name block-1, but the input is one stack" in err
    assert not (tmp_path / "beyond").exists()
    with pytest.raises(SystemExit) as usage:
        cli.main([str(a) for a in ("measure", image, "--out", tmp_path / "bad", "--levels", "L4-L5")])
    assert usage.value.code == cli.EXIT_USAGE and "'L4-L5' is not SLICE=LEVEL" in capsys.readouterr().err
    for wrong in ("2-1=L4-L5", "1-=L4-L5", "a-2=L4-L5", "1-2=", "block-0=L4-L5", "block-1="):
        with pytest.raises(SystemExit):
            cli.main([str(a) for a in ("measure", image, "--out", tmp_path / "bad", "--levels", wrong)])
        assert f"{wrong!r} is not SLICE=LEVEL, FIRST-LAST=LEVEL, block-K=LEVEL or image" in capsys.readouterr().err
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", tmp_path / "image", "--levels",
                    "image 1=L5-S1")  # a NIfTI file's slices are no DICOM images
    assert code == cli.EXIT_INPUT and "the slices are not numbered as the images of a DICOM series" in err
    for twice in ("1=L4-L5,1=L5-S1", "0-1=L4-L5,1-2=L5-S1"):
        with pytest.raises(SystemExit):
            cli.main([str(a) for a in ("measure", image, "--out", tmp_path / "bad", "--levels", twice)])
        assert "slice 1 is named twice" in capsys.readouterr().err


def test_studies_csv_lists_each_block_of_an_angled_series_and_leaves_missing_findings_empty(tmp_path):
    from SpinalStenosisLib.outputs import write_studies_csv

    assert write_studies_csv(tmp_path) is None and not (tmp_path / STUDIES_FILE).exists()
    finding = {"slice_index": 2, "image_number": "14", "z_mm": 8.0, "level": "L4-L5", "value": 9.5,
               "grade": "absolute stenosis", "to_check": True}
    unfound = {**finding, "value": None, "grade": ""}  # a foramen not found where the other side's was
    for folder, findings in (("series/block-2", {"canal_ap_mm": finding, "right_foramen_width_mm": unfound}),
                             ("series/block-1", {}), ("nifti", {})):
        (tmp_path / folder).mkdir(parents=True)
        document = {"input": folder.split("/")[0], "region": "lumbar", "worst_findings": findings,
                    "slices": [{"check": "canal"}, {"check": ""}, {"check": "canal"}],
                    "input_warnings": ["slices 7.7 mm apart", "a slice missing"] if folder == "nifti" else []}
        (tmp_path / folder / "measurements.json").write_text(json.dumps(document), encoding="utf-8")
    with open(write_studies_csv(tmp_path), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["folder"] for row in rows] == ["nifti", "series/block-1", "series/block-2"]
    assert [row["slices_to_check"] for row in rows] == ["2"] * 3 and rows[0]["canal_ap_mm"] == ""
    assert [row["warnings"] for row in rows] == ["slices 7.7 mm apart; a slice missing", "", ""]
    assert [rows[2][c] for c in ("canal_ap_mm", "canal_ap_slice", "canal_ap_image", "canal_ap_level",
                                 "canal_ap_grade", "canal_ap_to_check")] == ["9.5000", "2", "14", "L4-L5",
                                                                             "absolute stenosis", "True"]
    assert [rows[2][c] for c in ("right_foramen_width_mm", "right_foramen_slice", "right_foramen_grade")] == [
        "nan", "2", ""]  # as measurements.csv writes a foramen not found
    document["input_warnings"] = ["a series \udce4"]  # a byte not UTF-8 in a path or header, as JSON escapes it
    (tmp_path / "nifti" / "measurements.json").write_text(json.dumps(document), encoding="utf-8")
    with open(write_studies_csv(tmp_path), newline="", encoding="utf-8") as handle:
        assert next(csv.DictReader(handle))["warnings"] == "a series \\udce4"


def test_levels_csv_writes_a_foramen_found_on_none_of_a_level_s_slices_where_the_other_side_s_was(tmp_path):
    from SpinalStenosisLib.measurement import MEASUREMENT_COLUMNS, SliceMeasurement
    from SpinalStenosisLib.outputs import write_levels_csv

    values = dict.fromkeys(MEASUREMENT_COLUMNS, math.nan) | {"canal_ap_mm": 12.0, "canal_area_mm2": 150.0,
                                                             "left_foramen_width_mm": 5.0}
    confidences = {"canal_confidence": 0.99, "left_foramen_confidence": 0.97, "right_foramen_confidence": math.nan}
    slices = [SliceMeasurement(n, 4.0 * n, dict(values), confidences=dict(confidences), level="L4-L5")
              for n in range(2)]
    write_levels_csv(tmp_path / "levels.csv", slices, "lumbar")
    with open(tmp_path / "levels.csv", newline="", encoding="utf-8") as handle:
        [row] = csv.DictReader(handle)
    assert [row[c] for c in ("right_foramen_width_mm", "right_foramen_slice", "right_foramen_grade",
                             "right_foramen_to_check", "left_foramen_width_mm")] == ["nan", "0", "", "True", "5.0000"]


def test_a_path_not_in_utf_8_is_refused_which_simpleitk_would_abort_on(phantom_files, tmp_path, capsys):
    from SpinalStenosisLib.volume_io import image_suffix

    image, _ = phantom_files
    suffix = image_suffix(image.name)
    named = tmp_path / "Wirbels\udce4ule"  # the byte 0xE4 (Latin-1 ä), as Python names it in a path
    (named / "series").mkdir(parents=True)
    shutil.copy(image, named / "scan.nii")  # not read: refused by its path
    shutil.copy(image, tmp_path / f"scan{suffix}")
    code, err = run(capsys, "measure", named / "scan.nii", "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT and "Wirbels\\xe4ule/scan.nii: the path holds bytes that are not UTF-8" in err
    (tmp_path / "study" / "S\udce4").mkdir(parents=True)  # a folder in a study (a note so named is not read)
    (tmp_path / "study" / "Notiz f\udcfcr.txt").write_text("not read", encoding="utf-8")
    code, err = run(capsys, "measure", tmp_path / "study", "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT and "study: 1 of the names in it hold bytes that are not UTF-8 (e.g. S\\xe4" in err
    code, err = run(capsys, "measure", tmp_path / f"scan{suffix}", "--out", named / "out")
    assert code != 0 and "ule/out: the output folder's path holds bytes that are not UTF-8" in err
    assert not (named / "out").exists()
    shutil.copy(image, tmp_path / f"other{suffix}")  # of several inputs, the others are still measured
    code, err = run(capsys, "measure", named / "scan.nii", tmp_path / f"other{suffix}", "--out",
                    tmp_path / "several")
    assert code == cli.EXIT_INPUT and "ule/scan.nii: the path holds bytes that are not UTF-8" in err
    assert (tmp_path / "several" / "other" / "measurements.csv").exists(), err


def test_a_pipe_given_as_the_image_or_the_masks_is_refused_not_waited_on_for_ever(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    os.mkfifo(tmp_path / "pipe")  # reading it would wait for a writer that never comes
    for inputs in (("pipe",), (image, "--masks", "pipe")):
        code, err = run(capsys, "measure", *[tmp_path / item if item == "pipe" else item for item in inputs], "--out",
                        tmp_path / "out")
        assert code == cli.EXIT_INPUT and "pipe: neither a file nor a folder (a device, a pipe or a socket)" in err


def test_several_inputs_need_distinct_names_and_take_no_masks_or_scene(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    twin = tmp_path / "phantom.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(image)), str(twin))
    for option in ("--masks", "--other-contrast"):
        code, err = run(capsys, "measure", image, twin, option, labels, "--out", tmp_path / "out")
        assert code == cli.EXIT_INPUT and "--masks, --scene, --levels and --other-contrast take one input" in err
    code, err = run(capsys, "measure", image, twin, "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT and "same output folder (phantom)" in err
    assert not (tmp_path / "out").exists()


def test_existing_outputs_need_overwrite_and_stay_untouched(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    out = tmp_path / "out"
    assert run(capsys, "measure", image, "--masks", labels, "--out", out, "--quiet")[0] == 0
    before = (out / "measurements.csv").read_bytes()
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", out, "--quiet")
    assert code != 0 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "measurements.csv").read_bytes() == before
    assert run(capsys, "measure", image, "--masks", labels, "--out", out, "--quiet", "--overwrite")[0] == 0


def test_a_file_where_the_output_folder_must_be_is_said_before_measuring(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    (tmp_path / "a file").write_text("")
    for out, why in ((tmp_path / "a file", "it"), (tmp_path / "a file" / "out", tmp_path / "a file")):
        code, err = run(capsys, "measure", image, "--masks", labels, "--out", out)
        assert code == cli.EXIT_INPUT and err == f"spinal-stenosis: error: {out}: {why} exists and is not a folder\n"


def test_never_writes_next_to_the_input(phantom_files, capsys):
    image, labels = phantom_files
    before = sorted(p.name for p in image.parent.iterdir())
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", image.parent)
    assert code != 0 and "input's own folder" in err
    assert sorted(p.name for p in image.parent.iterdir()) == before


def test_a_failure_while_writing_leaves_nothing(phantom_files, tmp_path, capsys, monkeypatch):
    image, labels = phantom_files

    def broken_report(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "write_report", broken_report)
    with pytest.raises(OSError):
        cli.main(["measure", str(image), "--masks", str(labels), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ctrl_c_exits_130_and_writes_nothing(phantom_files, tmp_path, capsys, monkeypatch):
    image, labels = phantom_files

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "write_csv", interrupted)
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", tmp_path / "out")
    assert code == 130 and "nothing was written" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_labels_with_nothing_in_them_give_nan(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    empty = tmp_path / "empty.nii.gz"
    source = sitk.ReadImage(str(labels))
    blank = sitk.Image(source.GetSize(), sitk.sitkUInt8)
    blank.CopyInformation(source)
    sitk.WriteImage(blank, str(empty))
    code, err = run(capsys, "measure", image, "--masks", empty, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "out" / "measurements.csv", encoding="utf-8")))
    assert all(row["canal_ap_mm"] == "nan" and row["canal_ap_grade"] == "" for row in rows)


def test_a_2d_image_is_measured_as_a_displayed_axial_slice_with_pixel_mm(tmp_path, capsys, monkeypatch):
    from SpinalStenosisLib import inference

    image, labels, _ = phantom_arrays(n_slices=1)  # [row, column] is the radiological display: left foramen 3 mm
    png, masks = tmp_path / "slice.png", tmp_path / "slice_masks.png"
    sitk.WriteImage(sitk.GetImageFromArray(image[0].astype(np.uint16)), str(png))
    sitk.WriteImage(sitk.GetImageFromArray(labels[0]), str(masks))
    code, err = run(capsys, "measure", png, "--out", tmp_path / "refused")
    assert code == cli.EXIT_INPUT and "2-D image without slice geometry" in err and "--pixel-mm" in err
    colour = tmp_path / "slice_in_colour.png"  # grey saved as RGB: read as the grey image
    grey = (image[0] // 4).astype(np.uint8)
    sitk.WriteImage(sitk.Compose([sitk.GetImageFromArray(grey)] * 3), str(colour))
    assert np.array_equal(open_axial(colour, pixel_mm=0.8).read_slice(0), grey)
    assert open_axial(colour, pixel_mm=0.8).colour_channels == {}
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: ThresholdSegmenter())
    for png, out, extra in ((png, tmp_path / "networks", ()), (png, tmp_path / "masks", ("--masks", masks)),
                            (colour, tmp_path / "colour", ("--masks", masks))):
        code, err = run(capsys, "measure", png, *extra, "--pixel-mm", 0.8, "--out", out, "--quiet")
        assert code == 0, err
        [row] = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))
        assert abs(float(row["canal_ap_mm"]) - 12.0) <= 1.0 and abs(float(row["canal_transverse_mm"]) - 18.0) <= 1.0
        assert abs(float(row["left_foramen_width_mm"]) - 3.0) <= 0.5  # the patient's left is the image's right
        assert abs(float(row["right_foramen_width_mm"]) - 4.0) <= 1.0
        written = sitk.ReadImage(str(out / "segmentation.nii.gz"))
        assert written.GetSize() == (96, 96, 1) and written.GetSpacing()[:2] == pytest.approx((0.8, 0.8))
        assert np.array_equal(sitk.GetArrayFromImage(written)[0] == 1, labels[0] == 1)
    resized = tmp_path / "resized_masks.png"  # the masks at 128 x 128 pixels: no place on the slice, refused
    sitk.WriteImage(sitk.Resample(sitk.GetImageFromArray(labels[0]), [128, 128], sitk.Transform(),
                                  sitk.sitkNearestNeighbor, [0, 0], [0.75, 0.75]), str(resized))
    code, err = run(capsys, "measure", png, "--masks", resized, "--pixel-mm", 0.8, "--out", tmp_path / "resized")
    assert code == cli.EXIT_INPUT and "different grid" in err


def test_a_picture_whose_exif_orientation_turns_it_is_measured_as_displayed_its_foramina_on_their_sides(
        tmp_path, capsys, monkeypatch):
    from PIL import Image

    from SpinalStenosisLib import inference

    image, labels, _ = phantom_arrays(n_slices=1)  # as displayed: left foramen 3 mm on the image's right
    turned, masks = tmp_path / "turned.png", tmp_path / "masks.png"
    picture = Image.fromarray(np.rot90(image[0], 1).astype(np.uint16))  # stored turned 90° anticlockwise ...
    exif = picture.getexif()
    exif[0x0112] = 6  # ... and to be turned 90° clockwise for display, as a phone or a tool may write a picture
    picture.save(turned, exif=exif)
    sitk.WriteImage(sitk.GetImageFromArray(labels[0]), str(masks))  # drawn on the picture as displayed
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: ThresholdSegmenter())
    for out, extra in ((tmp_path / "networks", ()), (tmp_path / "masks", ("--masks", masks))):
        code, err = run(capsys, "measure", turned, *extra, "--pixel-mm", 0.8, "--out", out, "--quiet")
        assert code == 0 and "EXIF orientation has it turned 90° clockwise for display" in err, err
        [row] = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))
        assert abs(float(row["canal_ap_mm"]) - 12.0) <= 1.0 and abs(float(row["canal_transverse_mm"]) - 18.0) <= 1.0
        assert abs(float(row["left_foramen_width_mm"]) - 3.0) <= 0.5 and float(row["right_foramen_width_mm"]) > 3.0


def test_an_export_clipped_at_its_bright_end_is_warned_of(tmp_path, capsys):
    image, labels, _ = phantom_arrays(n_slices=1)
    noisy = image[0] / 4 + np.random.default_rng(0).normal(0.0, 8.0, image[0].shape)
    masks = tmp_path / "masks.png"
    sitk.WriteImage(sitk.GetImageFromArray(labels[0]), str(masks))
    for name, top in (("full", noisy.max()), ("clipped", np.percentile(noisy[labels[0] == 1], 50))):
        exported = np.round(255 * np.clip((noisy - noisy.min()) / (top - noisy.min()), 0, 1)).astype(np.uint8)
        sitk.WriteImage(sitk.GetImageFromArray(exported), str(tmp_path / f"{name}.png"))
        code, err = run(capsys, "measure", tmp_path / f"{name}.png", "--masks", masks, "--pixel-mm", 0.8,
                        "--out", tmp_path / name, "--quiet")
        assert code == 0, err
        written = json.loads((tmp_path / name / "measurements.json").read_text(encoding="utf-8"))
        warned = [w for w in written["input_warnings"] if w.startswith("the image is clipped at its bright end")]
        assert len(warned) == (name == "clipped") and ("clipped at its bright end" in err) == (name == "clipped")


def test_colour_channels_are_images_of_their_own_unless_blank_or_alike():
    from SpinalStenosisLib.volume_io import distinct_colours

    rng = np.random.default_rng(0)
    grey = rng.uniform(0, 200, (32, 32))
    other = rng.uniform(0, 200, (32, 32))

    def colours(*channels):
        return distinct_colours(np.stack(channels, axis=-1))

    assert colours(grey, grey, grey) == [] and colours(grey, grey + rng.normal(0, 2, grey.shape), 0.5 * grey) == []
    assert colours(grey, other, grey) == [0, 1] and colours(np.zeros_like(grey), grey, other) == [1, 2]
    assert colours(grey, other, grey, other) == [0, 1] and colours(grey) == []
    third = rng.uniform(0, 200, (32, 32))
    assert colours(grey, other, third) == [0, 1, 2]
    assert colours(grey, other, (grey + other) / 2 + 9 * third) == [0, 1, 2]  # mostly an image of its own
    mean = np.round((grey + other) / 2)  # as an 8-bit composite's third colour may hold: a blend, no image of its own
    assert colours(grey, other, mean) == [0, 1] and colours(mean, grey, other) == [1, 2]
    assert colours(grey, 0.3 * grey + 0.7 * other + rng.normal(0, 1, grey.shape), other) == [0, 2]


def test_a_colour_composite_is_measured_on_the_channel_network_2_is_surest_of(tmp_path, capsys, monkeypatch):
    from SpinalStenosisLib import inference

    image, labels, _ = phantom_arrays(n_slices=1)  # canal 900, foramina 500, background 100
    composite = tmp_path / "composite.png"  # red: another contrast; green: the phantom; blue: blank
    channels = [other_contrast(labels[0]).astype(np.uint16), image[0].astype(np.uint16), np.zeros((96, 96), np.uint16)]
    sitk.WriteImage(sitk.Compose([sitk.GetImageFromArray(c) for c in channels]), str(composite))
    volume = open_axial(composite, pixel_mm=0.8)
    assert sorted(volume.colour_channels) == ["green", "red"]  # the blank channel is no image
    assert np.allclose(volume.read_slice(0), sum(channels) / 3)  # displayed (and for --masks): the mean
    steps = []
    measured = pipeline.measure_with_segmenter(volume, BrightnessSegmenter(),
                                               progress=lambda done, total: steps.append((done, total)))
    assert steps[-1] == (2, 2) and np.array_equal(measured.volume.read_slice(0), channels[1])
    assert measured.measurements[0].confidences["canal_confidence"] == pytest.approx(0.9)
    [warning] = measured.warnings
    assert "measured on its green channel" in warning and "confidence 0.90; red 0.81" in warning
    assert pipeline.measure_with_segmenter(volume, BrightnessSegmenter()).warnings == [warning]  # again: said once
    [warning] = pipeline.measure_with_segmenter(open_axial(composite, pixel_mm=0.8), ThresholdSegmenter(0.0)).warnings
    assert "measured on its red channel, the first; network 2 finds no canal on any" in warning
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: BrightnessSegmenter())
    code, err = run(capsys, "measure", composite, "--pixel-mm", 0.8, "--out", tmp_path / "out")
    assert code == 0 and "green channel" in err
    assert [line for line in err.splitlines() if line.startswith("PROGRESS")] == ["PROGRESS 0/1", "PROGRESS 1/1"]
    written = json.loads((tmp_path / "out" / "measurements.json").read_text(encoding="utf-8"))
    assert "green channel" in written["input_warnings"][0]
    assert abs(written["slices"][0]["canal_ap_mm"] - 12.0) <= 1.0


def test_a_segmenter_that_averages_contrasts_measures_the_surest_channel_again_with_the_others_beside_it(tmp_path):
    image, labels, _ = phantom_arrays(n_slices=1)  # canal 900
    composite = tmp_path / "composite.png"  # red: another contrast (canal 810); green: the phantom; blue: blank
    channels = [other_contrast(labels[0]).astype(np.uint16), image[0].astype(np.uint16), np.zeros((96, 96), np.uint16)]
    sitk.WriteImage(sitk.Compose([sitk.GetImageFromArray(c) for c in channels]), str(composite))
    steps, segmenter = [], AveragingSegmenter()
    measured = pipeline.measure_with_segmenter(open_axial(composite, pixel_mm=0.8), segmenter,
                                               progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)]  # each channel, then the surest with the other beside it
    assert [images[0].shape for images in segmenter.given] == [(96, 96), (96, 96), (2, 96, 96)]
    assert np.array_equal(segmenter.given[-1][0], np.stack(channels[1::-1]))  # green (the surest), then red
    assert measured.measurements[0].confidences["canal_confidence"] == pytest.approx(0.855)  # (0.90 + 0.81) / 2
    assert np.array_equal(measured.volume.read_slice(0), channels[1]) and measured.colour_channel == "green"
    [warning] = measured.warnings
    assert ("measured on its green channel, where network 2 is surest of the canal (confidence 0.90; red 0.81), "
            "network 2's outlines averaged over its red and green channels, not on the mean of its colours") in warning


def test_another_contrast_of_the_same_slices_is_averaged_over_by_network_2(tmp_path, capsys, monkeypatch):
    from SpinalStenosisLib import inference

    image, labels, geometry = phantom_arrays()  # canal 900 (confidence 0.90); the other contrast's 810 (0.81)
    write_image(tmp_path / "t2.nii.gz", image, geometry)
    write_image(tmp_path / "t1.nii.gz", other_contrast(labels), geometry)
    write_image(tmp_path / "moved.nii.gz", other_contrast(labels), tilted(geometry, 0.0, (0.0, 0.0, 2.0)))
    segmenter = AveragingSegmenter()
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: segmenter)
    code, err = run(capsys, "measure", tmp_path / "t2.nii.gz", "--other-contrast", tmp_path / "t1.nii.gz", "--out",
                    tmp_path / "out", "--quiet")
    assert code == 0, err
    assert [images[0].shape for images in segmenter.given] == [(2, 96, 96)]  # one batch: each slice, both contrasts
    assert np.array_equal(segmenter.given[0][1], np.stack([image[1], other_contrast(labels[1])]))  # the input first
    written = json.loads((tmp_path / "out" / "measurements.json").read_text(encoding="utf-8"))
    assert [s["canal_confidence"] for s in written["slices"]] == [pytest.approx(0.855)] * 3  # (0.90 + 0.81) / 2
    assert written["input_warnings"] == [
        "network 2's outlines were averaged over the image and t1.nii.gz, another contrast of the same slices"]
    code, err = run(capsys, "measure", tmp_path / "t2.nii.gz", "--other-contrast", tmp_path / "moved.nii.gz",
                    "--out", tmp_path / "moved")
    assert code == cli.EXIT_INPUT and "moved.nii.gz: another contrast must lie on the input's voxels" in err
    labels_path = tmp_path / "labels.nii.gz"
    write_labels(labels_path, labels, geometry)
    code, err = run(capsys, "measure", tmp_path / "t2.nii.gz", "--other-contrast", tmp_path / "t1.nii.gz", "--masks",
                    labels_path, "--out", tmp_path / "masks")
    assert code == cli.EXIT_INPUT and "another contrast is for the networks" in err
    assert not (tmp_path / "moved").exists() and not (tmp_path / "masks").exists()


def test_a_colour_volume_or_dicom_series_is_measured_on_its_surest_channel_with_what_its_header_says(
        tmp_path, capsys, monkeypatch):
    from SpinalStenosisLib import inference

    image, labels, geometry = phantom_arrays()  # canal 900: BrightnessSegmenter is surest of it on green (0.90)
    colours = np.stack([other_contrast(labels), image, np.zeros_like(image)], axis=-1)  # red 0.81, blue blank
    nrrd = tmp_path / "composite.nrrd"
    composite = sitk.GetImageFromArray(colours.astype(np.uint16), isVector=True)
    geometry.apply_to_sitk(composite)
    sitk.WriteImage(composite, str(nrrd))
    volume = open_axial(nrrd)
    assert sorted(volume.colour_channels) == ["green", "red"] and volume.layout.geometry.matches(geometry)
    assert np.allclose(volume.read_slice(1), colours[1].mean(axis=-1))
    series = tmp_path / "series"
    series.mkdir()
    write_dicom_series(series, colours, geometry, series=1, tags=(("0018|0015", "CSPINE"), ("0018|0050", "7.0")))
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: BrightnessSegmenter())
    for source, out in ((nrrd, tmp_path / "nrrd"), (series, tmp_path / "dicom")):
        code, err = run(capsys, "measure", source, "--out", out, "--quiet")
        assert code == 0, err
        written = json.loads((out / "measurements.json").read_text(encoding="utf-8"))
        assert [w[:29] for w in written["input_warnings"]] == ["a colour image whose channels"]
        assert "measured on its green channel" in written["input_warnings"][0]
        assert [abs(s["canal_ap_mm"] - 12.0) <= 1.0 for s in written["slices"]] == [True] * 3
        assert written["region"] == ("cervical" if source == series else "lumbar")  # the header's CSPINE
    [dicom] = open_axial_blocks(series)
    assert dicom.slice_thickness_mm == 7.0 and sorted(dicom.colour_channels) == ["green", "red"]
    dicom.warnings.append("read with a caveat")
    run_on_channel = pipeline.measure_with_segmenter(dicom, BrightnessSegmenter())
    assert (run_on_channel.volume.named_region, run_on_channel.volume.slice_thickness_mm) == ("cervical", 7.0)
    assert [m.image_number for m in run_on_channel.measurements] == ["1", "2", "3"]  # each slice's Instance Number
    assert run_on_channel.warnings[0] == "read with a caveat" and "green channel" in run_on_channel.warnings[1]
    write_labels(tmp_path / "labels.nii.gz", labels, geometry)
    colour_labels = sitk.GetImageFromArray(np.stack([labels] * 3, axis=-1), isVector=True)
    geometry.apply_to_sitk(colour_labels)
    sitk.WriteImage(colour_labels, str(tmp_path / "colour_labels.nrrd"))
    code, err = run(capsys, "measure", nrrd, "--masks", tmp_path / "colour_labels.nrrd", "--out", tmp_path / "m")
    assert code == cli.EXIT_INPUT and "a colour image; labels need one value (0-3) per voxel" in err


def test_pixel_mm_is_refused_for_3d_images_and_must_be_a_plausible_size(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    code, err = run(capsys, "measure", image, "--masks", labels, "--pixel-mm", 0.8, "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT and "--pixel-mm is for 2-D images only" in err
    flat = tmp_path / "flat.png"
    sitk.WriteImage(sitk.Image([32, 32], sitk.sitkUInt8), str(flat))
    for pixel_mm in (0, 1e9):
        code, err = run(capsys, "measure", flat, "--pixel-mm", pixel_mm, "--out", tmp_path / "out")
        assert code == cli.EXIT_INPUT and "--pixel-mm must be a positive size in mm, at most 10" in err


def _bad_inputs(tmp_path):
    image, labels, geometry = phantom_arrays()
    cases = {}
    text = tmp_path / "notes.nii.gz"
    text.write_text("not an image", encoding="utf-8")
    cases["not an image"] = (text, "not an image")
    cases["missing"] = (tmp_path / "missing.nii.gz", "no such file")
    flat = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.Image([32, 32], sitk.sitkFloat32), str(flat))
    cases["2-D"] = (flat, "2-D image")
    two = tmp_path / "two_components.nrrd"  # e.g. a complex image's real and imaginary parts
    sitk.WriteImage(sitk.Image([32, 32, 3], sitk.sitkVectorFloat32, 2), str(two))
    cases["2 components"] = (two, "2-component image; a grey-scale (or RGB) MR image is needed (a complex image's")
    four = tmp_path / "four.nrrd"
    sitk.WriteImage(sitk.Image([8, 8, 3, 2], sitk.sitkFloat32), str(four))
    cases["4-D"] = (four, "4-D image")
    empty = tmp_path / "empty.nhdr"
    empty.write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 0 4 4\nencoding: raw\ndata file: empty.raw\n",
                     encoding="utf-8")
    (tmp_path / "empty.raw").write_bytes(b"")
    cases["empty"] = (empty, "")
    pages = tmp_path / "pages.tif"  # a multi-page TIFF: a 3-D image whose spacing is not the scan's
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 32, 32), np.uint8)), str(pages))
    cases["TIFF pages"] = (pages, "a stack of 3 pictures (.tif pages) has no patient geometry")
    return cases


@pytest.mark.parametrize("case", ["not an image", "missing", "2-D", "2 components", "4-D", "empty", "TIFF pages"])
def test_bad_images_get_a_one_line_error(tmp_path, capsys, case):
    path, message = _bad_inputs(tmp_path)[case]
    labels = tmp_path / "labels.nii.gz"
    image, label_array, geometry = phantom_arrays()
    write_labels(labels, label_array, geometry)
    code, err = run(capsys, "measure", path, "--masks", labels, "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT
    assert err.startswith("spinal-stenosis: error:") and len(err.strip().splitlines()) == 1
    assert message in err
    assert "Traceback" not in err


def test_labels_on_another_grid_are_refused(phantom_files, tmp_path, capsys):
    image, _ = phantom_files
    _, labels, geometry = phantom_arrays(n_slices=4)
    other = tmp_path / "other.nii.gz"
    write_labels(other, labels, geometry)  # a slice more than the image: its canal and foramina lie beyond it
    code, err = run(capsys, "measure", image, "--masks", other, "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT
    assert "labelled voxels lie beyond the image (labels on 96x96x4 voxels, the image on 96x96x3" in err
    source = sitk.ReadImage(str(phantom_files[1]))
    half_a_pixel = sitk.Image(source)
    half_a_pixel.SetOrigin([o + s / 2 for o, s in zip(source.GetOrigin(), source.GetSpacing())])
    sitk.WriteImage(half_a_pixel, str(other))
    code, err = run(capsys, "measure", image, "--masks", other, "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT and "different grid" in err


def test_labels_on_a_box_of_the_image_s_grid_or_reoriented_are_measured_on_its_grid(phantom_files, tmp_path, capsys):
    image, labels = phantom_files
    source = sitk.ReadImage(str(labels))
    values = sitk.GetArrayFromImage(source)
    k, j, i = (np.nonzero(values)[axis] for axis in range(3))
    box = source[int(i.min()) - 2:int(i.max()) + 3, int(j.min()) - 1:int(j.max()) + 2, :]  # keeps its place in space
    assert box.GetSize()[:2] < source.GetSize()[:2]
    sitk.WriteImage(box, str(tmp_path / "box.nii.gz"))
    code, err = run(capsys, "measure", image, "--masks", labels, "--out", tmp_path / "whole", "--quiet")
    assert code == 0, err
    code, err = run(capsys, "measure", image, "--masks", tmp_path / "box.nii.gz", "--out", tmp_path / "box", "--quiet")
    assert code == 0, err
    for name in ("measurements.csv", "rulers.mrk.json"):
        assert (tmp_path / "box" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    for orientation in ("RAS", "SAL"):  # the labels reoriented by another tool: their voxels the image's
        sitk.WriteImage(sitk.DICOMOrient(source, orientation), str(tmp_path / f"{orientation}.nii.gz"))
        code, err = run(capsys, "measure", image, "--masks", tmp_path / f"{orientation}.nii.gz", "--out",
                        tmp_path / orientation, "--quiet")
        assert code == 0, err
        assert (tmp_path / orientation / "measurements.csv").read_bytes() == (
            tmp_path / "whole" / "measurements.csv").read_bytes()
    beyond = sitk.Image(box)
    beyond.SetOrigin(source.TransformIndexToPhysicalPoint([int(source.GetSize()[0]) - 3, 0, 0]))
    sitk.WriteImage(beyond, str(tmp_path / "beyond.nii.gz"))  # the box moved over the image's edge
    code, err = run(capsys, "measure", image, "--masks", tmp_path / "beyond.nii.gz", "--out", tmp_path / "x")
    assert code == cli.EXIT_INPUT and "labelled voxels lie beyond the image" in err


def test_unknown_label_values_are_refused(phantom_files, tmp_path, capsys):
    image, _ = phantom_files
    _, labels, geometry = phantom_arrays()
    labels[0, 5, 5] = 7
    odd = tmp_path / "odd.nii.gz"
    write_labels(odd, labels, geometry)
    code, err = run(capsys, "measure", image, "--masks", odd, "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT and "unknown label values [7]" in err


def test_a_label_image_or_a_ct_given_as_the_image_is_refused_and_named_among_several_inputs(
        phantom_files, tmp_path, capsys, monkeypatch):
    from SpinalStenosisLib import inference

    image, labels = phantom_files
    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: ThresholdSegmenter())
    code, err = run(capsys, "measure", labels, "--out", tmp_path / "one")
    assert code == cli.EXIT_INPUT and not (tmp_path / "one").exists()
    assert f"{labels}: the image holds only the values 0, 1, 2, 3: a label image" in err
    code, err = run(capsys, "measure", labels, image, "--out", tmp_path / "both", "--quiet")
    assert code == cli.EXIT_INPUT and f"{labels}: the image holds only the values" in err
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["phantom", STUDIES_FILE]
    pixels, _, geometry = phantom_arrays()
    ct = tmp_path / "ct.nii.gz"
    write_image(ct, np.where(pixels == pixels.min(), -1000.0, pixels), geometry)  # air around it, as in a CT
    code, err = run(capsys, "measure", ct, "--out", tmp_path / "ct")
    assert code == cli.EXIT_INPUT and ("as fat and air are in a CT's Hounsfield units: a CT image (if it is an MR "
                                       "image padded with -1000 beyond its imaged area, set that padding to 0), not an "
                                       "MR") in err


def test_an_image_at_its_extremes_almost_everywhere_is_measured_with_a_warning_that_it_may_be_a_probability_map(
        phantom_files, tmp_path, capsys, monkeypatch):
    from scipy import ndimage

    from SpinalStenosisLib import inference

    monkeypatch.setattr(inference, "load_segmenter", lambda **kwargs: ThresholdSegmenter())
    pixels, _, geometry = phantom_arrays()
    soft = tmp_path / "soft.nii.gz"
    write_image(soft, ndimage.gaussian_filter(pixels - pixels.min(), (0, 1, 1)), geometry)  # as a network's output
    code, err = run(capsys, "measure", soft, "--out", tmp_path / "soft")
    assert code == 0 and ("are at its extremes (within 1 % of its brightest value from 0 or from it), as in a mask "
                          "or a probability map") in err
    image, _ = phantom_files  # the same structures on a grey background
    code, err = run(capsys, "measure", image, "--out", tmp_path / "image")
    assert code == 0 and "probability map" not in err


def test_sagittal_input_is_refused_with_advice(tmp_path, capsys):
    image = sitk.Image([12, 64, 64], sitk.sitkFloat32)
    image.SetSpacing((4.0, 0.7, 0.7))
    path = tmp_path / "sagittal.nii.gz"
    sitk.WriteImage(image, str(path))
    code, err = run(capsys, "measure", path, "--masks", path, "--out", tmp_path / "out")
    assert code == cli.EXIT_INPUT and "sagittal stack, 4.0 mm slices: load the axial series" in err


@pytest.mark.parametrize("tags, named", [((("0018|0015", "CSPINE"),), "cervical"),
                                         ((("0008|103e", "t2_tse_tra HWS"), ("0008|1030", "MRT LWS")), "cervical"),
                                         ((("0008|1030", "MR L-SPINE W/O"),), "lumbar"),
                                         ((("0018|0015", "TSPINE"),), "thoracic"),
                                         ((("0008|103e", "AX T2 TL-SPINE"),), None)])
def test_the_region_named_in_a_dicom_header_chooses_the_cut_offs(tmp_path, capsys, tags, named):
    image, labels, geometry = phantom_arrays()
    series = tmp_path / "series"
    series.mkdir()
    write_dicom_series(series, image, geometry, series=1, tags=tags)
    write_labels(tmp_path / "labels.nii.gz", labels, geometry)
    for region in (None, "lumbar"):
        out = tmp_path / f"out-{region}"
        code = cli.main([str(a) for a in ("measure", series, "--masks", tmp_path / "labels.nii.gz", "--out", out,
                                          *(("--region", region) if region else ()))])
        printed = capsys.readouterr()
        assert code == 0, printed.err
        used = region or named or "lumbar"  # --region overrides the header; without either, lumbar
        assert json.loads((out / "measurements.json").read_text(encoding="utf-8"))["region"] == used
        assert (f"the DICOM header names the {named} spine" in printed.out) == (region is None and named is not None)
        rows = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))
        assert [r["canal_ap_grade"] for r in rows] == [grade({k: float(r[k]) for k in MEASUREMENT_COLUMNS}, used)[
            "canal_ap_grade"] for r in rows]
        assert all(r["canal_ap_grade"] == "" for r in rows) == (used == "thoracic")  # a thoracic canal: no cut-offs
        assert ("the canal not graded: the DICOM header names the thoracic spine" in printed.out) == (
            used == "thoracic")


def test_series_names_which_series_of_a_study_folder_is_measured(tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    for number, description, n_slices in ((3, "AX T2 TSE", 3), (7, "AX T1 TSE", 2)):
        image, labels, geometry = phantom_arrays(n_slices=n_slices)
        write_dicom_series(study, image, geometry, series=number,
                           tags=(("0020|0011", str(number)), ("0008|103e", description)))
        write_labels(tmp_path / f"labels{number}.nii.gz", labels, geometry)
    for series, measured in ((None, 3), ("7", 7), ("t1", 7)):
        out = tmp_path / f"out-{series}"
        code = cli.main([str(a) for a in ("measure", study, "--masks", tmp_path / f"labels{measured}.nii.gz", "--out",
                                          out, *(("--series", series) if series else ()))])
        printed = capsys.readouterr()
        assert code == 0, printed.err
        assert len(list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))) == {3: 3, 7: 2}[measured]
        warnings = json.loads((out / "measurements.json").read_text(encoding="utf-8"))["input_warnings"]
        assert warnings == ([] if series else [printed.err.split(f"{study}: ", 1)[1].strip()])
        assert series or warnings[0].startswith('the DICOM folder holds 2 axial series: measured series 3 ("AX T2')
    code, err = run(capsys, "measure", study, "--series", "sag", "--masks", tmp_path / "labels3.nii.gz", "--out",
                    tmp_path / "none")
    assert code == cli.EXIT_INPUT and "no axial series is numbered 'sag'" in err
    assert 'series 3 ("AX T2 TSE", 3 slices), series 7 ("AX T1 TSE", 2 slices)' in err


def test_a_series_with_a_slice_missing_is_measured_in_two_blocks_each_slice_where_imaged(tmp_path, capsys):
    image, labels, geometry = phantom_arrays(n_slices=5)  # slices 4 mm apart from z = 0
    series, earlier = tmp_path / "series", tmp_path / "earlier"
    series.mkdir()
    write_dicom_series(series, image, geometry, series=1)
    (series / "series1_slice002.dcm").unlink()
    for k, (block, slices) in enumerate(zip(open_axial_blocks(series), ([0, 1], [3, 4])), 1):
        (earlier / f"block-{k}").mkdir(parents=True)
        write_labels(earlier / f"block-{k}" / "segmentation.nii.gz", labels[slices], block.source_geometry)
    out = tmp_path / "out"
    code = cli.main([str(a) for a in ("measure", series, "--masks", earlier, "--out", out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "the DICOM series is in 2 blocks (parted by gaps): each block is measured" in printed.out
    said = [line for line in printed.err.splitlines() if line.startswith("spinal-stenosis: warning:")]
    assert said == [f"spinal-stenosis: warning: {series}: the DICOM series' slices lie in 2 runs of evenly spaced "
                    "slices parted by wider gaps (8.0 mm; parallel blocks, or a slice missing): each run is measured "
                    "as a block of its own, so that z_mm and the places of the rulers and masks along the spine are "
                    "exact"]  # once, for the whole series
    for k, z_mm in ((1, [0.0, 4.0]), (2, [12.0, 16.0])):
        rows = list(csv.DictReader(open(out / f"block-{k}" / "measurements.csv", encoding="utf-8")))
        assert [float(r["z_mm"]) for r in rows] == pytest.approx(z_mm, abs=1e-3)
        document = json.loads((out / f"block-{k}" / "measurements.json").read_text(encoding="utf-8"))
        assert document["input_warnings"] == [said[0].split(f"{series}: ", 1)[1]]
    whole = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))  # the series in one table
    assert [r["block"] for r in whole] == ["block-1", "block-1", "block-2", "block-2"]
    assert [float(r["z_mm"]) for r in whole] == pytest.approx([0.0, 4.0, 12.0, 16.0], abs=1e-3)


def test_an_enhanced_multi_frame_file_is_measured_as_a_series_in_blocks_with_its_image_set_named(tmp_path, capsys):
    image, labels, geometry = phantom_arrays(n_slices=5)  # slices 4 mm apart from z = 0
    imaged = [4, 3, 1, 0]  # from head to foot, slice 2 missing
    planes = frame_planes_lps(image, geometry)
    water, fat = "ORIGINAL\\PRIMARY\\WATER\\NONE", "ORIGINAL\\PRIMARY\\FAT\\NONE"
    dixon, earlier = tmp_path / "dixon.dcm", tmp_path / "earlier"
    write_enhanced_mr(dixon, np.concatenate([image[imaged], image[imaged] // 4]), [planes[k] for k in imaged * 2],
                      pixel_mm=0.8, frame_types=[water] * 4 + [fat] * 4)
    for k, slices in enumerate(([3, 4], [0, 1]), 1):  # the blocks in the order of their first frames
        (earlier / f"block-{k}").mkdir(parents=True)
        write_labels(earlier / f"block-{k}" / "segmentation.nii.gz", labels[slices],
                     open_axial_blocks(dixon)[k - 1].source_geometry)
    out = tmp_path / "out"
    code = cli.main([str(a) for a in ("measure", dixon, "--image-set", "FAT", "--masks", earlier, "--out", out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "the DICOM series is in 2 blocks (parted by gaps)" in printed.out
    assert f'measured those of Image Type "{fat}", as --image-set asked' in printed.err
    whole = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))
    assert [(r["block"], float(r["z_mm"]), r["image_number"]) for r in whole] == [  # each slice where imaged, and
        ("block-1", 12.0, "6"), ("block-1", 16.0, "5"), ("block-2", 0.0, "8"), ("block-2", 4.0, "7")]  # its frame
    assert [float(r["canal_transverse_mm"]) for r in whole] == pytest.approx([24, 26, 18, 20], abs=1.0)  # 18 + 2k mm
    worst = json.loads((out / "series.json").read_text(encoding="utf-8"))["worst_findings"]["canal_area_mm2"]
    assert (worst["block"], worst["slice_index"], worst["image_number"]) == ("block-2", 0, "8")  # the smallest sac


def test_image_set_names_which_echo_of_a_dual_echo_series_is_measured(tmp_path, capsys):
    image, labels, geometry = phantom_arrays(n_slices=3)
    series = tmp_path / "series"
    series.mkdir()
    for k, echo_ms in enumerate(("20", "100")):
        write_dicom_series(series, image, geometry, series=1, first_instance=3 * k, tags=(("0018|0081", echo_ms),))
    write_labels(tmp_path / "labels.nii.gz", labels, geometry)
    for image_set, why in ((None, "the longest echo"), ("20", "as --image-set asked")):
        out = tmp_path / f"out-{image_set}"
        code = cli.main([str(a) for a in ("measure", series, "--masks", tmp_path / "labels.nii.gz", "--out", out,
                                          *(("--image-set", image_set) if image_set else ()))])
        printed = capsys.readouterr()
        assert code == 0, printed.err
        assert f'measured those of Echo Time "{image_set or 100}", {why}' in printed.err
        assert len(list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))) == 3  # one echo's slices
    code, err = run(capsys, "measure", series, "--image-set", "50", "--masks", tmp_path / "labels.nii.gz", "--out",
                    tmp_path / "none")
    assert code == cli.EXIT_INPUT and "--image-set '50' names none of the series' images at each slice position" in err


def test_a_dicom_series_in_angled_blocks_is_measured_block_by_block(phantom_files, tmp_path, capsys):
    image, labels, geometry = phantom_arrays(n_slices=2)
    blocks = (geometry, tilted(geometry, 12.0, (0.0, 0.0, 25.0)))
    series, earlier = tmp_path / "series", tmp_path / "earlier"
    series.mkdir()
    for k, block in enumerate(blocks):
        write_dicom_series(series, image, block, series=1, first_instance=2 * k)
        (earlier / f"block-{k + 1}").mkdir(parents=True)
        write_labels(earlier / f"block-{k + 1}" / "segmentation.nii.gz", labels, block)
    code, err = run(capsys, "measure", series, "--masks", earlier / "block-1" / "segmentation.nii.gz", "--out",
                    tmp_path / "refused")
    assert code == cli.EXIT_INPUT and "2 blocks" in err and "--masks takes the output folder" in err
    code, err = run(capsys, "measure", series, "--masks", earlier, "--levels", "0=L4-L5", "--out", tmp_path / "named")
    assert code == cli.EXIT_INPUT and "2 blocks" in err and "levels name whole blocks (e.g. block-1=" in err
    code, err = run(capsys, "measure", series, "--masks", earlier, "--levels", "block-3=L4-L5", "--out", tmp_path / "3")
    assert code == cli.EXIT_INPUT and "levels name block-3, but the DICOM series' blocks are block-1, block-2" in err
    named = tmp_path / "named"
    assert cli.main([str(a) for a in ("measure", series, "--masks", earlier, "--levels", "block-2=L4-L5,block-1=L3-L4",
                                      "--out", named)]) == 0
    said = capsys.readouterr().out
    for k, level in ((1, "L3-L4"), (2, "L4-L5")):
        document = json.loads((named / f"block-{k}" / "measurements.json").read_text(encoding="utf-8"))
        assert [entry["level"] for entry in document["slices"]] == [level, level]
        slice_index, image = re.search(rf"^{level}: canal AP [\d.]+ mm \([a-z ]+, block-{k} slice (\d), image (\d)\); ",
                                       said, re.MULTILINE).groups()
        assert int(image) == 2 * (k - 1) + int(slice_index) + 1  # the slice's Instance Number, as a viewer shows it
        [row] = csv.DictReader(open(named / f"block-{k}" / "levels.csv", encoding="utf-8"))
        assert (row["level"], row["canal_ap_slice"], row["canal_ap_image"]) == (level, slice_index, image)
    by_level = json.loads((named / "series.json").read_text(encoding="utf-8"))["worst_findings_by_level"]
    assert {level: {f["block"] for f in findings.values()} for level, findings in by_level.items()} == {
        "L3-L4": {"block-1"}, "L4-L5": {"block-2"}}
    by_image = tmp_path / "by-image"  # the images a viewer shows, across the blocks: instances 1-2, then 3-4
    assert cli.main([str(a) for a in ("measure", series, "--masks", earlier, "--levels",
                                      "image 2-3=L4-L5, image 4=L5-S1", "--out", by_image)]) == 0
    capsys.readouterr()
    assert [[(row["image_number"], row["level"]) for row in csv.DictReader(open(
        by_image / f"block-{k}" / "measurements.csv", encoding="utf-8"))] for k in (1, 2)] == [
        [("1", ""), ("2", "L4-L5")], [("3", "L4-L5"), ("4", "L5-S1")]]
    code, err = run(capsys, "measure", series, "--masks", earlier, "--levels", "image 5=L5-S1", "--out",
                    tmp_path / "5")
    assert code == cli.EXIT_INPUT and "levels name image 5, but the slices are images 1 to 4" in err
    out = tmp_path / "out"
    code = cli.main([str(a) for a in ("measure", series, "--masks", earlier, "--out", out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "spinal-stenosis: warning" not in printed.err
    assert "the DICOM series is in 2 blocks (slices at 2 angles): each block is measured" in printed.out
    said = re.search(r"^the whole series: narrowest canal AP ([\d.]+) mm \(\w+ stenosis\) on (block-[12]) slice (\d)",
                     printed.out, re.MULTILINE)  # the two blocks are alike: either holds the narrowest
    progress = [line for line in printed.err.splitlines() if line.startswith("PROGRESS")]
    assert progress[0] == "PROGRESS 2/4" and progress[-1] == "PROGRESS 4/4"  # through both blocks
    assert sorted(p.name for p in out.iterdir()) == ["block-1", "block-2", "measurements.csv", "report.png",
                                                     "series.json"]
    whole = list(csv.DictReader(open(out / "measurements.csv", encoding="utf-8")))  # every block's rows in one
    assert list(whole[0]) == ["block", *CSV_COLUMNS]
    assert whole == [{"block": f"block-{k}", **row} for k in (1, 2)
                     for row in csv.DictReader(open(out / f"block-{k}" / "measurements.csv", encoding="utf-8"))]
    from PIL import Image

    from SpinalStenosisLib.report import MARGIN_PX, VIEW_PX
    panel_px = VIEW_PX + 2 * MARGIN_PX  # the series' report shows a worst slice of each block, side by side
    assert Image.open(out / "report.png").width >= 2 * panel_px
    series = json.loads((out / "series.json").read_text(encoding="utf-8"))  # what the whole-series line says
    narrowest = series["worst_findings"]["canal_ap_mm"]
    assert (series["input"], series["blocks"]) == ("series", ["block-1", "block-2"])
    assert (f"{narrowest['value']:.1f}", narrowest["block"], str(narrowest["slice_index"])) == said.groups()
    for k, block in enumerate(blocks, 1):
        folder = out / f"block-{k}"
        assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_FILES)
        document = json.loads((folder / "measurements.json").read_text(encoding="utf-8"))
        assert (document["block"], document["blocks"], document["input_warnings"]) == (k, 2, [])
        assert all(abs(entry["canal_ap_mm"] - 12.0) <= 1.0 for entry in document["slices"])
        written = sitk.ReadImage(str(folder / "segmentation.nii.gz"))
        assert VolumeGeometry.from_sitk(written).matches(block, tolerance_mm=1e-3)
        assert np.array_equal(sitk.GetArrayFromImage(written), labels)
        ras_to_ijk = np.linalg.inv(block.ijk_to_ras)
        for entry in document["slices"]:  # every ruler lies in its own slice's plane of its own block
            for ruler in entry["rulers"].values():
                for point in (ruler["start_ras"], ruler["end_ras"]):
                    assert (ras_to_ijk @ [*point, 1.0])[2] == pytest.approx(entry["slice_index"], abs=1e-3)
    image_file, labels_file = phantom_files
    assert run(capsys, "measure", image_file, "--masks", labels_file, "--out", out, "--overwrite")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)  # the block folders are replaced too


def test_a_trained_network_packaged_into_a_models_folder_is_what_measure_uses(phantom_files, tmp_path, capsys):
    import torch

    from SpinalStenosisLib.crop import CROP_SIZE
    from SpinalStenosisLib.inference import load_segmenter
    from SpinalStenosisLib.models import read_manifest, sha256
    from SpinalStenosisLib.training import TrainConfig, train

    best = train(TrainConfig(network="canal", out_dir=tmp_path / "my_run", steps=1, batch_size=1, width=4,
                             validate_every=1, threads=1, batchnorm_batches=1))
    models = tmp_path / "models"
    code, err = run(capsys, "package-models", "--canal", best, "--out", models)
    assert code == 0, err
    shipped, packaged = read_manifest(), read_manifest(models)
    canal = packaged["models"]["canal"]
    assert canal["version"] == shipped["models"]["canal"]["version"] + "+my_run"
    assert canal["sha256"] == sha256(models / canal["file"]) and canal["network"]["width"] == 4
    assert canal["input_size"] == torch.load(best, weights_only=False)["input_size"] == CROP_SIZE
    assert canal["training_command"].startswith(f"spinal-stenosis train canal --out {tmp_path / 'my_run'} --steps 1")
    assert canal["training_data"] == "synthetic (SpinalStenosisLib.synth) only" and canal["trained_steps"] == 1
    assert packaged["models"]["roi"] == shipped["models"]["roi"] and "evaluation" not in packaged
    assert packaged["models"]["roi_second"] == shipped["models"]["roi_second"]
    assert packaged["licence"].startswith(shipped["licence"]) and "trained locally" in packaged["licence"]
    image, _ = phantom_files
    code, err = run(capsys, "measure", image, "--out", tmp_path / "out", "--models", models, "--quiet")
    assert code == 0, err
    document = json.loads((tmp_path / "out" / "measurements.json").read_text(encoding="utf-8"))
    assert document["models"]["canal"] == {"version": canal["version"], "sha256": canal["sha256"]}
    assert document["models_release"] == shipped["release"] + "+local"
    code, err = run(capsys, "package-models", "--canal", best, "--out", models)
    assert code == 4 and "--overwrite" in err
    # a canal run's best.pt, bare weights, not a torch file at all
    for wrong in (best, models / "canal.pt", tmp_path / "out" / "measurements.json"):
        code, err = run(capsys, "package-models", "--roi", wrong, "--out", tmp_path / "other")
        assert code == 4 and err == f"spinal-stenosis: error: {wrong}: not the best.pt of a roi-network training run\n"
    code, err = run(capsys, "package-models", "--roi-second", best, "--out", tmp_path / "other")
    assert code == 4 and "not the best.pt of a roi_second-network training run" in err
    roi_run = train(TrainConfig(network="roi", out_dir=tmp_path / "roi_run", steps=1, batch_size=1, width=4,
                                validate_every=1, threads=1, batchnorm_batches=1))
    code, err = run(capsys, "package-models", "--roi-second", roi_run, "--out", tmp_path / "second")
    assert code == 0, err
    second = read_manifest(tmp_path / "second")["models"]["roi_second"]
    assert second["version"] == shipped["models"]["roi_second"]["version"] + "+roi_run"
    assert load_segmenter(folder=tmp_path / "second").provenance["models"]["roi_second"]["sha256"] == second["sha256"]


def test_a_damaged_models_folder_is_one_line_and_exit_code_4(phantom_files, tmp_path, capsys):
    from SpinalStenosisLib.models import models_folder

    models = tmp_path / "models"
    models.mkdir()
    for path in models_folder().iterdir():
        (models / path.name).write_bytes(path.read_bytes())
    with open(models / "canal.pt", "ab") as handle:
        handle.write(b"tampered")
    image, _ = phantom_files
    code, err = run(capsys, "measure", image, "--out", tmp_path / "out", "--models", models)
    assert code == 4 and err.strip().splitlines() == [err.strip()] and "damaged or replaced" in err
    assert not (tmp_path / "out").exists()
    code, err = run(capsys, "measure", image, "--out", tmp_path / "out", "--models", tmp_path)
    assert code == 4 and "not a models folder" in err


def test_a_usage_error_exits_with_the_usage_code_and_says_why(capsys):
    with pytest.raises(SystemExit) as usage:
        cli.main(["measure", "image.nii.gz", "--out", "out", "--no-such-option"])
    assert usage.value.code == cli.EXIT_USAGE and "--no-such-option" in capsys.readouterr().err


def test_train_takes_its_contrasts_from_the_command_line_and_refuses_unknown_ones(tmp_path, capsys):
    import torch
    from SpinalStenosisLib.synth.render import CONTRASTS

    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(of {', '.join(CONTRASTS)}; default all)" in help_text  # the help's own list is the generator's

    code, err = run(capsys, "train", "canal", "--out", tmp_path / "run", "--steps", "1", "--batch-size", "1",
                    "--width", "4", "--threads", "1", "--batchnorm-batches", "1", "--contrasts", "T2,T2FS")
    assert code == 0, err
    assert "--contrasts T2,T2FS" in torch.load(tmp_path / "run" / "best.pt", weights_only=False)["training_command"]
    code, err = run(capsys, "train", "canal", "--out", tmp_path / "bad", "--steps", "1", "--contrasts", "T2,PD")
    assert code == cli.EXIT_INPUT and "--contrasts T2,PD: expected some of T2, T1, T2star, T2FS, random" in err


def test_train_says_each_validation_as_its_log_row_and_where_it_wrote(tmp_path, capsys):
    code = cli.main([str(a) for a in ("train", "canal", "--out", tmp_path / "run", "--steps", "2", "--batch-size", "1",
                                      "--width", "4", "--threads", "1", "--batchnorm-batches", "0")])
    said = capsys.readouterr()
    assert code == 0, said.err
    with open(tmp_path / "run" / "log.csv", encoding="utf-8") as handle:
        [row] = list(csv.DictReader(handle))  # validated at the last step only (every 250 by default)
    assert said.out.splitlines() == [
        f"step 2 of 2: training loss {float(row['train_loss']):.5f}, validation loss "
        f"{float(row['validation_loss']):.5f}, validation Dice {row['validation_dice']} (the best so far: best.pt)",
        f"wrote {(tmp_path / 'run').resolve()}"]


def test_train_averages_weights_from_the_step_given_and_package_models_takes_them(tmp_path, capsys):
    import torch

    code, err = run(capsys, "train", "canal", "--out", tmp_path / "run", "--steps", "2", "--batch-size", "1",
                    "--width", "4", "--threads", "1", "--batchnorm-batches", "1", "--average-from", "2")
    assert code == 0, err
    averaged = tmp_path / "run" / "averaged.pt"
    assert "--average-from 2" in torch.load(averaged, weights_only=False)["training_command"]
    code, err = run(capsys, "package-models", "--canal", averaged, "--out", tmp_path / "models")
    assert code == 0, err
    canal = json.loads((tmp_path / "models" / "manifest.json").read_text())["models"]["canal"]
    assert "--average-from 2" in canal["training_command"] and canal["trained_steps"] == 2


def test_train_passes_the_auxiliary_chord_and_mirror_weights_and_the_precision(tmp_path, capsys):
    import torch

    code, err = run(capsys, "train", "canal", "--out", tmp_path / "run", "--steps", "1", "--batch-size", "1",
                    "--width", "4", "--threads", "1", "--batchnorm-batches", "0", "--auxiliary", "0.25",
                    "--chord-weight", "0.3", "--mirror-weight", "20", "--precision", "bfloat16")
    assert code == 0, err
    config = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["config"]
    assert config["auxiliary_weight"] == 0.25 and config["chord_weight"] == 0.3 and config["precision"] == "bfloat16"
    assert config["mirror_weight"] == 20.0


def test_train_passes_the_dropout_and_package_models_records_it(tmp_path, capsys):
    code, err = run(capsys, "train", "canal", "--out", tmp_path / "run", "--steps", "1", "--batch-size", "1",
                    "--width", "4", "--threads", "1", "--batchnorm-batches", "1", "--dropout", "0")
    assert code == 0, err
    code, err = run(capsys, "package-models", "--canal", tmp_path / "run" / "best.pt", "--out", tmp_path / "models")
    assert code == 0, err
    canal = json.loads((tmp_path / "models" / "manifest.json").read_text())["models"]["canal"]
    assert canal["network"]["dropout"] == 0.0 and "--dropout 0" in canal["training_command"]
    code, err = run(capsys, "train", "canal", "--out", tmp_path / "bad", "--steps", "1", "--dropout", "1")
    assert code == cli.EXIT_INPUT and "--dropout 1: expected" in err


def test_blend_writes_weights_package_models_takes_and_refuses_a_share_beyond_the_two(tmp_path, capsys):
    code, err = run(capsys, "train", "canal", "--out", tmp_path / "run", "--steps", "1", "--batch-size", "1",
                    "--width", "4", "--threads", "1", "--batchnorm-batches", "1")
    assert code == 0, err
    best = tmp_path / "run" / "best.pt"
    code, err = run(capsys, "blend", "canal", "--start", best, "--tuned", best, "--share", "0.5", "--encoder-share",
                    "0", "--out", tmp_path / "blend.pt", "--threads", "1", "--batchnorm-batches", "1")
    assert code == 0, err
    code, err = run(capsys, "package-models", "--canal", tmp_path / "blend.pt", "--out", tmp_path / "models")
    assert code == 0, err
    canal = json.loads((tmp_path / "models" / "manifest.json").read_text())["models"]["canal"]
    assert "; then spinal-stenosis blend canal" in canal["training_command"]
    assert "--share 0.5 --encoder-share 0" in canal["training_command"]
    code, err = run(capsys, "blend", "canal", "--start", best, "--tuned", best, "--share", "-0.1", "--out",
                    tmp_path / "bad.pt", "--threads", "1")
    assert code == cli.EXIT_INPUT and "--share -0.1: expected" in err and not (tmp_path / "bad.pt").exists()


def test_every_command_line_the_readme_shows_is_one_the_command_accepts():
    """Each `spinal-stenosis ...` line of the README's shell examples parses (its options exist and take what it
    gives them), so the README cannot drift from the command line."""
    lines = [line for block in readme_code("bash") for line in block.splitlines()
             if line.startswith("spinal-stenosis ")]
    assert len(lines) > 20
    for line in lines:
        words = shlex.split(line, comments=True)[1:]
        try:
            cli.build_parser().parse_args(words)
        except SystemExit:
            pytest.fail(f"the README's {line!r} is not a command line spinal-stenosis accepts")
