"""The region an image shows: a whole neck is told from a trunk, the cord in the sac from the roots of the cauda equina,
and nothing is said where the body runs out of view and the sac holds no cord."""
import numpy as np
import pytest
from shapes import axial_grid, in_plane_coordinates

from SpinalStenosisLib.body_region import AIR_FRACTION, CORD, NECK, ShownRegion, body_width_mm, holds_cord, region_shown

SHOWS_NECK, SHOWS_CORD = ShownRegion("cervical", NECK), ShownRegion("cervical", CORD)
# the pixels, and the smoothing (body_region.SMOOTHING_MM), which carries the air threshold 1-2 mm out on each side
WIDTH_TOLERANCE_MM = 5.0


def body_slice(width_mm: float, depth_mm: float, field_mm: float, pixel_mm: float = 0.8, rotation_deg: float = 0.0,
               canal_radius_mm: float = 6.0):
    """An elliptic body (tissue 300, noise) with a bright round canal at its centre, in air, on a square field; the
    image, canal mask and grid."""
    n = int(round(field_mm / pixel_mm))
    grid = axial_grid(pixel_mm=(pixel_mm, pixel_mm), shape=(n, n), rotation_deg=rotation_deg)
    rows, columns = np.indices(grid.shape)
    ras = grid.to_ras(rows, columns)
    anterior, left = grid.in_plane_axes()
    centre = grid.to_ras(np.array(n / 2), np.array(n / 2))
    a, l = (ras - centre) @ anterior, (ras - centre) @ left
    body = (l / (width_mm / 2)) ** 2 + (a / (depth_mm / 2)) ** 2 <= 1
    canal = a ** 2 + l ** 2 <= canal_radius_mm ** 2
    rng = np.random.default_rng(0)
    image = np.where(canal, 900.0, np.where(body, 300.0, 5.0)) + rng.normal(0, 5, grid.shape)
    return image, canal, grid


@pytest.mark.parametrize("rotation_deg", [0.0, 30.0])
def test_a_whole_neck_is_told_from_a_trunk_and_a_body_cut_by_the_field_of_view_says_nothing(rotation_deg):
    neck = body_slice(130.0, 110.0, 200.0, rotation_deg=rotation_deg)
    assert body_width_mm(*neck) == pytest.approx(130.0, abs=WIDTH_TOLERANCE_MM)
    assert region_shown([neck] * 3) == SHOWS_NECK
    trunk = body_slice(320.0, 220.0, 400.0, pixel_mm=1.5, rotation_deg=rotation_deg)
    assert body_width_mm(*trunk) == pytest.approx(320.0, abs=WIDTH_TOLERANCE_MM) and region_shown([trunk]) is None
    cropped = body_slice(130.0, 110.0, 100.0, rotation_deg=rotation_deg)  # a field of view on the spine only
    assert body_width_mm(*cropped) is None and region_shown([cropped]) is None
    assert region_shown([neck, cropped, cropped]) is None  # a neck on 1 of 3 slices is not enough
    assert region_shown([neck, neck, cropped]) == SHOWS_NECK


def test_a_neck_in_air_whose_noise_reaches_the_air_threshold_is_still_told():
    image, canal, grid = body_slice(130.0, 110.0, 200.0)
    air = image < 100.0
    threshold = AIR_FRACTION * np.percentile(image, 99)
    image[air] = np.random.default_rng(1).rayleigh(0.6 * threshold, air.sum())  # magnitude noise, its mean 0.75 of it
    assert (image[air] > threshold).mean() > 0.2  # as in the demo's cervical series: a quarter of its air
    assert body_width_mm(image, canal, grid) == pytest.approx(130.0, abs=WIDTH_TOLERANCE_MM)
    assert region_shown([(image, canal, grid)] * 3) == SHOWS_NECK


def test_the_demo_series_shows_a_neck_for_the_cervical_region_only():
    from SpinalStenosisLib.demo import DEMO_SEED
    from SpinalStenosisLib.synth.dataset import synthetic_stack
    from SpinalStenosisLib.volume_io import axial_from_array

    for region, shown in (("cervical", SHOWS_NECK), ("lumbar", None)):
        image, labels, geometry, _ = synthetic_stack(DEMO_SEED, region)
        volume = axial_from_array(image, geometry)
        slices = [(volume.read_slice(s), labels[s] == 1, volume.layout.slice_grid(s)) for s in range(volume.n_slices)]
        assert region_shown(slices) == shown


def sac_slice(inside=None, sac_radius_mm: float = 7.5, field_mm: float = 60.0, dark: float = 400.0):
    """A slice of a 130 mm neck (by default a field cropped to the spine, which cuts the body: no neck to tell), its
    bright sac holding a dark region where inside(left_mm, anterior_mm) (measured from the sac's centre), if any: the
    image, sac mask, grid."""
    image, sac, grid = body_slice(130.0, 110.0, field_mm, canal_radius_mm=sac_radius_mm)
    if inside is not None:
        left_mm, anterior_mm = in_plane_coordinates(grid, *np.indices(grid.shape))
        image[sac & inside(left_mm, anterior_mm)] = dark
    return image, sac, grid


def cord(left_mm, anterior_mm):
    return (left_mm / 5.0) ** 2 + (anterior_mm / 3.5) ** 2 <= 1  # 10 x 7 mm, 55 mm²: a cervical cord


def test_the_cord_in_the_sac_is_told_from_a_clump_of_roots_and_from_roots_layered_at_its_back():
    assert holds_cord(*sac_slice(cord))
    assert not holds_cord(*sac_slice())  # CSF throughout
    assert not holds_cord(*sac_slice(lambda left, anterior: left ** 2 + anterior ** 2 <= 2.0 ** 2))  # 13 mm² of roots
    assert not holds_cord(*sac_slice(lambda left, anterior: anterior < -1.0))  # the back of the sac dark: no CSF there
    assert not holds_cord(*sac_slice(cord, sac_radius_mm=5.0))  # a cord filling the sac: no CSF around it to tell
    image, sac, grid = sac_slice(cord)
    assert not holds_cord(1000.0 - image, sac, grid)  # a T1 image: the CSF dark, the cord bright


@pytest.mark.parametrize("rotation_deg", [0.0, 30.0])
def test_a_dark_region_beside_the_sac_s_midline_is_no_cord(rotation_deg):
    def clump(left_mm: float):
        return lambda left, anterior: (left - left_mm) ** 2 + anterior ** 2 <= 4.0 ** 2  # 50 mm²

    image, sac, grid = body_slice(130.0, 110.0, 60.0, rotation_deg=rotation_deg, canal_radius_mm=9.0)
    left_mm, anterior_mm = in_plane_coordinates(grid, *np.indices(grid.shape))
    for left_of_centre_mm, is_cord in ((0.0, True), (1.5, True), (3.0, False), (-3.0, False)):
        shown = np.where(sac & clump(left_of_centre_mm)(left_mm, anterior_mm), 400.0, image)
        assert holds_cord(shown, sac, grid) == is_cord


def test_a_series_cropped_to_the_spine_whose_sac_holds_the_cord_shows_the_cervical_spine():
    with_cord, without = sac_slice(cord), sac_slice()
    assert region_shown([with_cord] * 3) == SHOWS_CORD
    assert region_shown([with_cord, with_cord, without]) == SHOWS_CORD
    assert region_shown([with_cord, without, without]) is None  # the cord on 1 of 3 slices is not enough
    assert region_shown([with_cord]) is None and region_shown([with_cord] * 2) == SHOWS_CORD  # nor 1 slice alone
    with_neck = sac_slice(cord, field_mm=200.0)
    assert holds_cord(*with_neck) and region_shown([with_neck] * 3) == SHOWS_NECK  # the neck said first


def test_the_demo_series_cropped_to_the_spine_shows_the_cord_for_the_cervical_region_only():
    """The demo's series with their true masks, each slice cut to 60 mm around the sac (0.7 mm pixels lumbar, 0.5
    cervical), so that no neck is in view: the cervical sac holds the cord on 4 of the 6 slices (its stenosed
    C5-C6 level's on neither: the cord fills what is left of the sac), the lumbar sac on none."""
    from SpinalStenosisLib.demo import DEMO_SEED
    from SpinalStenosisLib.synth.dataset import synthetic_stack
    from SpinalStenosisLib.volume_io import axial_from_array

    for region, shown in (("cervical", SHOWS_CORD), ("lumbar", None)):
        image, labels, geometry, _ = synthetic_stack(DEMO_SEED, region)
        volume = axial_from_array(image, geometry)
        slices = []
        for s in range(volume.n_slices):
            grid = volume.layout.slice_grid(s)
            half = round(30.0 / grid.pixel_size_mm[0])
            row, column = (int(round(index.mean())) - half for index in np.nonzero(labels[s] == 1))
            box = (slice(row, row + 2 * half), slice(column, column + 2 * half))
            slices.append((volume.read_slice(s)[box], labels[s][box] == 1,
                           grid.crop(row, column, 2 * half, 2 * half, (2 * half, 2 * half))))
        assert region_shown(slices) == shown


def test_a_neck_longer_than_the_field_front_to_back_is_still_measured_across():
    image, canal, grid = body_slice(130.0, 260.0, 200.0)
    assert body_width_mm(image, canal, grid) == pytest.approx(130.0, abs=WIDTH_TOLERANCE_MM)


def test_a_bright_sac_in_dark_tissue_is_no_body_outline():
    image, canal, grid = body_slice(130.0, 110.0, 200.0)
    image[~canal] = 5.0  # all but the sac as dark as air, as in a fat-suppressed slice far from the coil, and
    image[:10] = 900.0  # something as bright as the sac elsewhere (so that the sac is an island above the air)
    assert body_width_mm(image, canal, grid) < 20.0 and region_shown([(image, canal, grid)]) is None
    assert region_shown([(image, np.zeros_like(canal), grid)]) is None  # no canal: nothing said


def test_measure_grades_a_whole_neck_with_the_cervical_cut_offs_unless_told_otherwise(tmp_path, capsys, monkeypatch):
    import json

    from conftest import region_looks

    from SpinalStenosisLib import cli
    from SpinalStenosisLib.synth.dataset import slice_geometry
    from SpinalStenosisLib.volume_io import write_image, write_labels

    looks = region_looks(monkeypatch)  # the image is looked at for its region only where that grades it

    for body, width_mm in (("neck", 130.0), ("cropped", 300.0)):
        image, canal, grid = body_slice(width_mm, 110.0, 200.0, canal_radius_mm=5.5)  # AP 11 mm: lumbar relative
        geometry = slice_geometry(grid, 4.0, 3)
        write_image(tmp_path / f"{body}.nii.gz", np.stack([image] * 3), geometry)
        write_labels(tmp_path / f"{body}_labels.nii.gz", np.stack([canal] * 3).astype(np.uint8), geometry)
        for region in (None, "lumbar"):
            looks.clear()
            out = tmp_path / f"{body}-{region}"
            code = cli.main([str(a) for a in ("measure", tmp_path / f"{body}.nii.gz", "--masks",
                                              tmp_path / f"{body}_labels.nii.gz", "--out", out,
                                              *(("--region", region) if region else ()))])
            printed = capsys.readouterr()
            assert code == 0, printed.err
            document = json.loads((out / "measurements.json").read_text(encoding="utf-8"))
            shown = body == "neck" and region is None
            assert document["region"] == ("cervical" if shown else "lumbar") and len(looks) == (region is None)
            assert ("the image shows a whole neck" in printed.out) == shown
            assert {entry["canal_ap_grade"] for entry in document["slices"]} == {"normal" if shown
                                                                                else "relative stenosis"}


def test_measure_grades_a_series_cropped_to_a_sac_holding_the_cord_with_the_cervical_cut_offs(tmp_path, capsys):
    import json

    from SpinalStenosisLib import cli
    from SpinalStenosisLib.synth.dataset import slice_geometry
    from SpinalStenosisLib.volume_io import write_image, write_labels

    image, sac, grid = sac_slice(cord, sac_radius_mm=5.5)  # AP 11 mm: a lumbar relative stenosis
    geometry = slice_geometry(grid, 4.0, 3)
    write_image(tmp_path / "neck.nii.gz", np.stack([image] * 3), geometry)
    write_labels(tmp_path / "labels.nii.gz", np.stack([sac] * 3).astype(np.uint8), geometry)
    assert cli.main([str(a) for a in ("measure", tmp_path / "neck.nii.gz", "--masks", tmp_path / "labels.nii.gz",
                                      "--out", tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "graded with the cervical cut-offs: the image shows the spinal cord inside the sac" in printed
    document = json.loads((tmp_path / "out" / "measurements.json").read_text(encoding="utf-8"))
    assert document["region"] == "cervical"
    assert {entry["canal_ap_grade"] for entry in document["slices"]} == {"normal"}
