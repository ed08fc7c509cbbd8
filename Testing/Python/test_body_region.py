"""The region an image shows: a whole neck is told from a trunk, and nothing is said where the body runs out of view."""
import numpy as np
import pytest
from shapes import axial_grid

from SpinalStenosisLib.body_region import AIR_FRACTION, body_width_mm, region_shown

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
    assert region_shown([neck] * 3) == "cervical"
    trunk = body_slice(320.0, 220.0, 400.0, pixel_mm=1.5, rotation_deg=rotation_deg)
    assert body_width_mm(*trunk) == pytest.approx(320.0, abs=WIDTH_TOLERANCE_MM) and region_shown([trunk]) is None
    cropped = body_slice(130.0, 110.0, 100.0, rotation_deg=rotation_deg)  # a field of view on the spine only
    assert body_width_mm(*cropped) is None and region_shown([cropped]) is None
    assert region_shown([neck, cropped, cropped]) is None  # a neck on 1 of 3 slices is not enough
    assert region_shown([neck, neck, cropped]) == "cervical"


def test_a_neck_in_air_whose_noise_reaches_the_air_threshold_is_still_told():
    image, canal, grid = body_slice(130.0, 110.0, 200.0)
    air = image < 100.0
    threshold = AIR_FRACTION * np.percentile(image, 99)
    image[air] = np.random.default_rng(1).rayleigh(0.6 * threshold, air.sum())  # magnitude noise, its mean 0.75 of it
    assert (image[air] > threshold).mean() > 0.2  # as in the demo's cervical series: a quarter of its air
    assert body_width_mm(image, canal, grid) == pytest.approx(130.0, abs=WIDTH_TOLERANCE_MM)
    assert region_shown([(image, canal, grid)] * 3) == "cervical"


def test_the_demo_series_shows_a_neck_for_the_cervical_region_only():
    from SpinalStenosisLib.demo import DEMO_SEED
    from SpinalStenosisLib.synth.dataset import synthetic_stack
    from SpinalStenosisLib.volume_io import axial_from_array

    for region, shown in (("cervical", "cervical"), ("lumbar", None)):
        image, labels, geometry, _ = synthetic_stack(DEMO_SEED, region)
        volume = axial_from_array(image, geometry)
        slices = [(volume.read_slice(s), labels[s] == 1, volume.layout.slice_grid(s)) for s in range(volume.n_slices)]
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


def test_measure_grades_a_whole_neck_with_the_cervical_cut_offs_unless_told_otherwise(tmp_path, capsys):
    import json

    from SpinalStenosisLib import cli
    from SpinalStenosisLib.synth.dataset import slice_geometry
    from SpinalStenosisLib.volume_io import write_image, write_labels

    for body, width_mm in (("neck", 130.0), ("cropped", 300.0)):
        image, canal, grid = body_slice(width_mm, 110.0, 200.0, canal_radius_mm=5.5)  # AP 11 mm: lumbar relative
        geometry = slice_geometry(grid, 4.0, 3)
        write_image(tmp_path / f"{body}.nii.gz", np.stack([image] * 3), geometry)
        write_labels(tmp_path / f"{body}_labels.nii.gz", np.stack([canal] * 3).astype(np.uint8), geometry)
        for region in (None, "lumbar"):
            out = tmp_path / f"{body}-{region}"
            code = cli.main([str(a) for a in ("measure", tmp_path / f"{body}.nii.gz", "--masks",
                                              tmp_path / f"{body}_labels.nii.gz", "--out", out,
                                              *(("--region", region) if region else ()))])
            printed = capsys.readouterr()
            assert code == 0, printed.err
            document = json.loads((out / "measurements.json").read_text(encoding="utf-8"))
            shown = body == "neck" and region is None
            assert document["region"] == ("cervical" if shown else "lumbar")
            assert ("the image shows a neck" in printed.out) == shown
            assert {entry["canal_ap_grade"] for entry in document["slices"]} == {"normal" if shown
                                                                                else "relative stenosis"}
