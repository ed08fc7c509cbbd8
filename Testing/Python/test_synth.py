"""The synthetic generator: label consistency, patient sides, truth, determinism, parameter coverage, files."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SpinalStenosisLib.crop import CROP_SIZE, ROI_SIZE
from SpinalStenosisLib.geometry import PlaneGrid
from SpinalStenosisLib.measurement import masks_from_labels, measure_slice
from SpinalStenosisLib.pipeline import measure_with_labels
from SpinalStenosisLib.synth.anatomy import (CANAL_TISSUES, CERVICAL_LEVELS, LUMBAR_LEVELS, SLICE_KINDS,
                                             STENOSIS_GRADES, T, behind_sac_on_midline, sac_area_mm2, sample_anatomy)
from SpinalStenosisLib.synth.augment import AUGMENTATIONS, intensity_curve
from SpinalStenosisLib.synth.dataset import synthetic_slice, write_dataset
from SpinalStenosisLib.synth.render import CONTRASTS
from SpinalStenosisLib.synth.sampler import (AUXILIARY_GROUPS, canal_pair, roi_pair, sample_scene,
                                             smeared_front_to_back)
from SpinalStenosisLib.training import synthetic_pair
from SpinalStenosisLib.volume_io import open_axial, read_labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("region", ["lumbar", "cervical"])
def test_canal_is_dura_and_its_contents_and_foramina_sit_on_their_side(seed, region):
    case = synthetic_slice(np.random.default_rng(seed), region, with_truth=False)
    tissues, labels = case.tissues, case.labels
    canal = labels == 1
    assert canal.any()
    assert set(np.unique(tissues[canal])) <= {T["dura"], T["csf"], T["cauda_equina_roots"], T["spinal_cord"],
                                                 T["csf_flow_void"]} | set(np.unique(tissues[~canal]))
    dura_or_inside = np.isin(tissues, [T["dura"], T["csf"], T["cauda_equina_roots"], T["spinal_cord"]])
    assert (canal & dura_or_inside).sum() >= 0.8 * dura_or_inside.sum()
    # rows run A→P and columns patient R→L: the left foramen lies right of the canal in the image
    canal_column = np.nonzero(canal)[1].mean()
    for value, side in ((2, +1), (3, -1)):
        columns = np.nonzero(labels == value)[1]
        if len(columns):
            assert np.sign(columns.mean() - canal_column) == side


def test_truth_equals_measuring_the_written_labels_within_a_pixel(tmp_path):
    """truth.csv comes from 0.08 mm label maps; the written native labels measure the same within about a pixel
    wherever the structure is resolvable at the native pixel size (a gap under ~2 pixels cannot survive there)."""
    write_dataset(tmp_path / "synth", count=9, seed=5, gallery_real=None)
    rows = list(csv.DictReader(open(tmp_path / "synth" / "truth.csv", encoding="utf-8")))
    assert len(rows) == 9
    compared = 0
    for row in rows:
        volume = open_axial(tmp_path / "synth" / f"{row['case']}_image.nii.gz")
        labels = read_labels(tmp_path / "synth" / f"{row['case']}_labels.nii.gz", volume.source_geometry)
        measured = measure_with_labels(volume, labels).measurements[0].values
        pixel = float(row["pixel_mm"]) * 1.1  # rows may be up to 10 % coarser than columns
        for key, value in measured.items():
            truth = float(row[key])
            if math.isnan(truth) or truth < 2.0 * pixel:
                assert math.isnan(value) or value < 4.0 * pixel, (row["case"], key, value, truth)
                continue
            limit = 0.08 * truth + 2 * pixel if key == "canal_area_mm2" else 1.5 * pixel
            assert abs(value - truth) <= limit, (row["case"], key, value, truth)
            compared += 1
    assert compared >= 30
    assert (tmp_path / "synth" / "gallery.png").stat().st_size > 10_000


def test_the_gallery_shows_the_real_images_it_finds_and_passes_over_the_others(tmp_path, monkeypatch):
    from SpinalStenosisLib.geometry import VolumeGeometry
    from SpinalStenosisLib.synth import gallery
    from SpinalStenosisLib.volume_io import write_image

    real = tmp_path / "real"
    found, unreadable = (real / relative for relative, _ in gallery.REAL_PICKS[:2])  # the rest are missing
    for path in (found, unreadable):
        path.parent.mkdir(parents=True)
    voxels = np.random.default_rng(0).uniform(0.0, 1000.0, (5, 64, 48)).astype(np.float32)
    write_image(found, voxels, VolumeGeometry(voxels.shape[::-1], np.diag([-0.8, -0.8, 4.0, 1.0])))
    unreadable.write_bytes(b"not an image")
    shown = []
    window = gallery._window
    monkeypatch.setattr(gallery, "_window", lambda ax, image, grid, centre, title: shown.append(
        (image, centre, title)) or window(ax, image, grid, centre, title))
    gallery.write_gallery(tmp_path / "gallery.png", [], real)
    [(image, centre, title)] = shown
    assert title == f"REAL {found.name[:28]}" and centre == (32.0, 24.0)
    np.testing.assert_array_equal(image, voxels[2])  # the slice at its pick's fraction (a half), rows A→P
    assert (tmp_path / "gallery.png").stat().st_size > 1_000


def test_files_have_real_geometry_and_patient_sides_survive_random_storage(tmp_path):
    write_dataset(tmp_path / "s", count=6, seed=11, region="lumbar", gallery_real=None)
    directions = set()
    for n in range(6):
        image = sitk.ReadImage(str(tmp_path / "s" / f"case_{n:04d}_image.nii.gz"))
        directions.add(tuple(np.round(image.GetDirection(), 3)))
        volume = open_axial(tmp_path / "s" / f"case_{n:04d}_image.nii.gz")
        stack = volume.from_source_grid(read_labels(tmp_path / "s" / f"case_{n:04d}_labels.nii.gz",
                                                    volume.source_geometry))[0]
        canal_column = np.nonzero(stack == 1)[1].mean()
        for value, side in ((2, +1), (3, -1)):
            if (stack == value).any():
                assert np.sign(np.nonzero(stack == value)[1].mean() - canal_column) == side
    assert len(directions) > 1


def test_same_seed_same_sample_and_different_seeds_differ():
    a = roi_pair(np.random.default_rng(42))
    b = roi_pair(np.random.default_rng(42))
    c = roi_pair(np.random.default_rng(43))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    first = synthetic_pair("canal", np.random.default_rng([3, 0]))
    again = synthetic_pair("canal", np.random.default_rng([3, 0]))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])


def test_a_lower_noise_scale_gives_the_same_slice_with_less_noise():
    def case(noise_scale):
        return synthetic_slice(np.random.default_rng([5, 1]), "lumbar", noise_scale=noise_scale)

    noisy, quiet, silent = case(1.0), case(0.1), case(0.0)
    assert np.array_equal(noisy.labels, quiet.labels)
    np.testing.assert_equal(noisy.truth, quiet.truth)  # NaN (an absent foramen) equals NaN here
    assert np.array_equal(case(1.0).image, noisy.image)
    noise_left = np.abs(quiet.image - silent.image).mean()
    assert 0 < noise_left < 0.3 * np.abs(noisy.image - silent.image).mean()


def test_training_pairs_have_the_network_shapes():
    image, target = roi_pair(np.random.default_rng(0))
    assert image.shape == target.shape == (ROI_SIZE, ROI_SIZE) and set(np.unique(target)) <= {0.0, 1.0}
    image, targets = canal_pair(np.random.default_rng(0), "cervical")
    assert image.shape == (CROP_SIZE, CROP_SIZE) and targets.shape == (3, CROP_SIZE, CROP_SIZE)
    assert 0.0 <= targets.min() and targets.max() <= 1.0 and targets[1].max() == 1.0


def test_auxiliary_targets_follow_the_same_pair_and_hold_the_tissues_beside_the_sac():
    image, targets = canal_pair(np.random.default_rng(3), "lumbar")
    same_image, with_auxiliary = canal_pair(np.random.default_rng(3), "lumbar", auxiliary=True)
    assert np.array_equal(image, same_image) and np.array_equal(with_auxiliary[:3], targets)
    assert with_auxiliary.shape == (3 + len(AUXILIARY_GROUPS), CROP_SIZE, CROP_SIZE)
    assert with_auxiliary.sum(axis=0).max() <= 1.0 + 1e-6  # disjoint tissue groups share each pixel
    assert all(channel.max() > 0.5 for channel in with_auxiliary[3:])
    epidural_fat = ndimage.binary_dilation(with_auxiliary[3] > 0.5, iterations=3)
    assert (epidural_fat & (targets[1] > 0.5)).any()  # epidural fat lies against the sac


def test_some_network2_crops_hold_the_canal_off_centre_but_always_hold_it():
    rng = np.random.default_rng(3)
    off_centre = []
    for _ in range(60):
        _, targets = canal_pair(rng)
        rows, columns = np.nonzero(targets[1] >= 0.5)
        assert len(rows)
        centre = (CROP_SIZE - 1) / 2
        off_centre.append(max(abs(rows.mean() - centre), abs(columns.mean() - centre)) / CROP_SIZE > 0.2)
    assert 0.05 <= np.mean(off_centre) <= 0.4


def test_every_parameter_range_is_exercised():
    rng = np.random.default_rng(0)
    seen = {"levels": set(), "kinds": set(), "contrasts": set(), "absent foramen": 0, "narrow canal": 0,
            "wide foramen": 0, "cord": 0, "roots": 0, "kidneys": 0, "abdominal fluid": 0}
    for n in range(160):
        region = "cervical" if n % 4 == 0 else "lumbar"
        scene = sample_scene(rng, region)
        anatomy = scene.anatomy
        seen["levels"].add(anatomy.level)
        seen["kinds"].add(anatomy.kind)
        seen["contrasts"].add(scene.contrast)
        seen["absent foramen"] += any(c.narrowest_half_width == 0 for c in anatomy.channels.values()) or (
            anatomy.kind == "pedicle")
        seen["wide foramen"] += any(c.narrowest_half_width >= 3.0 for c in anatomy.channels.values())
        tissues = {t for t, _ in anatomy.paints + anatomy.late_paints}
        seen["cord"] += T["spinal_cord"] in tissues
        seen["roots"] += T["cauda_equina_roots"] in tissues
        seen["kidneys"] += T["kidney"] in tissues
        seen["abdominal fluid"] += T["abdominal_fluid"] in tissues
    assert seen["levels"] == set(LUMBAR_LEVELS) | set(CERVICAL_LEVELS)
    assert seen["kinds"] == set(SLICE_KINDS) and seen["contrasts"] == set(CONTRASTS)
    assert min(seen["absent foramen"], seen["wide foramen"], seen["cord"], seen["roots"], seen["kidneys"],
               seen["abdominal fluid"]) > 5


def test_roots_clump_into_one_dorsal_mass_on_about_three_lumbar_sacs_in_ten():
    """Real upper lumbar T2 sacs often have a dark centre (clumped roots); the generator draws that on ~30 % (of the
    sacs that stenosis has not narrowed: in those the roots crowd anyway)."""
    rng = np.random.default_rng(0)
    clump_offsets_mm, sacs = [], 0  # offsets along the patient's anterior axis, from the sac's centroid to the clump's
    while sacs < 60:
        case = synthetic_slice(rng, "lumbar", with_truth=False)
        sac = np.isin(case.tissues, CANAL_TISSUES) & (case.labels == 1)
        if sac.sum() * case.grid.pixel_area_mm2 < 100.0:
            continue
        sacs += 1
        components, count = ndimage.label((case.tissues == T["cauda_equina_roots"]) & sac)
        if not count:
            continue
        sizes = ndimage.sum(components > 0, components, range(1, count + 1))
        if sizes.max() >= 0.15 * sac.sum():
            anterior, _ = case.grid.in_plane_axes()
            clump = components == np.argmax(sizes) + 1
            clump_offsets_mm.append((case.grid.centroid_ras(clump) - case.grid.centroid_ras(sac)) @ anterior)
    assert 0.15 <= len(clump_offsets_mm) / 60 <= 0.45
    # dorsal on the whole; a clump drawn near the centre and clipped by the CSF may sit a hair in front of it
    assert np.median(clump_offsets_mm) < -0.3 and max(clump_offsets_mm) < 0.5


def test_a_lumbar_sac_has_epidural_fat_behind_it_on_the_midline_unless_stenosis_took_it():
    """Real axial T2 shows the posterior epidural fat triangle behind the sac, the flava further back; severe
    stenosis (Schizas D) leaves none, and then the ligamentum flavum meets the sac."""
    behind = [behind_sac_on_midline(sample_anatomy(np.random.default_rng([7, n]), "lumbar")) for n in range(300)]
    behind = [b for b in behind if b is not None]
    fat_mm = np.array([mm for _, mm in behind])
    assert len(behind) > 280
    assert np.mean(fat_mm >= 1.0) > 0.8 and np.median(fat_mm) > 2.0
    assert {tissue for tissue, mm in behind if mm == 0} == {"ligamentum_flavum"}


def test_stenosis_range_reaches_absolute_and_normal():
    rng = np.random.default_rng(1)
    ap = []
    for _ in range(40):
        case = synthetic_slice(rng, "lumbar", with_truth=False)
        ap.append(measure_slice(masks_from_labels(case.labels), case.grid).values["canal_ap_mm"])
    ap = np.array(ap)
    assert (ap < 10).any() and (ap > 13).any()


def test_lumbar_stenosis_narrows_the_sac_at_the_disc_to_clinical_sizes():
    """Each grade takes more of the sac's area: severe stenoses reach absolute stenosis (< 75 mm²; LSS patients'
    sac is 80 ± 35 mm² at L4-L5), and a narrowed sac is still there."""
    rng = np.random.default_rng(3)
    areas = {grade: [] for grade in STENOSIS_GRADES}
    for _ in range(80):
        anatomy = sample_anatomy(rng, "lumbar", kind="disc")
        areas[anatomy.stenosis].append(sac_area_mm2(anatomy, step_mm=0.2))
    medians = [np.median(areas[grade]) for grade in STENOSIS_GRADES]
    assert medians == sorted(medians, reverse=True)
    assert medians[-1] < 75.0 < min(areas["none"])
    assert min(min(a) for a in areas.values()) > 15.0


def test_t2_vessels_are_flow_voids_or_bright_with_slow_flow():
    from SpinalStenosisLib.synth.render import tissue_intensities

    vessel = [tissue_intensities(np.random.default_rng(n), "T2")[0][T["vessel"]] for n in range(60)]
    assert min(vessel) < 0.1 and max(vessel) > 0.5


def test_slices_of_one_series_share_the_scanner_settings():
    """Four slices of different anatomy drawn with random intensity curves: with the protocol generator in the
    same state they keep one CSF-to-muscle contrast (as one series does), with their own they do not."""
    def csf_to_muscle(seed: int, protocol: np.random.Generator | None) -> float:
        rng = np.random.default_rng([seed, 1])
        scene = sample_scene(rng, "lumbar", contrast="random")
        case = synthetic_slice(rng, "lumbar", scene, with_truth=False, protocol=protocol)
        image, tissues = case.image, case.tissues
        return float(np.median(image[tissues == T["csf"]]) / np.median(image[tissues == T["multifidus"]]))

    shared = [csf_to_muscle(seed, np.random.default_rng(5)) for seed in range(4)]
    own = [csf_to_muscle(seed, None) for seed in range(4)]
    assert max(shared) / min(shared) < 1.5
    assert max(own) / min(own) > 3.0


@pytest.mark.parametrize("region, levels", [("lumbar", LUMBAR_LEVELS[2:]), ("cervical", CERVICAL_LEVELS[1:])])
def test_slices_of_one_patient_share_the_body(region, levels):
    """Slices of different levels drawn with the patient generator in the same state have one body outline (width
    and depth, to the painting grid's millimetre) and one muscle outline; with their own draws they do not."""
    axis = np.arange(-250.0, 250.0, 1.0)
    x, y = np.meshgrid(axis, axis)

    def body(n: int, patient: np.random.Generator | None) -> tuple[float, float, float]:
        anatomy = sample_anatomy(np.random.default_rng([n, 3]), region, levels[n % len(levels)], "disc", patient)
        tissues = anatomy.paint(x, y)
        inside = np.argwhere(tissues != T["air"])
        width, depth = np.ptp(inside, axis=0)[::-1]
        muscle = T["erector_spinae"] if region == "lumbar" else T["neck_muscle"]
        return float(width), float(depth), float((tissues == muscle).sum() ** 0.5)

    shared = np.array([body(n, np.random.default_rng(11)) for n in range(3)])
    own = np.array([body(n, None) for n in range(3)])
    assert np.ptp(shared[:, :2], axis=0).max() <= 1.0
    assert np.ptp(own[:, :2], axis=0).max() > 10.0
    assert np.ptp(shared[:, 2]) < 0.25 * np.ptp(own[:, 2])


def test_everything_a_neck_holds_lies_within_its_skin_and_the_trachea_under_its_muscles():
    """The neck's outline is drawn around what it holds: nothing is painted in the air beyond the skin (until
    2026-12-07 a third of the necks were too shallow for their trachea and vessels, and fat planes crossed the skin),
    and the trachea lies under the neck's muscles, not at its skin."""
    axis = np.arange(-120.0, 120.0, 0.5)
    x, y = np.meshgrid(axis, axis)
    for n in range(100):
        anatomy = sample_anatomy(np.random.default_rng([n, 13]), "cervical")
        tissues = anatomy.paint(x, y)
        skin = anatomy.paints[0][1]  # the outline: the neck's first shape
        assert anatomy.paints[0][0] == T["skin"]
        assert (tissues[~skin(x, y)] == T["air"]).all()
        gas_rows, gas_columns = np.nonzero(tissues == T["gas"])
        front = gas_rows.max()  # y (anterior) grows with the row here
        column = int(np.round(np.median(gas_columns)))
        in_front = tissues[front + 1:front + 5, column]  # 2 mm
        assert not np.isin(in_front, [T["air"], T["skin"], T["subcutaneous_fat"]]).any()


def test_thick_slab_blends_the_disc_towards_the_endplate():
    from SpinalStenosisLib.synth.render import PRIOR_TABLE, thick_slab

    tissues = np.array([[T["annulus"], T["nucleus"], T["csf"]]], np.uint8)
    means = PRIOR_TABLE[:, 0]
    blended = thick_slab(means[tissues], tissues, means, 0.4)
    assert blended[0, 0] == pytest.approx(0.6 * means[T["annulus"]] + 0.4 * means[T["endplate"]])
    assert blended[0, 2] == means[T["csf"]]


def test_chemical_shift_moves_fat_signal_only():
    from SpinalStenosisLib.synth.render import chemical_shift

    tissues = np.full((1, 6), T["psoas"], np.uint8)
    tissues[0, 2] = T["epidural_fat"]
    signal = np.where(tissues == T["epidural_fat"], 0.8, 0.1)
    shifted = chemical_shift(signal, tissues, 1, axis=1)
    assert shifted[0, 3] == pytest.approx(0.9) and shifted[0, 2] == pytest.approx(0.0)
    assert shifted.sum() == pytest.approx(signal.sum())


def test_a_narrow_field_of_view_keeps_the_spine_and_the_native_pixels():
    from SpinalStenosisLib.synth.sampler import _narrow_left_right, native_grid

    for seed in range(20):
        rng = np.random.default_rng(seed)
        native = native_grid(rng, sample_scene(rng, "lumbar"))
        narrow = _narrow_left_right(rng, native)
        width_mm = narrow.shape[1] * narrow.pixel_size_mm[1]
        assert narrow.shape[0] == native.shape[0] and narrow.pixel_size_mm == pytest.approx(native.pixel_size_mm)
        assert width_mm <= 80.0 and (width_mm >= 29.0 or narrow.shape[1] == native.shape[1])
        spine_column = narrow.to_index(np.zeros((1, 3)))[1][0]
        native_column = native.to_index(np.zeros((1, 3)))[1][0]
        if 12.0 / native.pixel_size_mm[1] <= native_column <= native.shape[1] - 12.0 / native.pixel_size_mm[1]:
            assert -0.5 <= spine_column <= narrow.shape[1] - 0.5  # the spine stays in view


def test_a_random_field_of_view_keeps_the_canal_inside_its_margin():
    from SpinalStenosisLib.synth.sampler import SPINE_MARGIN_MM, native_grid

    for seed in range(60):
        rng = np.random.default_rng(seed)
        native = native_grid(rng, sample_scene(rng, "lumbar" if seed % 3 else "cervical"))
        canal_index = np.array(native.to_index(np.zeros((1, 3))))[:, 0]
        for index, count, pixel_mm in zip(canal_index, native.shape, native.pixel_size_mm):
            half_extent_mm = (count - 1) / 2 * pixel_mm
            border_mm = min(index, count - 1 - index) * pixel_mm
            assert border_mm >= min(SPINE_MARGIN_MM, half_extent_mm) - 1e-6, seed


def test_domain_randomisation_changes_the_image_only_and_keeps_tissue_order():
    changed = 0
    for seed in range(6):
        plain_image, plain_targets = synthetic_pair("canal", np.random.default_rng(seed))
        image, targets = synthetic_pair("canal", np.random.default_rng(seed), augment=AUGMENTATIONS)
        assert np.array_equal(targets, plain_targets)
        assert image.shape == plain_image.shape and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.5
        changed += not np.array_equal(image, plain_image)
    assert changed >= 3
    ramp = np.linspace(0.0, 1.5, 301, dtype=np.float32)
    curved = intensity_curve(np.random.default_rng(3), ramp)
    assert np.all(np.diff(curved) >= 0) and curved[0] == 0.0 and curved[-1] == 1.5


def test_scenes_drawn_among_some_contrasts_have_those_only_and_the_default_draws_all():
    among = {sample_scene(np.random.default_rng(seed), among=("T2", "T2FS")).contrast for seed in range(40)}
    assert among == {"T2", "T2FS"}
    assert {sample_scene(np.random.default_rng(seed)).contrast for seed in range(60)} == set(CONTRASTS)


@pytest.mark.parametrize("rows_run_front_to_back", [True, False])
def test_a_thick_slice_through_a_tilted_spine_smears_a_point_front_to_back_only(rows_run_front_to_back):
    front_to_back, right_to_left = np.array([0.0, -0.5, 0.0]), np.array([-0.5, 0.0, 0.0])
    row_step, column_step = (front_to_back, right_to_left) if rows_run_front_to_back else (right_to_left,
                                                                                            front_to_back)
    grid = PlaneGrid(np.zeros(3), row_step, column_step, (41, 41))
    point = np.zeros(grid.shape)
    point[20, 20] = 1.0
    smeared = smeared_front_to_back(point, grid, 4.0)
    assert smeared.sum() == pytest.approx(1.0)
    rows, columns = np.nonzero(smeared > 1e-6)
    spread, still = (rows, columns) if rows_run_front_to_back else (columns, rows)
    assert set(still) == {20} and spread.min() == 16 and spread.max() == 24  # 2 mm either way, 0.5 mm pixels
    assert np.array_equal(smeared_front_to_back(point, grid, 0.0), point)


def test_a_smeared_held_out_slice_is_the_same_slice_with_blurrier_edges_and_the_mid_plane_truth():
    def case(smear_mm):
        return synthetic_slice(np.random.default_rng([5, 1]), "lumbar", smear_mm=smear_mm)

    sharp, smeared = case(0.0), case(4.0)
    assert np.array_equal(sharp.labels, smeared.labels)
    np.testing.assert_equal(sharp.truth, smeared.truth)
    assert np.array_equal(synthetic_slice(np.random.default_rng([5, 1]), "lumbar").image, sharp.image)
    canal = ndimage.binary_dilation(sharp.labels == 1, iterations=3)
    assert 0 < np.abs(np.diff(smeared.image, axis=0))[canal[1:]].mean() < np.abs(
        np.diff(sharp.image, axis=0))[canal[1:]].mean()
