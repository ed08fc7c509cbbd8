"""A canal outlined in noise alone scores about 1; one on the edge of a visible sac scores far more. An image
clipped at its bright end is told from one that is not, and a label image or a CT from an MR image; a probability map
is warned of. An image's padding is told from the zeros of its noise. An image normalised to zero mean, or with an
offset added, is seen from its darkest level up."""
import io
import math

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from SpinalStenosisLib.geometry import PlaneGrid
from SpinalStenosisLib.visibility import (CHECKED_SLICES, MIN_CANAL_EDGE_TO_NOISE, NEGATIVE_SHARE,
                                          blank_slice_warnings, canal_edge_to_noise, checked_pixels, clipped_canal,
                                          clipped_image_warnings, despiked, intensity_floor, is_blank, label_values,
                                          noise_sd, not_an_mr_image, offset_warnings, padding, padding_value,
                                          two_level_share, two_level_warnings)
from SpinalStenosisLib.synth.dataset import synthetic_slice


def axial_grid(pixel_mm, shape):
    return PlaneGrid(np.zeros(3), np.array([0.0, -pixel_mm, 0.0]), np.array([-pixel_mm, 0.0, 0.0]), shape)


def test_noise_sd_is_the_pixel_noise_not_the_anatomy():
    rows, columns = np.indices((200, 200))
    anatomy = (0.3 * columns + 40.0 * (np.hypot(rows - 100, columns - 100) < 30)  # a ramp, a sac, a bone
               + 25.0 * ((np.abs(rows - 40) < 15) & (np.abs(columns - 60) < 40)))
    image = anatomy + np.random.default_rng(1).normal(0.0, 3.0, anatomy.shape)
    assert noise_sd(image) == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize("pixel_mm", [0.5, 1.0, 1.5])
def test_an_outline_in_noise_scores_about_one_and_one_on_a_visible_sac_far_more(pixel_mm):
    grid = axial_grid(pixel_mm, (160, 160))
    rows, columns = np.indices(grid.shape)
    canal = np.hypot(rows - 80, columns - 80) < 7.0 / pixel_mm  # a 14 mm sac
    rng = np.random.default_rng(7)
    in_noise = [canal_edge_to_noise(rng.normal(100.0, 10.0, grid.shape), canal, grid) for _ in range(10)]
    assert 0.8 < np.mean(in_noise) < 1.2
    assert max(in_noise) < MIN_CANAL_EDGE_TO_NOISE
    sac = rng.normal(100.0, 10.0, grid.shape) + 30.0 * canal  # CSF three noise sd brighter than around it
    assert canal_edge_to_noise(sac, canal, grid) > 2 * MIN_CANAL_EDGE_TO_NOISE
    shifted = np.roll(canal, int(10 / pixel_mm), axis=1)  # an outline beside the sac, half on its edge
    assert canal_edge_to_noise(sac, canal, grid) > canal_edge_to_noise(sac, shifted, grid)


@pytest.mark.parametrize("unit", [1e-20, 1e6])
def test_an_outline_scores_the_same_whatever_the_unit_of_the_image(unit):
    grid = axial_grid(1.0, (100, 100))
    rows, columns = np.indices(grid.shape)
    canal = np.hypot(rows - 50, columns - 50) < 7.0
    sac = np.random.default_rng(8).normal(100.0, 10.0, grid.shape) + 30.0 * canal
    assert canal_edge_to_noise(sac * unit, canal, grid) == pytest.approx(canal_edge_to_noise(sac, canal, grid))
    drawn = 100.0 + 100.0 * canal  # no noise: an edge far clearer than it
    assert canal_edge_to_noise(drawn * unit, canal, grid) > 1e6


def test_no_canal_scores_nan():
    grid = axial_grid(1.0, (50, 50))
    assert math.isnan(canal_edge_to_noise(np.ones(grid.shape), np.zeros(grid.shape, bool), grid))


def test_a_canal_clipped_at_the_images_brightest_value_is_told_from_a_bright_or_a_drawn_one():
    rows, columns = np.indices((120, 120))
    canal = np.hypot(rows - 60, columns - 60) < 12
    rng = np.random.default_rng(3)
    image = 100.0 + 100.0 * canal + 60.0 * (np.abs(columns - 60) < 4) * (rows > 72) + rng.normal(0, 10, canal.shape)
    assert not clipped_canal(image, canal)  # the brightest pixel is one of the canal's, the rest are not
    window_top = np.percentile(image[canal], 40)  # an export whose window ends inside the CSF's brightness
    assert clipped_canal(np.minimum(image, window_top), canal)
    assert not clipped_canal(np.minimum(image, np.percentile(image[canal], 90)), canal)  # a tenth of it clipped
    drawn = 100.0 + 100.0 * canal  # flat, without noise: at its maximum, not clipped
    assert not clipped_canal(drawn, canal) and not clipped_canal(image, np.zeros_like(canal))
    stack = [image, np.minimum(image, window_top), np.minimum(image, window_top), np.zeros_like(image)]
    canals = np.stack([canal, canal, canal, np.zeros_like(canal)])
    [warning] = clipped_image_warnings(lambda s: stack[s], canals)
    assert warning.startswith("the image is clipped at its bright end")
    assert "on 2 of the 3 slices with a canal" in warning
    [warning] = clipped_image_warnings(lambda s: stack[1 + s], canals[1:2])  # one slice: no count
    assert "brightest value, so" in warning
    assert clipped_image_warnings(lambda s: stack[s], canals[:1]) == []


def test_a_label_image_is_told_from_an_mr_image_by_its_few_small_whole_values():
    from conftest import phantom_arrays

    image, labels, _ = phantom_arrays()
    assert label_values(lambda s: labels[s], len(labels)) == [0, 1, 2, 3]  # this project's segmentation
    assert label_values(lambda s: labels[s] * 50.0, len(labels)) == [0, 50, 100, 150]  # the dataset's label PNGs
    assert label_values(lambda s: image[s], len(image)) is None  # a drawn image of 100, 500 and 900
    eight_bit = np.clip(np.random.default_rng(0).normal(120.0, 40.0, (3, 64, 64)), 0, 255).round()
    eight_bit[0] = 0.0  # a blank first slice decides nothing
    assert label_values(lambda s: eight_bit[s], len(eight_bit)) is None
    assert label_values(lambda s: labels[s] + 0.5, len(labels)) is None
    assert label_values(lambda s: np.zeros((64, 64)), 3) is None  # blank: nothing to find, not a label image


def test_a_blank_image_is_not_measured_and_its_blank_slices_are_named():
    assert not_an_mr_image(lambda s: np.full((64, 64), 7.0), 3) == ("every pixel of the image is 7: a blank image (an "
                                                                     "empty export?)")
    mr = synthetic_slice(np.random.default_rng(0), "lumbar", with_truth=False).image
    blank = np.zeros_like(mr)
    assert is_blank(blank) and not is_blank(mr)
    assert not_an_mr_image(lambda s: [mr, blank, mr][s], 3) == ""
    n_slices = 2 * CHECKED_SLICES + 1  # every other slice checked first, all blank: the others are read too
    assert not_an_mr_image(lambda s: mr if s == 1 else blank, n_slices) == ""
    assert blank_slice_warnings([]) == []
    assert blank_slice_warnings([4]) == ["slice 4 holds one value throughout (blank: padding, or a slice lost in the "
                                         "export): nothing is measured on it"]
    assert blank_slice_warnings([4, 9])[0].startswith("slices 4, 9 hold one value throughout")


def test_a_segmentation_of_many_structures_is_told_by_its_flat_regions_an_8_bit_export_is_not():
    organs = np.kron(np.arange(24.0).reshape(4, 6), np.ones((16, 16)))  # 24 labelled regions
    assert label_values(lambda s: organs, 3) == list(range(24))
    small = np.kron(np.arange(260.0).reshape(13, 20) % 24, np.ones((5, 5)))[:64, :96]  # a slice of small ones
    assert label_values(lambda s: [small, organs, organs][s], 3) == list(range(24))  # decided on the whole
    assert not_an_mr_image(lambda s: organs, 3).startswith(
        "the image holds only 24 whole values, from 0 to 23, in flat regions: a label image")
    mr = synthetic_slice(np.random.default_rng(0), "lumbar", with_truth=False).image
    for levels in (255, 30):  # 8-bit exports, the coarsest with 31 grey levels
        export = np.round(mr / mr.max() * levels)
        assert label_values(lambda s: export, 3) is None
    saved = io.BytesIO()
    Image.fromarray(np.round(mr / mr.max() * 255).astype(np.uint8)).save(saved, "JPEG", quality=5)
    compressed = np.asarray(Image.open(saved), float)  # three quarters smoothed flat, but over 200 values
    assert label_values(lambda s: compressed, 3) is None
    top = np.percentile(mr[mr > 0], 10)
    clipped = np.round(np.minimum(mr, top) / top * 255)  # windowed so narrowly that nine tenths of it is white
    assert label_values(lambda s: clipped, 3) is None


def test_a_spike_is_seen_as_its_neighbours_and_anything_larger_or_dimmer_as_it_is():
    mr = synthetic_slice(np.random.default_rng(0), "lumbar", with_truth=False).image
    assert despiked(mr) is mr  # an MR image has no pixel twice as bright as all its neighbours and among its brightest
    spiked = mr.copy()
    spiked[100, 120] = 10 * mr.max()
    spiked[200:202, 50:52] = 10 * mr.max()  # four pixels: a structure, however bright
    spiked[5, 5] = 3 * spiked[4:7, 4:7].max()  # among the darkest: noise in the air
    seen = despiked(spiked)
    neighbours = np.delete(spiked[99:102, 119:122].ravel(), 4)
    assert np.sort(neighbours)[3] <= seen[100, 120] <= np.sort(neighbours)[4]  # their median
    assert np.array_equal(np.delete(seen.ravel(), 100 * mr.shape[1] + 120),
                          np.delete(spiked.ravel(), 100 * mr.shape[1] + 120))


def test_a_probability_map_is_told_by_its_pixels_at_its_extremes_an_mr_image_with_air_around_it_or_spikes_is_not():
    mr = synthetic_slice(np.random.default_rng(0), "lumbar", with_truth=False).image
    assert two_level_warnings(two_level_share(mr.ravel())) == []
    structure = np.zeros(mr.shape)
    structure[100:130, 150:170] = 1.0
    probabilities = ndimage.gaussian_filter(structure, 1.5)  # soft at its edges, as a segmentation network's
    [warning] = two_level_warnings(two_level_share(probabilities.ravel()))
    assert warning.startswith("99 % of the image's pixels are at its extremes (within 1 % of its brightest value")
    assert two_level_share((probabilities - 0.5).ravel(), floor=-0.5) == two_level_share(probabilities.ravel())
    # the background's map (a softmax's first channel), bright nearly everywhere: a structure that fills the image
    assert two_level_warnings(two_level_share(1.0 - probabilities.ravel()))
    body = ndimage.gaussian_filter((np.hypot(*np.indices(mr.shape) - np.array(mr.shape)[:, None, None] / 2)
                                    < 0.4 * mr.shape[0]).astype(float), 1.5)
    assert 0.4 < float(np.mean(body > 0.5)) < 0.6  # half bright, half dark: neither alone is 90 %
    assert two_level_warnings(two_level_share(body.ravel()))
    assert two_level_share(np.zeros(mr.shape).ravel()) == 0.0  # blank: nothing to say
    spiked = mr.copy()
    spiked.ravel()[np.random.default_rng(1).choice(mr.size, mr.size // 20_000, replace=False)] = 100 * mr.max()
    assert two_level_warnings(two_level_share(spiked.ravel())) == []  # a few spikes do not make it look two-level


def test_a_ct_is_told_from_an_mr_image_by_its_fat_and_air_in_hounsfield_units():
    rows, columns = np.indices((128, 128))
    body = np.hypot(rows - 64, columns - 64) < 50
    noise = np.random.default_rng(3).normal(0.0, 20.0, (3, 128, 128))
    ct = np.where(body, 40.0, -1000.0) + noise  # soft tissue in air
    assert not_an_mr_image(lambda s: ct[s], 3).startswith("52 % of the image's pixels are at -50 or below, as fat")
    assert not_an_mr_image(lambda s: ct[s] + 1024.0, 3) == ""  # stored without the rescale intercept: not told
    spine_ct = np.where(np.abs(columns - 64) < 20, 40.0, -100.0) + noise  # a field of view inside the body: fat
    assert not_an_mr_image(lambda s: spine_ct[s], 3).startswith("69 % of the image's pixels are at -50 or below")
    mr = np.where(body, 300.0, 0.0) + np.abs(noise)
    assert not_an_mr_image(lambda s: mr[s], 3) == ""
    assert not_an_mr_image(lambda s: (mr[s] - mr.mean()) / mr.std(), 3) == ""  # normalised, negative below the mean
    padded = np.where(rows + columns < 40, -1024.0, mr)  # a corner filled with -1024 beyond the imaged area
    assert padding_value(padded.ravel()) is None  # as a CT's air clipped at -1000 would be: told as a CT, with a hint
    assert not_an_mr_image(lambda s: padded[s], 3).endswith(
        "a CT image (if it is an MR image padded with -1024 beyond its imaged area, set that padding to 0)")
    assert padding_value(np.where(rows + columns < 40, -32768.0, mr).ravel()) == -32768.0
    assert padding_value(np.where(rows + columns < 40, -1.0, mr).ravel()) == -1.0
    in_view = np.hypot(rows - 64, columns - 64) < 62
    assert padding_value(np.where(in_view, ct, -3024.0).ravel()) is None  # a CT padded beyond its round view: air
    assert padding_value(mr.ravel()) is None and padding_value(ct.ravel()) is None
    inverted = "99.5 % of the image's pixels are below 0: its intensities are inverted (a negative rescale slope?)"
    assert not_an_mr_image(lambda s: -mr[s], 3) == inverted + ", or it is a map of differences"
    assert not_an_mr_image(lambda s: np.zeros((128, 128)), 3).endswith("a blank image (an empty export?)")


def test_padding_is_the_solid_zeros_that_reach_the_edge_not_the_zeros_of_a_dark_images_noise():
    image = np.random.default_rng(3).poisson(1.5, (80, 100)).astype(np.float32)  # dark: a zero on one pixel in five
    assert (image[0] == 0).any() and padding(image) is None
    image[:, 70:] = 0.0  # what a reslice fills beyond the imaged area
    image[30:40, 20:30] = 0.0  # solid zeros that do not reach the edge: no padding
    expected = np.zeros(image.shape, bool)
    expected[:, 70:] = True
    assert np.array_equal(padding(image), expected)
    assert padding(np.full((40, 40), 100.0, np.float32)) is None


def test_an_image_with_an_offset_added_is_seen_from_its_darkest_level_and_a_crop_without_air_from_zero():
    rng = np.random.default_rng(4)
    magnitude = np.abs(rng.normal(0.0, 4.0, (6, 64, 64)))  # air: the noise's magnitude
    magnitude[:, 12:52, 10:54] += rng.uniform(100.0, 900.0, (6, 40, 44))  # the body
    raised = magnitude + 0.2 * np.percentile(magnitude, 99)  # the air no longer dark
    share, floor = intensity_floor(checked_pixels(lambda s: raised[s], 6))
    assert share == 0.0 and floor == pytest.approx(np.percentile(raised, 0.5))
    assert np.median(raised[:, :10, :] - floor) == pytest.approx(np.median(magnitude[:, :10, :]), abs=2.0)
    [warning] = offset_warnings(share, floor)
    assert warning.startswith(f"the image's darkest level ({floor:.4g}) is far above 0, as in an image with an offset")
    tight_crop = rng.uniform(45.0, 900.0, (6, 40, 44))  # no air in view, its darkest tissue at 5 % of its brightest
    assert intensity_floor(checked_pixels(lambda s: tight_crop[s], 6)) == (0.0, 0.0)


def test_an_image_normalised_to_zero_mean_is_seen_from_its_darkest_level_and_an_mr_image_from_zero():
    rng = np.random.default_rng(3)
    magnitude = np.abs(rng.normal(0.0, 4.0, (6, 64, 64)))  # air: the noise's magnitude
    magnitude[:, 12:52, 10:54] += rng.uniform(100.0, 900.0, (6, 40, 44))  # the body
    assert intensity_floor(checked_pixels(lambda s: magnitude[s], 6)) == (0.0, 0.0)
    ringing = magnitude.copy()
    ringing[:, 11, 10:54] = -30.0  # interpolation's overshoot beside an edge: a few pixels below 0
    share, floor = intensity_floor(checked_pixels(lambda s: ringing[s], 6))
    assert 0 < share < NEGATIVE_SHARE and floor == 0.0 and offset_warnings(share, floor) == []

    normalised = (magnitude - magnitude.mean()) / magnitude.std()
    share, floor = intensity_floor(checked_pixels(lambda s: normalised[s], 6))
    assert share > 0.5 and floor == pytest.approx(np.percentile(normalised, 0.5))
    air = normalised[:, :10, :] - floor  # the air, seen from the floor up: as dark as the magnitude image's, to scale
    assert np.median(air) * magnitude.std() == pytest.approx(np.median(magnitude[:, :10, :]), abs=1.0)
    [warning] = offset_warnings(share, floor)
    assert f"{100 * share:.0f} % of the image's pixels are below 0" in warning and f"({floor:.4g})" in warning
