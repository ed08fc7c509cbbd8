"""Measurements against analytic truth, on axial, rotated, tilted and anisotropic grids; binary and soft masks."""
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shapes import axial_grid, bow_tie, ellipse, rasterise, trefoil

from SpinalStenosisLib.crop import crop_grid
from SpinalStenosisLib.geometry import FieldOfView
from SpinalStenosisLib.grading import (MEASUREMENT_UNITS, SACRAL, THORACIC, grade, level_warnings, region_named,
                                       slice_region, stenosis_cutoffs, value_text, value_with_unit)
from SpinalStenosisLib.measurement import (MAX_AREA_TO_CHORDS, MEASUREMENT_COLUMNS, bilinear, describe_checks,
                                           largest_component, measure_slice, structure_words, structures_in,
                                           unmatched_foramen)

GRIDS = {
    "axial": axial_grid(),
    "rotated 30°": axial_grid(rotation_deg=30.0),
    "tilted 20°": axial_grid(tilt_deg=20.0),
    "anisotropic": axial_grid(pixel_mm=(0.45, 0.8), shape=(180, 100)),
    "LPS-like flipped": axial_grid(rotation_deg=180.0),
}


def tolerance(grid, soft):
    return 0.1 if soft else max(grid.pixel_size_mm)


@pytest.mark.parametrize("name", GRIDS)
@pytest.mark.parametrize("soft", [False, True])
def test_ellipse_diameters_and_area(name, soft):
    grid = GRIDS[name]
    mask = rasterise(ellipse(2.0, -1.0, 9.0, 6.5), grid, soft)
    m = measure_slice({"canal": mask}, grid)
    assert abs(m.canal_ap_mm - 13.0) <= tolerance(grid, soft)
    assert abs(m.canal_transverse_mm - 18.0) <= tolerance(grid, soft)
    assert abs(m.canal_area_mm2 - math.pi * 9.0 * 6.5) <= 0.03 * math.pi * 9.0 * 6.5


@pytest.mark.parametrize("name", GRIDS)
@pytest.mark.parametrize("soft", [False, True])
def test_rotated_ellipse_chord_through_centroid(name, soft):
    grid = GRIDS[name]
    a, b, angle = 10.0, 5.0, 35.0
    mask = rasterise(ellipse(0.0, 0.0, a, b, angle), grid, soft)
    m = measure_slice({"canal": mask}, grid)
    u_ap = np.array([np.sin(np.radians(angle)), np.cos(np.radians(angle))])  # AP direction in the ellipse frame
    expected_ap = 2.0 / math.sqrt((u_ap[0] / a) ** 2 + (u_ap[1] / b) ** 2)
    u_lr = np.array([np.cos(np.radians(angle)), -np.sin(np.radians(angle))])
    expected_lr = 2.0 / math.sqrt((u_lr[0] / a) ** 2 + (u_lr[1] / b) ** 2)
    assert abs(m.canal_ap_mm - expected_ap) <= tolerance(grid, soft)
    assert abs(m.canal_transverse_mm - expected_lr) <= tolerance(grid, soft)


@pytest.mark.parametrize("soft", [False, True])
def test_trefoil_canal(soft):
    grid = GRIDS["axial"]
    radius, depth = 8.0, 0.15
    m = measure_slice({"canal": rasterise(trefoil(radius, depth), grid, soft)}, grid)
    assert abs(m.canal_ap_mm - 2 * radius) <= tolerance(grid, soft) + 0.05  # r(90°) + r(270°) = 2R
    assert abs(m.canal_area_mm2 - math.pi * radius ** 2 * (1 + depth ** 2 / 2)) <= 0.03 * math.pi * radius ** 2


@pytest.mark.parametrize("name", GRIDS)
@pytest.mark.parametrize("soft", [False, True])
def test_bow_tie_foramen_narrowest_gap(name, soft):
    grid = GRIDS[name]
    canal = rasterise(ellipse(0.0, 0.0, 9.0, 6.0), grid, soft)
    left = rasterise(bow_tie(21.0, 1.0, 3.2, 0.12, 12.0), grid, soft)
    right = rasterise(bow_tie(-20.0, 0.0, 5.0, 0.08, 10.0), grid, soft)
    m = measure_slice({"canal": canal, "left_foramen": left, "right_foramen": right}, grid)
    assert abs(m.left_foramen_width_mm - 3.2) <= tolerance(grid, soft)
    assert abs(m.right_foramen_width_mm - 5.0) <= tolerance(grid, soft)
    ruler = m.rulers["left_foramen_width_mm"]
    assert np.linalg.norm((ruler.start_ras + ruler.end_ras) / 2 - grid.to_ras(*centre_index(grid, 21.0, 1.0))) < 1.0


@pytest.mark.parametrize("name", GRIDS)
def test_steep_bow_tie_waist_within_one_pixel_even_when_soft(name):
    """A sharp V waist is averaged over the pixel footprint (bias about slope x pixel / 2): one pixel at most."""
    grid = GRIDS[name]
    canal = rasterise(ellipse(0.0, 0.0, 9.0, 6.0), grid, True)
    left = rasterise(bow_tie(21.0, 1.0, 3.2, 0.4, 12.0), grid, True)
    m = measure_slice({"canal": canal, "left_foramen": left}, grid)
    assert abs(m.left_foramen_width_mm - 3.2) <= max(grid.pixel_size_mm)


def parallel_channel(cx, cy, width, flat_length, length):
    """A foramen along the +left axis whose walls are parallel (width apart) over flat_length, then flare."""
    def inside(x, y):
        u, v = x - cx, y - cy
        return (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2 + 0.4 * np.maximum(np.abs(u) - flat_length / 2, 0))

    return inside


@pytest.mark.parametrize("name, soft", [(name, soft) for name in GRIDS for soft in (False, True)
                                        if soft or name != "rotated 30°"])
def test_a_parallel_walled_foramen_is_measured_in_the_middle_of_its_narrow_stretch(name, soft):
    """Every chord of the 6 mm stretch is as short: the ruler goes to its middle, wherever rounding would put the
    shortest. (Not binary on the rotated grid: walls oblique to the pixels are staircases, whose shortest chord is a
    real one, not a tie.)"""
    grid = GRIDS[name]
    canal = rasterise(ellipse(0.0, 0.0, 9.0, 6.0), grid, soft)
    left = rasterise(parallel_channel(21.0, 1.0, 3.0, 6.0, 14.0), grid, soft)
    m = measure_slice({"canal": canal, "left_foramen": left}, grid)
    assert abs(m.left_foramen_width_mm - 3.0) <= tolerance(grid, soft)
    ruler = m.rulers["left_foramen_width_mm"]
    assert np.linalg.norm((ruler.start_ras + ruler.end_ras) / 2 - grid.to_ras(*centre_index(grid, 21.0, 1.0))) < 0.5


def centre_index(grid, x_left, y_anterior):
    anterior, left = grid.in_plane_axes()
    centre = grid.to_ras((grid.shape[0] - 1) / 2, (grid.shape[1] - 1) / 2)
    rows, columns = grid.to_index((centre + x_left * left + y_anterior * anterior)[None])
    return rows[0], columns[0]


def test_oblique_cervical_foramen_without_canal_uses_principal_axis():
    grid = GRIDS["axial"]
    foramen = rasterise(bow_tie(0.0, 0.0, 2.5, 0.1, 9.0, angle_deg=45.0), grid, soft=True)
    m = measure_slice({"left_foramen": foramen}, grid)
    assert abs(m.left_foramen_width_mm - 2.5) <= 0.1
    assert math.isnan(m.canal_ap_mm)


def test_same_anatomy_on_different_grids_measures_the_same():
    results = []
    for grid in GRIDS.values():
        masks = {"canal": rasterise(ellipse(1.0, 0.5, 8.0, 5.5), grid, True),
                 "right_foramen": rasterise(bow_tie(-19.0, 0.5, 4.0, 0.3, 10.0), grid, True)}
        results.append(measure_slice(masks, grid).values)
    for key in results[0]:
        values = np.array([r[key] for r in results])
        if key == "left_foramen_width_mm":
            assert np.isnan(values).all()
            continue
        assert np.ptp(values) <= (2.0 if key == "canal_area_mm2" else 0.15), key


def test_absent_structures_are_nan_not_zero():
    grid = GRIDS["axial"]
    m = measure_slice({"canal": np.zeros(grid.shape)}, grid)
    assert all(math.isnan(v) for v in m.values.values())
    assert m.rulers == {}
    assert grade(m.values)["canal_ap_grade"] == ""


def test_rulers_have_the_reported_length():
    grid = GRIDS["anisotropic"]
    masks = {"canal": rasterise(ellipse(0.0, 0.0, 8.0, 5.0), grid, True),
             "left_foramen": rasterise(bow_tie(19.0, 0.0, 3.0, 0.3, 10.0), grid, True)}
    m = measure_slice(masks, grid)
    for name, ruler in m.rulers.items():
        assert ruler.length_mm == pytest.approx(m.values[name], abs=1e-9)


def test_confidence_is_the_mean_probability_over_what_is_measured_and_flags_what_the_network_doubts():
    grid = GRIDS["axial"]
    sac, stray = rasterise(ellipse(0.0, 0.0, 8.0, 6.0), grid), rasterise(ellipse(25.0, 20.0, 2.0, 2.0), grid)
    foramen = rasterise(bow_tie(19.0, 0.0, 3.0, 0.3, 10.0), grid)
    rim = rasterise(ellipse(0.0, 0.0, 9.0, 7.0), grid) - sac
    sure = measure_slice({"canal": 0.99 * sac + 0.3 * rim, "left_foramen": 0.97 * foramen}, grid)
    assert sure.confidences["canal_confidence"] == pytest.approx(0.99)  # its rim under 0.5 is neither measured
    assert sure.confidences["left_foramen_confidence"] == pytest.approx(0.97)  # nor counted
    assert math.isnan(sure.confidences["right_foramen_confidence"])
    assert sure.check == "right foramen"  # not found where the left one was (unmatched_foramen)
    unsure = measure_slice({"canal": 0.9 * sac + 0.6 * stray, "left_foramen": 0.8 * foramen}, grid)
    assert unsure.confidences["canal_confidence"] == pytest.approx(0.9)  # the largest region only
    assert unsure.check == "canal, left foramen, right foramen"
    drawn = measure_slice({"canal": sac, "left_foramen": foramen}, grid)  # drawn or edited by hand
    assert drawn.confidences == pytest.approx(
        {"canal_confidence": 1.0, "left_foramen_confidence": 1.0, "right_foramen_confidence": math.nan},
        nan_ok=True)
    assert drawn.check == ""
    nothing = measure_slice({"canal": np.zeros(grid.shape)}, grid)
    assert all(math.isnan(v) for v in nothing.confidences.values()) and nothing.check == ""
    faint = measure_slice({"canal": 0.99 * sac}, grid, canal_edge_to_noise=1.2)  # sure, in an image of noise
    assert faint.check == "canal" and measure_slice({"canal": 0.99 * sac}, grid, canal_edge_to_noise=6.0).check == ""
    assert faint.is_to_check("canal") and not faint.is_to_check("left_foramen") and unsure.is_to_check("left_foramen")
    assert describe_checks({3: "canal, left foramen", 7: "left foramen"}) == (
        "the canal on slice 3; the left foramen on slices 3, 7")


def test_a_foramen_the_network_found_on_one_side_only_puts_the_other_side_to_check():
    grid = GRIDS["axial"]
    sac = rasterise(ellipse(0.0, 0.0, 8.0, 6.0), grid)
    left = rasterise(bow_tie(19.0, 0.0, 3.0, 0.3, 10.0), grid)
    right = rasterise(bow_tie(-19.0, 0.0, 3.0, 0.3, 10.0), grid)
    one_side = measure_slice({"canal": 0.99 * sac, "right_foramen": 0.97 * right}, grid)
    assert math.isnan(one_side.values["left_foramen_width_mm"]) and one_side.check == "left foramen"
    assert one_side.is_to_check("left_foramen") and not one_side.is_to_check("right_foramen")
    assert "left_foramen_width_mm" not in one_side.rulers  # still absent: nothing to measure or grade
    assert unmatched_foramen("left_foramen", one_side.confidences)
    assert not unmatched_foramen("canal", one_side.confidences)
    both = measure_slice({"canal": 0.99 * sac, "left_foramen": 0.97 * left, "right_foramen": 0.97 * right}, grid)
    neither = measure_slice({"canal": 0.99 * sac}, grid)  # a pedicle slice: no foramen on either side
    assert both.check == "" and neither.check == ""
    # a foramen left out of a drawn or edited mask (confidence 1 on the other side) is the user's call
    assert measure_slice({"canal": sac, "right_foramen": right}, grid).check == ""


def test_a_structure_the_edge_of_the_image_cuts_is_measured_as_far_as_it_shows_and_flagged_for_a_check():
    grid = GRIDS["axial"]  # 80 mm square: x from -40 to 40 mm
    canal = rasterise(ellipse(0.0, 0.0, 8.0, 6.0), grid)
    beyond = rasterise(ellipse(36.0, 0.0, 6.0, 3.0), grid)  # a left foramen running out of the image
    m = measure_slice({"canal": canal, "left_foramen": beyond}, grid)
    assert m.cut_by_field_of_view == {"left_foramen"} and m.check == "left foramen"
    assert m.is_to_check("left_foramen") and not m.is_to_check("canal")
    assert 5.0 < m.values["left_foramen_width_mm"] < 6.5  # the part in view
    within = rasterise(ellipse(32.0, 0.0, 6.0, 3.0), grid)  # ends 2 mm inside the edge
    assert measure_slice({"canal": canal, "left_foramen": within}, grid).cut_by_field_of_view == set()
    # measured on a crop wider than the slice, as network 2's: the slice's edge cuts, the crop's does not
    tight = axial_grid(shape=(60, 60))  # 30 mm square
    crop = crop_grid(tight, (29.5, 29.5), 40.0)
    wide_sac = rasterise(ellipse(0.0, 0.0, 16.0, 6.0), crop)  # 32 mm across: wider than the slice
    assert measure_slice({"canal": wide_sac}, crop, field_of_view=FieldOfView(tight)).cut_by_field_of_view == {"canal"}
    assert measure_slice({"canal": wide_sac}, crop).cut_by_field_of_view == set()
    narrow_sac = rasterise(ellipse(0.0, 0.0, 8.0, 6.0), crop)
    assert measure_slice({"canal": narrow_sac}, crop, field_of_view=FieldOfView(tight)).cut_by_field_of_view == set()
    # an image that ends inside its array (padding beyond x = 30 mm, 10 mm before the array's edge) cuts there
    padded = FieldOfView(grid, rasterise(lambda x, y: x > 30.0, grid).astype(bool))
    into_padding = rasterise(ellipse(28.0, 0.0, 6.0, 3.0), grid)
    assert measure_slice({"canal": canal, "left_foramen": into_padding}, grid,
                         field_of_view=padded).cut_by_field_of_view == {"left_foramen"}
    assert measure_slice({"canal": canal, "left_foramen": into_padding}, grid).cut_by_field_of_view == set()
    clear_of_padding = rasterise(ellipse(24.0, 0.0, 4.0, 3.0), grid)  # ends 2 mm before it
    assert measure_slice({"canal": canal, "left_foramen": clear_of_padding}, grid,
                         field_of_view=padded).cut_by_field_of_view == set()
    assert structures_in(structure_words({"right_foramen", "canal"})) == {"canal", "right_foramen"}
    assert structure_words(()) == "" and structures_in("") == set()


@pytest.mark.parametrize("name", GRIDS)
def test_a_canal_of_two_lobes_is_flagged_for_a_check_by_its_area_against_the_ellipse_of_its_chords(name):
    grid = GRIDS[name]
    round_canal = measure_slice({"canal": rasterise(ellipse(0.0, 0.0, 8.0, 6.0), grid, soft=True)}, grid)
    assert round_canal.canal_area_to_chords == pytest.approx(1.0, abs=0.02) and round_canal.check == ""
    trefoil_canal = measure_slice({"canal": rasterise(trefoil(8.0, 0.2), grid, soft=True)}, grid)
    assert trefoil_canal.canal_area_to_chords < 1.1 and trefoil_canal.check == ""  # three lobes about the centroid
    # the sac with a second lobe behind and beside it, joined by a neck: the rulers through the centroid miss a lobe
    lobes = np.maximum(rasterise(ellipse(-4.0, 4.0, 6.0, 4.0), grid, soft=True),
                       rasterise(ellipse(5.0, -5.0, 6.0, 4.0), grid, soft=True))
    lobes = np.maximum(lobes, rasterise(ellipse(0.5, -0.5, 3.0, 1.5, angle_deg=-45.0), grid, soft=True))
    two_lobes = measure_slice({"canal": lobes}, grid)
    assert two_lobes.canal_area_to_chords >= MAX_AREA_TO_CHORDS
    assert two_lobes.check == "canal" and two_lobes.found()["canal_area_to_chords"] == two_lobes.canal_area_to_chords
    assert math.isnan(measure_slice({}, grid).canal_area_to_chords)


@pytest.mark.parametrize("name", GRIDS)
def test_two_lobes_joined_along_a_diagonal_are_flagged_by_the_chords_along_their_principal_axes(name):
    grid = GRIDS[name]
    lobes = np.maximum(rasterise(ellipse(-3.2, -3.2, 5.0, 5.0), grid, soft=True),
                       rasterise(ellipse(3.2, 3.2, 5.0, 5.0), grid, soft=True))
    diagonal = measure_slice({"canal": lobes}, grid)
    ap, transverse, area = (diagonal.values[key] for key in ("canal_ap_mm", "canal_transverse_mm", "canal_area_mm2"))
    assert area / (np.pi / 4 * ap * transverse) < 1.2  # both rulers run through both lobes
    assert diagonal.canal_area_to_chords >= MAX_AREA_TO_CHORDS and diagonal.check == "canal"
    # a flat sac turned in the image, as in a patient turned in the scanner, is one outline
    turned = measure_slice({"canal": rasterise(ellipse(0.0, 0.0, 9.0, 4.5, angle_deg=15.0), grid, soft=True)}, grid)
    assert turned.canal_area_to_chords < 1.1 and turned.check == ""


def test_a_foramen_stopping_a_pixel_short_of_the_edge_of_the_image_is_cut_by_it_and_a_canal_is_not():
    grid = GRIDS["axial"]  # 0.5 mm pixels; the outermost pixels' centres at x = ±39.75 mm, the next ones' at ±39.25
    canal = rasterise(ellipse(0.0, 0.0, 8.0, 6.0), grid)
    pixel_short = rasterise(ellipse(33.4, 0.0, 6.0, 3.0), grid)  # ends at 39.4 mm: as network 2 outlines a cut one
    two_pixels_short = rasterise(ellipse(32.9, 0.0, 6.0, 3.0), grid)  # ends at 38.9 mm
    for field_of_view in (None, FieldOfView(grid)):
        assert measure_slice({"canal": canal, "left_foramen": pixel_short}, grid,
                             field_of_view=field_of_view).cut_by_field_of_view == {"left_foramen"}
        assert measure_slice({"canal": canal, "left_foramen": two_pixels_short}, grid,
                             field_of_view=field_of_view).cut_by_field_of_view == set()
        wide_canal = rasterise(ellipse(31.4, 0.0, 8.0, 6.0), grid)  # a whole canal whose wall ends at 39.4 mm
        assert measure_slice({"canal": wide_canal}, grid, field_of_view=field_of_view).cut_by_field_of_view == set()
    padded = FieldOfView(grid, rasterise(lambda x, y: x > 30.0, grid).astype(bool))  # shown up to x = 29.75 mm
    beside_padding = rasterise(ellipse(23.4, 0.0, 6.0, 3.0), grid)  # ends at 29.4 mm, a pixel short of it
    assert measure_slice({"canal": canal, "right_foramen": beside_padding}, grid,
                         field_of_view=padded).cut_by_field_of_view == {"right_foramen"}


def test_largest_component_is_measured():
    grid = GRIDS["axial"]
    canal = rasterise(ellipse(0.0, 0.0, 8.0, 6.0), grid) + rasterise(ellipse(25.0, 20.0, 2.0, 2.0), grid)
    m = measure_slice({"canal": canal}, grid)
    assert abs(m.canal_area_mm2 - math.pi * 48.0) < 0.03 * math.pi * 48.0


@pytest.mark.parametrize("ap, area, foramen, expected", [
    (9.9, 70.0, 2.9, ("absolute stenosis", "absolute stenosis", "stenosis")),
    (11.0, 90.0, 3.0, ("relative stenosis", "relative stenosis", "normal")),
    (12.0, 100.0, 5.0, ("normal", "normal", "normal")),
])
def test_lumbar_grades_at_the_cut_offs(ap, area, foramen, expected):
    grades = grade({"canal_ap_mm": ap, "canal_area_mm2": area, "canal_transverse_mm": 20.0,
                    "left_foramen_width_mm": foramen, "right_foramen_width_mm": float("nan")})
    assert (grades["canal_ap_grade"], grades["canal_area_grade"], grades["left_foramen_grade"]) == expected
    assert grades["right_foramen_grade"] == ""


@pytest.mark.parametrize("measurement, value, shown, graded", [
    ("canal_ap_mm", 9.9801, "9.98", "absolute stenosis"),  # not "10.0", which reads as relative stenosis
    ("canal_ap_mm", 10.04, "10.0", "relative stenosis"),
    ("canal_ap_mm", 11.951, "11.95", "relative stenosis"),
    ("canal_ap_mm", 6.7238, "6.7", "absolute stenosis"),
    ("canal_area_mm2", 74.96, "74.96", "absolute stenosis"),
    ("left_foramen_width_mm", 2.9996, "2.9996", "stenosis"),
    ("canal_transverse_mm", 9.98, "10.0", None),  # not graded
])
def test_a_value_is_shown_to_the_decimals_that_keep_it_below_the_cut_off_it_is_graded_below(measurement, value, shown,
                                                                                         graded):
    assert value_text(measurement, value) == shown
    values = {"canal_ap_mm": 13.0, "canal_area_mm2": 150.0, "canal_transverse_mm": 20.0,
              "left_foramen_width_mm": 4.0, "right_foramen_width_mm": 4.0} | {measurement: value}
    column = {"canal_ap_mm": "canal_ap_grade", "canal_area_mm2": "canal_area_grade",
              "left_foramen_width_mm": "left_foramen_grade"}.get(measurement)
    assert (grade(values)[column] if column else None) == graded


@pytest.mark.parametrize("measurement, region, expected", [
    ("canal_ap_mm", "lumbar", (10.0, 12.0)),
    ("canal_ap_mm", "cervical", (10.0, 10.0)),  # no relative band
    ("canal_area_mm2", "cervical", (75.0, 100.0)),
    ("canal_ap_mm", THORACIC, None),
    ("canal_area_mm2", SACRAL, None),
    ("left_foramen_width_mm", THORACIC, (3.0, 3.0)),  # a foramen is graded in any region
    ("canal_transverse_mm", "lumbar", None),
])
def test_the_cut_offs_of_each_measurement_in_each_region(measurement, region, expected):
    assert stenosis_cutoffs(measurement, region) == expected


def test_every_measurement_is_shown_with_its_unit():
    assert set(MEASUREMENT_UNITS) == set(MEASUREMENT_COLUMNS)
    assert value_with_unit("canal_ap_mm", 9.9801) == "9.98 mm"
    assert value_with_unit("canal_area_mm2", 74.96) == "74.96 mm²"
    assert value_with_unit("canal_transverse_mm", 15.04) == "15.0 mm"


@pytest.mark.parametrize("ap, cervical, lumbar", [
    (9.9, "absolute stenosis", "absolute stenosis"),
    (10.0, "normal", "relative stenosis"),  # a normal cervical thecal sac on MR (11.2 ± 1.4 mm at C5)
    (11.5, "normal", "relative stenosis"),
    (12.0, "normal", "normal"),
])
def test_cervical_sac_grades_have_no_relative_band(ap, cervical, lumbar):
    values = {"canal_ap_mm": ap, "canal_area_mm2": 150.0, "canal_transverse_mm": 20.0,
              "left_foramen_width_mm": 4.0, "right_foramen_width_mm": 4.0}
    assert grade(values, "cervical")["canal_ap_grade"] == cervical
    assert grade(values, "lumbar")["canal_ap_grade"] == lumbar


@pytest.mark.parametrize("level, study_region, region, ap_grade, area_grade", [
    ("", "lumbar", "lumbar", "relative stenosis", "absolute stenosis"),
    ("disc 3", "cervical", "cervical", "normal", "absolute stenosis"),  # no vertebra named: the study's region
    ("L4-L5", "cervical", "lumbar", "relative stenosis", "absolute stenosis"),
    (" l5-s1", "cervical", "lumbar", "relative stenosis", "absolute stenosis"),
    ("S1-S2", "lumbar", SACRAL, "", ""),  # the sac tapers to its end
    ("C5-C6", "lumbar", "cervical", "normal", "absolute stenosis"),
    ("T11-T12", "lumbar", THORACIC, "", ""),  # the sac holds the cord: no canal cut-off here
    ("Th12/L1", "lumbar", THORACIC, "", ""),
    ("", THORACIC, THORACIC, "", ""),  # a thoracic study
    ("L1-L2", THORACIC, "lumbar", "relative stenosis", "absolute stenosis"),
])
def test_a_slice_named_at_a_level_is_graded_with_its_regions_cut_offs(level, study_region, region, ap_grade,
                                                                      area_grade):
    values = {"canal_ap_mm": 11.0, "canal_area_mm2": 70.0, "canal_transverse_mm": 20.0,
              "left_foramen_width_mm": 2.0, "right_foramen_width_mm": float("nan")}
    assert slice_region(study_region, level) == region
    grades = grade(values, study_region, level)
    assert (grades["canal_ap_grade"], grades["canal_area_grade"]) == (ap_grade, area_grade)
    assert (grades["left_foramen_grade"], grades["right_foramen_grade"]) == ("stenosis", "")  # a foramen is, always


def test_a_level_of_the_other_graded_region_or_of_no_spines_vertebra_is_warned_of():
    assert level_warnings(["L4-L5", "", "T12-L1", "L5-S1"], "lumbar") == []  # a lumbar study's levels
    assert level_warnings(["C5-C6", "L4-L5", "C4-C5", "C5-C6"], "lumbar") == [
        "levels C4-C5, C5-C6 are cervical, in a study graded as lumbar: graded with the cervical cut-offs; check the "
        "level's name"]
    assert level_warnings(["L4-L5"], "cervical") == [
        "level L4-L5 is lumbar, in a study graded as cervical: graded with the lumbar cut-offs; check the level's name"]
    assert level_warnings(["C7-T1", "T12-L1"], THORACIC) == []  # a thoracic study borders on both
    assert level_warnings(["L9-L10"], "lumbar") == ["level L9-L10 names L9 and L10, which no spine has"]


@pytest.mark.parametrize("body_part, descriptions, region", [
    ("CSPINE", ["AX T2 LUMBAR"], "cervical"),  # Body Part Examined first
    ("lspine ", [], "lumbar"),
    ("SPINE", ["t2_tse_tra C-Spine", "MR L-SPINE"], "cervical"),  # the series description before the study's
    ("", ["AX T2 L-SPINE AND C-SPINE", "MRT HWS"], "cervical"),  # one naming both regions says nothing
    ("", ["T2 TL-SPINE", "THORACOLUMBAR"], None),  # thoracolumbar is neither
    ("", ["Pelvis, cervical cancer staging"], None),  # the uterine cervix is not the cervical spine
    ("TSPINE", [], THORACIC),
    ("", ["AX T2 T-SPINE"], THORACIC),
    ("TLSPINE", ["MRT BWS LWS"], None),  # thoracolumbar: neither
])
def test_the_region_a_dicom_header_names(body_part, descriptions, region):
    assert region_named(body_part, descriptions) == region


masks_strategy = st.builds(
    lambda seed, density, smooth: _random_mask(seed, density, smooth),
    st.integers(0, 10_000), st.floats(0.05, 0.6), st.booleans())


def _random_mask(seed, density, smooth):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((40, 40)), 2.0 if smooth else 0.5)
    threshold = np.quantile(field, 1 - density)
    mask = (field >= threshold).astype(float)
    return ndimage.gaussian_filter(mask, 0.7) if smooth else mask


@settings(max_examples=60, deadline=None, derandomize=True)
@given(canal=masks_strategy, left=masks_strategy, rotation=st.floats(-180, 180))
# soft canals fading slowly (about 0.8 for several pixels), whose AP ends lie inside the 0.5 level: found by later
# hypothesis versions, kept whichever one runs
@example(canal=_random_mask(3852, 0.1875, True), left=_random_mask(0, 0.5, False), rotation=1.0)
@example(canal=_random_mask(633, 0.412, True), left=_random_mask(0, 0.5, False), rotation=90.0)
def test_random_masks_never_crash_and_rulers_sit_on_the_boundary(canal, left, rotation):
    """A binary mask's ruler ends lie on its 0.5 level; a soft mask's on the edge of its equivalent sharp mask
    (ramp area / plateau), which lies on its fading rim or, where it fades slowly, within a pixel and a half of it."""
    grid = axial_grid(pixel_mm=(0.7, 0.6), shape=(40, 40), rotation_deg=rotation)
    m = measure_slice({"canal": canal, "left_foramen": left}, grid)
    for name, value in m.values.items():
        assert math.isnan(value) or value >= 0.0, name
    source = {"canal_ap_mm": canal, "canal_transverse_mm": canal, "left_foramen_width_mm": left}
    for name, ruler in m.rulers.items():
        assert ruler.length_mm == pytest.approx(m.values[name])
        component = largest_component(source[name])
        soft = not np.isin(component, (0.0, 1.0)).all()
        for point in (ruler.start_ras, ruler.end_ras):
            on_sharp_edge = on_boundary(component, grid, point)
            on_soft_edge = on_fading_rim(component, grid, point) or on_boundary(component, grid, point, radius_px=1.5)
            assert on_sharp_edge or (soft and on_soft_edge)


def test_a_soft_interior_with_a_strong_rim_puts_the_ruler_end_out_on_the_rim():
    """Where a soft mask's interior is barely above 0.5 and its rim barely below (e.g. where two blurred blobs meet),
    the chord end is the edge of the equivalent sharp mask (ramp area / plateau), beyond the 0.5 level: on the rim,
    not on that level."""
    grid = axial_grid(pixel_mm=(1.0, 1.0), shape=(40, 40))
    mask = np.zeros((40, 40))
    mask[15:25, 10:20] = 0.55
    mask[15:25, 20] = 0.45  # the rim on the patient's left (columns run R→L)
    m = measure_slice({"canal": mask}, grid)
    end = max((m.rulers["canal_transverse_mm"].start_ras, m.rulers["canal_transverse_mm"].end_ras),
              key=lambda point: grid.to_index(point[None])[1][0])
    assert m.canal_transverse_mm == pytest.approx(10.0 + 0.45 / 0.55, abs=0.05)
    assert not on_boundary(mask, grid, end) and on_fading_rim(mask, grid, end)


def on_fading_rim(mask, grid, point_ras):
    """The point lies on a soft mask's fading rim: inside its support, below its 0.5 level."""
    rows, columns = grid.to_index(point_ras[None])
    return 0.0 < float(bilinear(mask, rows, columns)[0]) < 0.5


def on_boundary(mask, grid, point_ras, radius_px=0.75):
    """The 0.5 level of the interpolated mask passes within radius_px pixels of the point."""
    rows, columns = grid.to_index(point_ras[None])
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring_rows = np.concatenate([rows, rows + radius_px * np.cos(angles)])
    ring_columns = np.concatenate([columns, columns + radius_px * np.sin(angles)])
    values = bilinear(mask, ring_rows, ring_columns)
    return values.max() >= 0.5 > values.min()
