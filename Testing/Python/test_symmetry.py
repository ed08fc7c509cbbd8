"""A canal on the axis the image around it mirrors about is judged on it, whatever the shading, the patient's turn,
the pixels, the image's unit or a few pixels far brighter than the rest; a "canal" found on a vessel beside the spine
is judged off it by the vessel's distance from the axis; a window the image does not show is not judged."""
import math

import numpy as np
import pytest
from shapes import VENA_CAVA_LEFT_MM, axial_grid, ellipse, rasterise, spine

from SpinalStenosisLib.measurement import measure_slice
from SpinalStenosisLib.symmetry import MIN_IN_VIEW, OFF_AXIS_MM, _mirror_correlations, canal_off_axis_mm, off_axis

def test_a_canal_on_the_spine_s_axis_is_on_it_and_a_vessel_beside_it_is_off_it_by_its_distance():
    grid = axial_grid((0.7, 0.7), (360, 420))
    image, canal, vessel = spine(grid)
    assert canal_off_axis_mm(image, canal, grid) == 0.0
    assert canal_off_axis_mm(image, vessel, grid) == pytest.approx(abs(VENA_CAVA_LEFT_MM), abs=4.0)
    assert off_axis(canal_off_axis_mm(image, vessel, grid)) and not off_axis(0.0)


@pytest.mark.parametrize("pixel_mm, turned_deg", [((0.5, 0.5), 8.0), ((1.25, 1.25), -10.0), ((0.6, 0.9), 0.0)])
def test_the_judgement_holds_for_a_turned_patient_and_other_pixels(pixel_mm, turned_deg):
    grid = axial_grid(pixel_mm, (round(250 / pixel_mm[0]), round(300 / pixel_mm[1])))
    image, canal, vessel = spine(grid, turned_deg)
    assert canal_off_axis_mm(image, canal, grid) == 0.0
    assert canal_off_axis_mm(image, vessel, grid) >= OFF_AXIS_MM


def test_coil_shading_across_the_image_does_not_move_the_axis():
    grid = axial_grid((0.7, 0.7), (360, 420))
    image, canal, vessel = spine(grid)
    left_mm = (np.arange(grid.shape[1]) - grid.shape[1] / 2) * grid.pixel_size_mm[1]
    shading = (1 / 3) ** (left_mm / 80.0)[None, :]  # a third as bright at each 8 cm towards the patient's left
    assert canal_off_axis_mm(image * shading, canal, grid) == 0.0
    assert canal_off_axis_mm(image * shading, vessel, grid) >= OFF_AXIS_MM


@pytest.mark.parametrize("unit", [1e-20, 1e6])
def test_the_judgement_is_the_same_whatever_the_unit_of_the_image(unit):
    grid = axial_grid((0.7, 0.7), (360, 420))
    image, canal, vessel = spine(grid)
    assert canal_off_axis_mm(image * unit, canal, grid) == 0.0
    assert canal_off_axis_mm(image * unit, vessel, grid) == pytest.approx(canal_off_axis_mm(image, vessel, grid))


def test_a_few_pixels_far_brighter_than_the_image_do_not_move_the_axis():
    """Spikes, or the pile-up beside a screw's artefact: a line through one such pixel mirrors it onto itself."""
    grid = axial_grid((0.7, 0.7), (360, 420))
    image, canal, vessel = spine(grid)
    centre_row, centre_column = np.argwhere(canal).mean(axis=0).round().astype(int)
    rows, columns = np.random.default_rng(0).integers(-40, 40, (2, 5)) + [[centre_row - 10], [centre_column]]
    spiked = image.copy()
    spiked[rows, columns] = 10 * image.max()
    assert canal_off_axis_mm(spiked, canal, grid) == 0.0
    assert canal_off_axis_mm(spiked, vessel, grid) == pytest.approx(canal_off_axis_mm(image, vessel, grid))


def test_a_tight_crop_and_no_canal_are_not_judged():
    grid = axial_grid((0.5, 0.5), (60, 60))  # 30 mm around the canal, as the SCT T2* crop
    image, canal, _ = spine(grid)
    assert math.isnan(canal_off_axis_mm(image, canal, grid))
    assert math.isnan(canal_off_axis_mm(image, np.zeros(grid.shape, bool), grid))
    assert not off_axis(math.nan)


def test_a_canal_off_the_axis_is_to_check():
    grid = axial_grid((0.7, 0.7), (100, 100))
    sac = rasterise(ellipse(0, 0, 10, 7), grid, soft=True)
    assert measure_slice({"canal": sac}, grid, canal_off_axis_mm=26.0).check == "canal"
    assert measure_slice({"canal": sac}, grid, canal_off_axis_mm=0.0).check == ""
    assert measure_slice({"canal": sac}, grid).check == ""  # not judged


def test_each_line_scores_the_correlation_of_its_window_with_the_mirror_over_the_pixels_both_show():
    """The pairs of lines the sums run over give each window's correlation with its mirror image, as computed
    window by window; a window with too few pixels in view, or flat, is not judged."""
    half = 3
    detail = np.random.default_rng(1).normal(size=(2, 5, 13))
    detail[0, :, 0] = np.nan  # beyond the image: a pixel counts only where its mirror is in view too
    detail[1, 2, 5] = np.nan  # two pixels of 35 missing (or one, the window's middle): still judged
    detail[1, :, 6:] = 0.5  # the last window on the second tilt is flat
    expected = np.full((2, detail.shape[2] - 2 * half), -np.inf)
    for tilt, window in np.ndindex(expected.shape):
        values = detail[tilt, :, window:window + 2 * half + 1]
        mirror = values[:, ::-1]
        shown = np.isfinite(values) & np.isfinite(mirror)
        if shown.sum() < MIN_IN_VIEW * values.size or np.ptp(values[shown]) == 0:
            continue
        mean = values[shown].mean()
        expected[tilt, window] = (np.sum((values[shown] - mean) * (mirror[shown] - mean))
                                  / np.sum((values[shown] - mean) ** 2))
    assert np.isinf(expected[0, 0]) and np.isinf(expected[1, -1]) and np.isfinite(expected).sum() == 12
    np.testing.assert_allclose(_mirror_correlations(detail, half), expected, rtol=0, atol=1e-12)
