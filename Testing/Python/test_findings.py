"""The study's worst findings: the smallest of each graded measurement among the structures not to check, graded
with the region's cut-offs; the report always shows their slices."""
import math

import pytest

from SpinalStenosisLib.findings import (describe_findings, describe_levels, findings_document, findings_on_slice,
                                        slices_of, smallest_trusted, worst_findings, worst_findings_by_level,
                                        worst_findings_by_level_of_blocks, worst_findings_of_blocks)
from SpinalStenosisLib.measurement import MEASUREMENT_COLUMNS, SliceMeasurement
from SpinalStenosisLib.report import MAX_PANELS, _pick_slices

NAN = float("nan")


def slice_with(n: int, canal_ap_mm: float, canal_confidence: float = NAN, **values: float) -> SliceMeasurement:
    measured = {name: NAN for name in MEASUREMENT_COLUMNS} | {"canal_ap_mm": canal_ap_mm, "canal_area_mm2": 150.0,
                                                              "canal_transverse_mm": 20.0} | values
    confidences = {"canal_confidence": canal_confidence, "left_foramen_confidence": NAN,
                   "right_foramen_confidence": NAN}
    return SliceMeasurement(n, 4.0 * n, measured, confidences=confidences)


def test_the_smallest_value_not_to_check_else_the_smallest_of_all():
    assert smallest_trusted([5.0, 3.0, NAN, 4.0], [False, True, False, False]) == 3
    assert smallest_trusted([5.0, 3.0, NAN, 4.0], [True, True, False, True]) == 1  # the NaN is no finding
    assert smallest_trusted([NAN, NAN], [False, False]) is None
    assert smallest_trusted([], []) is None


def test_the_worst_findings_of_angled_blocks_name_the_block_of_each():
    blocks = {"block-1": [slice_with(0, 11.0), slice_with(1, 5.0, canal_confidence=0.6)],
              "block-2": [slice_with(0, 13.0), slice_with(1, 9.0, right_foramen_width_mm=2.5)],
              "block-3": [slice_with(0, 12.0, canal_area_mm2=90.0)]}
    findings = worst_findings_of_blocks(blocks, "lumbar")
    assert [(name, f.block, f.slice_index) for name, f in findings.items()] == [
        ("canal_ap_mm", "block-2", 1), ("canal_area_mm2", "block-3", 0), ("right_foramen_width_mm", "block-2", 1)]
    assert describe_findings(findings).startswith("narrowest canal AP 9.0 mm (absolute stenosis) on block-2 slice 1, "
                                                  "or 5.0 mm on block-1 slice 1 to check; smallest dural-sac area "
                                                  "90.0 mm² (relative stenosis) on block-3 slice 0; ")
    assert findings_document(findings)["canal_ap_mm"]["smaller_to_check"] == {"block": "block-1", "slice_index": 1,
                                                                              "value": 5.0}
    doubted_block = worst_findings_of_blocks({"block-1": [slice_with(0, 5.0, canal_confidence=0.6)],
                                              "block-2": [slice_with(0, 9.0)]}, "lumbar")["canal_ap_mm"]
    assert (doubted_block.block, doubted_block.smaller_to_check) == ("block-2", (0, 5.0, "block-1"))
    assert worst_findings_of_blocks({"block-1": [slice_with(0, NAN, canal_area_mm2=NAN)]}, "lumbar") == {}


def test_a_doubted_canal_is_not_the_studys_narrowest_while_a_sure_one_exists():
    slices = [slice_with(0, 13.0), slice_with(1, 6.0, canal_confidence=0.6), slice_with(2, 11.0),
              slice_with(3, 12.5, right_foramen_width_mm=2.5), slice_with(4, 14.0, right_foramen_width_mm=4.0)]
    findings = worst_findings(slices, "lumbar")
    assert list(findings) == ["canal_ap_mm", "canal_area_mm2", "right_foramen_width_mm"]  # no left foramen found
    canal = findings["canal_ap_mm"]
    assert (canal.slice_index, canal.z_mm, canal.value, canal.grade, canal.to_check) == (
        2, 8.0, 11.0, "relative stenosis", False)
    assert worst_findings(slices, "cervical")["canal_ap_mm"].grade == "normal"  # the cervical cut-off is 10 mm
    right = findings["right_foramen_width_mm"]
    assert right.slice_index == 3 and right.grade == "stenosis"
    assert describe_findings(findings).startswith("narrowest canal AP 11.0 mm (relative stenosis) on slice 2, or 6.0 "
                                                  "mm on slice 1 to check; smallest dural-sac area 150.0 mm² (normal) "
                                                  "on slice 0; ")  # the doubted 6 mm canal is named, not graded
    assert [findings_on_slice(findings, n) for n in range(5)] == ["dural-sac area", "", "canal AP", "right foramen", ""]
    assert findings_document(findings)["canal_ap_mm"] == {"slice_index": 2, "z_mm": 8.0, "level": "", "value": 11.0,
                                                          "grade": "relative stenosis", "to_check": False,
                                                          "smaller_to_check": {"slice_index": 1, "value": 6.0}}
    assert findings_document(findings)["canal_area_mm2"]["smaller_to_check"] is None
    assert slices_of(findings) == {0, 1, 2, 3}  # the report shows the doubted canal's slice too


def test_a_foramen_not_found_where_the_other_side_s_was_is_named_before_any_width_to_check():
    def one_side(n: int, width: float) -> SliceMeasurement:
        m = slice_with(n, 12.0, canal_confidence=0.99, right_foramen_width_mm=width)
        m.confidences["right_foramen_confidence"] = NAN if math.isnan(width) else 0.97
        m.confidences["left_foramen_confidence"] = 0.97  # found on the left: an absent right foramen is to check
        return m

    slices = [one_side(0, 6.4), one_side(1, NAN), slice_with(2, 12.0, right_foramen_width_mm=5.0)]
    slices[2].confidences["right_foramen_confidence"] = 0.6  # a smaller width, doubted: the absent one comes first
    right = worst_findings(slices, "lumbar")["right_foramen_width_mm"]
    assert (right.slice_index, right.value, right.grade) == (0, 6.4, "normal")
    assert right.smaller_to_check.slice_index == 1 and math.isnan(right.smaller_to_check.value)
    assert describe_findings({"right_foramen_width_mm": right}) == (
        "narrowest right foramen 6.4 mm (normal) on slice 0, or not found on slice 1 to check")
    assert findings_document({"right_foramen_width_mm": right})["right_foramen_width_mm"]["smaller_to_check"] == {
        "slice_index": 1, "value": None}
    in_blocks = worst_findings_of_blocks({"block-1": slices[:1], "block-2": slices[1:]}, "lumbar")
    assert in_blocks["right_foramen_width_mm"].smaller_to_check.block == "block-2"
    assert in_blocks["right_foramen_width_mm"].smaller_to_check.slice_index == 1
    drawn = [one_side(0, 6.4), one_side(1, NAN)]
    drawn[0].confidences["left_foramen_confidence"] = drawn[1].confidences["left_foramen_confidence"] = 1.0
    assert worst_findings(drawn, "lumbar")["right_foramen_width_mm"].smaller_to_check is None  # the user's call
    typed_absent = [one_side(0, 6.4), one_side(1, 5.0)]
    typed_absent[1].values["right_foramen_width_mm"] = NAN  # 0 typed into the table over a doubted find
    typed_absent[1].confidences["right_foramen_confidence"] = 0.6
    assert worst_findings(typed_absent, "lumbar")["right_foramen_width_mm"].smaller_to_check is None


def test_a_foramen_found_on_no_slice_of_a_level_where_the_other_side_s_was_is_named_not_found_to_check():
    def left_only(n: int, level: str, left_confidence: float = 0.97) -> SliceMeasurement:
        m = slice_with(n, 12.0, canal_confidence=0.99, left_foramen_width_mm=5.0)
        m.confidences["left_foramen_confidence"], m.level = left_confidence, level
        return m

    slices = [left_only(0, "L3-L4"), left_only(1, "L4-L5"), left_only(2, "L4-L5"), slice_with(3, 12.0)]
    slices[0].values["right_foramen_width_mm"], slices[0].confidences["right_foramen_confidence"] = 6.0, 0.97
    slices[3].level = "L4-L5"
    by_level = worst_findings_by_level(slices, "lumbar")
    right = by_level["L4-L5"]["right_foramen_width_mm"]
    assert (right.slice_index, right.grade, right.to_check, right.smaller_to_check) == (1, "", True, None)
    assert not right.found and by_level["L3-L4"]["right_foramen_width_mm"].found
    assert describe_levels(by_level)[1] == ("L4-L5: canal AP 12.0 mm (normal, slice 1); dural-sac area 150.0 mm² "
                                            "(normal, slice 1); right foramen not found (slice 1, to check); "
                                            "left foramen 5.0 mm (normal, slice 1)")
    assert describe_findings({"right_foramen_width_mm": right}) == (
        "right foramen not found on slice 1 (L4-L5), to check")
    assert findings_document({"right_foramen_width_mm": right})["right_foramen_width_mm"] == {
        "slice_index": 1, "z_mm": 4.0, "level": "L4-L5", "value": None, "grade": "", "to_check": True,
        "smaller_to_check": None}
    in_blocks = worst_findings_of_blocks({"block-1": slices[1:3], "block-2": slices[3:]}, "lumbar")
    unfound_in_blocks = in_blocks["right_foramen_width_mm"]
    assert (unfound_in_blocks.block, unfound_in_blocks.slice_index) == ("block-1", 1)
    found_elsewhere = worst_findings_of_blocks({"block-1": slices[:1], "block-2": slices[1:]}, "lumbar")
    right = found_elsewhere["right_foramen_width_mm"]  # the width found in block-1, the block-2 slice to check
    assert (right.block, right.value) == ("block-1", 6.0)
    doubted = right.smaller_to_check
    assert (doubted.slice_index, doubted.block) == (1, "block-2") and math.isnan(doubted.value)
    drawn = [left_only(1, "L4-L5", left_confidence=1.0)]  # a drawn left foramen: the absent right is the user's call
    assert "right_foramen_width_mm" not in worst_findings(drawn, "lumbar")


def test_a_disc_level_on_none_of_whose_slices_either_foramen_was_found_names_both_not_found_to_check():
    def both_sides(n: int, level: str, width: float = NAN, confidence: float = NAN) -> SliceMeasurement:
        m = slice_with(n, 12.0, canal_confidence=0.99, left_foramen_width_mm=width, right_foramen_width_mm=width)
        m.confidences["left_foramen_confidence"] = m.confidences["right_foramen_confidence"] = confidence
        m.level = level
        return m

    slices = [both_sides(0, "L3-L4", 6.0, 0.97), both_sides(1, "L3-L4"), both_sides(2, "L4-L5"),
              both_sides(3, "L4-L5"), both_sides(4, ""), both_sides(5, "L5"), both_sides(6, "S1-S2")]
    by_level = worst_findings_by_level(slices, "lumbar")
    unfound = {level: [(name, f.slice_index, f.to_check) for name, f in findings.items() if not f.found]
               for level, findings in by_level.items()}
    assert unfound == {"L3-L4": [], "L4-L5": [("right_foramen_width_mm", 2, True), ("left_foramen_width_mm", 2, True)],
                       "L5": [], "S1-S2": []}  # a vertebra, and the sacrum: no disc whose foramina to look for
    assert describe_levels(by_level)[1] == ("L4-L5: canal AP 12.0 mm (normal, slice 2); dural-sac area 150.0 mm² "
                                            "(normal, slice 2); right foramen not found (slice 2, to check); left "
                                            "foramen not found (slice 2, to check)")
    study = worst_findings(slices, "lumbar")["right_foramen_width_mm"]
    assert (study.slice_index, study.value, study.smaller_to_check.slice_index) == (0, 6.0, 2)
    assert describe_findings({"right_foramen_width_mm": study}) == (
        "narrowest right foramen 6.0 mm (normal) on slice 0 (L3-L4), or not found on slice 2 to check")
    slices[2].confidences["canal_confidence"] = 1.0  # drawn or edited by hand: its absent foramina, the user's call
    assert worst_findings_by_level(slices, "lumbar")["L4-L5"]["left_foramen_width_mm"].slice_index == 3
    slices[2].confidences["canal_confidence"] = 0.99  # the networks' again
    slices[3].confidences["left_foramen_confidence"] = 0.6  # found, then 0 typed into the table: the user's call
    level = worst_findings_by_level(slices, "lumbar")["L4-L5"]  # the right one not found beside it, as on any slice
    assert "left_foramen_width_mm" not in level and level["right_foramen_width_mm"].slice_index == 3
    in_blocks = {"block-1": [both_sides(0, "L4-L5")], "block-2": [both_sides(1, "L4-L5", 5.0, 0.97)]}
    assert worst_findings_of_blocks(in_blocks, "lumbar")["left_foramen_width_mm"].smaller_to_check is None
    assert worst_findings_by_level_of_blocks(in_blocks, "lumbar")["L4-L5"]["left_foramen_width_mm"].found
    alone = worst_findings_of_blocks({"block-1": in_blocks["block-1"]}, "lumbar")["left_foramen_width_mm"]
    assert (alone.block, alone.slice_index, alone.found) == ("block-1", 0, False)


def test_a_value_just_below_a_cut_off_reads_below_it_in_the_findings():
    slices = [slice_with(0, 9.9801, canal_area_mm2=74.96), slice_with(1, 9.52, canal_confidence=0.6)]
    slices[0].level = slices[1].level = "L4"  # a vertebra, not a disc: no foramen is looked for
    findings = worst_findings(slices, "lumbar")
    assert describe_findings(findings) == ("narrowest canal AP 9.98 mm (absolute stenosis) on slice 0 (L4), or 9.5 "
                                           "mm on slice 1 to check; smallest dural-sac area 74.96 mm² (absolute "
                                           "stenosis) on slice 0 (L4)")
    assert describe_levels(worst_findings_by_level(slices, "lumbar")) == [
        "L4: canal AP 9.98 mm (absolute stenosis, slice 0, or 9.5 mm on slice 1 to check); dural-sac area "
        "74.96 mm² (absolute stenosis, slice 0)"]


def test_a_finding_on_a_slice_whose_level_is_named_names_the_level():
    slices = [slice_with(0, 13.0), slice_with(1, 7.0), slice_with(2, 12.0)]
    slices[1].level, slices[2].level = "L4-L5", "L5-S1"
    findings = worst_findings(slices, "lumbar")
    assert findings["canal_ap_mm"].level == "L4-L5"
    assert describe_findings(findings) == ("narrowest canal AP 7.0 mm (absolute stenosis) on slice 1 (L4-L5); "
                                           "smallest dural-sac area 150.0 mm² (normal) on slice 0")
    assert findings_document(findings)["canal_ap_mm"]["level"] == "L4-L5"


def test_each_named_level_has_the_worst_findings_of_its_own_slices():
    slices = [slice_with(0, 13.0), slice_with(1, 7.0, canal_area_mm2=120.0), slice_with(2, 12.0, canal_area_mm2=90.0),
              slice_with(3, 11.0, left_foramen_width_mm=2.0), slice_with(4, 6.0, canal_confidence=0.6),
              slice_with(5, 9.0)]
    for m, level in zip(slices, ("", "L4-L5", "L4-L5", "L5-S1", "L5-S1", "")):
        m.level = level
    by_level = worst_findings_by_level(slices, "lumbar")
    assert list(by_level) == ["L4-L5", "L5-S1"]  # the unnamed slices (slice 5 is the study's narrowest) in none
    assert [(name, f.slice_index) for name, f in by_level["L4-L5"].items()] == [("canal_ap_mm", 1),
                                                                              ("canal_area_mm2", 2)]
    assert by_level["L5-S1"]["canal_ap_mm"].slice_index == 3  # slice 4's 6 mm canal is to check
    assert describe_levels(by_level) == [
        "L4-L5: canal AP 7.0 mm (absolute stenosis, slice 1); dural-sac area 90.0 mm² (relative stenosis, slice 2)",
        "L5-S1: canal AP 11.0 mm (relative stenosis, slice 3, or 6.0 mm on slice 4 to check); dural-sac area "
        "150.0 mm² (normal, slice 3); left foramen 2.0 mm (stenosis, slice 3)"]
    for m in slices[3:5]:
        m.confidences["canal_confidence"] = 0.6
    assert describe_levels(worst_findings_by_level(slices, "lumbar"))[1].startswith(
        "L5-S1: canal AP 6.0 mm (absolute stenosis, slice 4, to check)")
    assert worst_findings_by_level(slices[:1], "lumbar") == {}
    assert describe_levels({"L3-L4": {}}) == ["L3-L4: no canal or foramen found"]


def test_a_canal_named_at_a_thoracic_or_sacral_level_is_not_graded_nor_the_narrowest_while_a_graded_one_exists():
    slices = [slice_with(0, 8.0, right_foramen_width_mm=2.5), slice_with(1, 11.0), slice_with(2, 7.0)]
    slices[0].level, slices[1].level, slices[2].level = "T11-T12", "L1-L2", "S1"
    findings = worst_findings(slices, "lumbar")
    assert (findings["canal_ap_mm"].slice_index, findings["canal_ap_mm"].grade) == (1, "relative stenosis")
    assert findings["right_foramen_width_mm"].slice_index == 0  # the foramen is graded at any level
    assert describe_levels(worst_findings_by_level(slices, "lumbar"))[0] == (
        "T11-T12: canal AP 8.0 mm (not graded, slice 0); dural-sac area 150.0 mm² (not graded, slice 0); right "
        "foramen 2.5 mm (stenosis, slice 0)")
    thoracic = worst_findings(slices[:1], "lumbar")  # no graded canal: the narrowest is named, ungraded
    assert describe_findings(thoracic).startswith("narrowest canal AP 8.0 mm (not graded) on slice 0 (T11-T12); ")
    blocks = worst_findings_of_blocks({"block-1": slices[:1], "block-2": slices[1:]}, "lumbar")
    assert (blocks["canal_ap_mm"].block, blocks["canal_ap_mm"].value) == ("block-2", 11.0)


def test_when_every_canal_is_doubted_the_narrowest_is_named_and_said_to_be_checked():
    findings = worst_findings([slice_with(0, 9.0, canal_confidence=0.7), slice_with(1, 8.0, canal_confidence=0.8)],
                              "lumbar")
    assert findings["canal_ap_mm"].slice_index == 1 and findings["canal_ap_mm"].to_check
    assert "narrowest canal AP 8.0 mm (absolute stenosis) on slice 1, to check" in describe_findings(findings)
    assert describe_findings(worst_findings([slice_with(0, NAN, canal_area_mm2=NAN, canal_transverse_mm=NAN)],
                                            "lumbar")) == ""


@pytest.mark.parametrize("narrowest", range(MAX_PANELS + 2))
def test_the_report_shows_the_slices_of_the_worst_findings_among_its_panels(narrowest):
    slices = [slice_with(n, 6.0 if n == narrowest else 14.0) for n in range(MAX_PANELS + 2)]
    worst = {f.slice_index for f in worst_findings(slices, "lumbar").values()}
    panels = [m.slice_index for m in _pick_slices(slices, worst)]
    assert len(panels) == MAX_PANELS and narrowest in panels and panels == sorted(panels)
    assert {0, MAX_PANELS + 1} <= set(panels)  # the rest spread over the whole stack


def test_levels_are_read_as_typed_with_semicolons_or_en_dashes_and_a_missing_comma_is_refused():
    from SpinalStenosisLib.level_names import parse_levels

    expected = {0: "L3-L4", 1: "L3-L4", 2: "L4-L5"}
    assert parse_levels("0-1=L3-L4, 2=L4-L5") == parse_levels("0\u20131=L3-L4; 2=L4-L5") == expected
    assert parse_levels("block-1=L3-L4;block-2=L4-L5") == {"block-1": "L3-L4", "block-2": "L4-L5"}
    with pytest.raises(ValueError, match=r"'0-1=L3-L4 2=L4-L5' names more than one level: separate the items"):
        parse_levels("0-1=L3-L4 2=L4-L5")  # read before as slices 0-1 named "L3-L4 2=L4-L5"
    with pytest.raises(ValueError, match="slice 1 is named twice"):
        parse_levels("0-1=L3-L4; 1=L4")


def test_a_level_naming_a_vertebra_no_spine_has_is_refused_and_the_ways_levels_are_written_are_read():
    from SpinalStenosisLib.level_names import parse_levels, vertebrae_no_spine_has

    for level in ("L4-L5", "L4-5", "l4/5", "C5/6", "Th12/L1", "L5S1", "C0-C1", "C7-T1", "T13-L1", "L6-S1", "disc 3",
                  "Level 4"):
        assert vertebrae_no_spine_has(level) == [] and parse_levels(f"0={level}") == {0: level}
    for level, wrong in (("L9-L10", ["L9", "L10"]), ("L4-9", ["L9"]), ("C8", ["C8"]), ("T0-T1", ["T0"]),
                         ("S5-S6", ["S6"]), ("L45", ["L45"])):
        assert vertebrae_no_spine_has(level) == wrong
    with pytest.raises(ValueError, match=r"'4=L9-L10' names L9 and L10, which no spine has \(C1-C7, T1-T12, L1-L5"):
        parse_levels("3=L4-L5, 4=L9-L10")


def test_a_level_names_a_disc_where_it_names_two_vertebrae_above_the_sacrum():
    from SpinalStenosisLib.level_names import names_a_disc

    assert all(names_a_disc(level) for level in ("L4-L5", "l4-5", "C5/6", "Th12/L1", "L5S1", "T12-L1 disc"))
    assert not any(names_a_disc(level) for level in ("", "L4", "C7", "S1-S2", "sacrum"))


def test_levels_name_dicom_images_as_a_viewer_numbers_them_across_the_blocks_of_a_series():
    from SpinalStenosisLib.level_names import NamedImage, levels_of_images, parse_levels

    levels = parse_levels("image 12-13=L4-L5, Images14=L5-S1")
    assert levels == {NamedImage(12): "L4-L5", NamedImage(13): "L4-L5", NamedImage(14): "L5-S1"}
    assert parse_levels("IMAGE 12\u201313 = L4-L5") == {NamedImage(12): "L4-L5", NamedImage(13): "L4-L5"}
    blocks = [["10", "11", "12"], ["13", "14"]]  # each block's slices' image numbers
    assert levels_of_images(levels, blocks) == [{2: "L4-L5"}, {0: "L4-L5", 1: "L5-S1"}]
    assert levels_of_images(parse_levels("1-2=L4-L5"), blocks) is None  # by slice: not this function's
    for text, blocks, refused in (
            ("image 13=L4-L5, 0=L3-L4", blocks, "levels name images and slices or blocks"),
            ("image 13=L4-L5", [["", ""]], "the slices are not numbered as the images of a DICOM series"),
            ("image 9-10=L4-L5", blocks, "levels name image 9, but the slices are images 10 to 14")):
        with pytest.raises(ValueError, match=refused):
            levels_of_images(parse_levels(text), blocks)
    for text, refused in (("image 12=L4, image 12=L5", "image 12 is named twice"),
                          ("block-2=L4-L5, block-2=L5-S1", "block-2 is named twice"),
                          ("image 14-12=L4-L5", "is not SLICE=LEVEL")):
        with pytest.raises(ValueError, match=refused):
            parse_levels(text)
