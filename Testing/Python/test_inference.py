"""Models manifest and sha256, crop↔slice mapping, patient sides under flips, the shipped networks end to end."""
import json
import math
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from conftest import ThresholdSegmenter, canal_arrays, phantom_arrays, readme_code, trained_like

from SpinalStenosisLib import cli
from SpinalStenosisLib.crop import (MAX_CROP_MM, crop_from_box, crop_grid, crop_side_mm, crops_from_roi,
                                    field_of_view_side_mm, half_slice_grids, resample, roi_box, whole_slice_grid)
from SpinalStenosisLib.geometry import PlaneGrid, reordered
from SpinalStenosisLib.inference import checked_device, load_segmenter, network_dtype
from SpinalStenosisLib.models import (INPUT_SIZE, ModelError, load_network, load_trained_network, models_folder,
                                      read_manifest, sha256, verified_path)
from SpinalStenosisLib.network import CoordBlock, CoUNet
from SpinalStenosisLib.measurement import MEASUREMENT_COLUMNS
from SpinalStenosisLib.pipeline import measure_with_segmenter
from SpinalStenosisLib.synth.dataset import SERIES_PLANS, slice_geometry, synthetic_slice, synthetic_stack
from SpinalStenosisLib.visibility import is_blank
from SpinalStenosisLib.volume_io import InputError, axial_from_array


@pytest.fixture(scope="module")
def segmenter():
    return load_segmenter(threads=2)


def tiny_models_folder(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    entries = {}
    for name, channels in (("roi", 1), ("roi_second", 1), ("canal", 3)):
        model = trained_like(CoUNet(channels, width=4, depth=2))
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
                   folder / f"{name}.pt")
        entries[name] = {"file": f"{name}.pt", "version": "0.0.0", "sha256": sha256(folder / f"{name}.pt"),
                         "network": model.config, "input_size": INPUT_SIZE[name]}
    (folder / "manifest.json").write_text(json.dumps({"release": "test", "models": entries}), encoding="utf-8")
    return folder


def test_shipped_manifest_lists_verified_weights_with_provenance():
    manifest = read_manifest()
    assert manifest["licence"]
    for name in ("roi", "roi_second", "canal"):
        path, entry = verified_path(name)
        assert path.stat().st_size < 5_000_000
        for key in ("version", "sha256", "input_size", "training_command", "code_revision",
                    "synthetic_validation_dice"):
            assert entry[key] not in (None, ""), key


def test_the_shipped_models_load_without_a_word():
    # torch 2.0's weights-only loader warned of its own use of TypedStorage on every load (scripts/test_oldest.sh)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_segmenter(threads=1)
    assert [str(warning.message) for warning in caught] == []


def test_a_damaged_or_missing_model_file_or_manifest_fails_clearly(tmp_path):
    folder = tiny_models_folder(tmp_path)
    model, entry = load_network("roi", folder)
    assert isinstance(model, CoUNet) and not model.training
    with open(folder / "roi.pt", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        load_network("roi", folder)
    (folder / "canal.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_network("canal", folder)
    with pytest.raises(ModelError, match="model 'spine' is not in"):
        load_network("spine", folder)
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8")[:40], encoding="utf-8")  # cut short
    with pytest.raises(ModelError, match="manifest.json is damaged .*; reinstall the extension"):
        load_network("roi", folder)
    manifest.unlink()
    with pytest.raises(ModelError, match="no manifest.json in .*: not a models folder"):
        load_network("roi", folder)


def test_a_shipped_network_as_trained_computes_what_its_inference_form_does(tmp_path):
    folder = tiny_models_folder(tmp_path)
    trained, _ = load_trained_network("canal", folder)
    fast, _ = load_network("canal", folder)
    assert not trained.training and any(isinstance(m, torch.nn.BatchNorm2d) for m in trained.modules())
    inputs = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(fast(inputs), trained(inputs), atol=1e-4)


def test_a_model_made_for_another_input_size_fails_clearly(tmp_path):
    folder = tiny_models_folder(tmp_path)
    manifest = read_manifest(folder)
    manifest["models"]["canal"]["input_size"] = 192
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match="192-pixel inputs; this version of SpinalStenosis gives it 128"):
        load_network("canal", folder)
    load_network("roi", folder)


def test_the_inference_form_of_a_counet_gives_the_same_output_and_leaves_the_trained_one_alone():
    from SpinalStenosisLib.network import for_inference

    model = trained_like(CoUNet(3, width=4, depth=2))
    fast = for_inference(model)
    for shape in ((3, 1, 64, 64), (2, 1, 40, 56), (3, 1, 64, 64)):  # the coordinate terms are kept per size
        inputs = torch.rand(shape)
        with torch.inference_mode():
            assert torch.allclose(fast(inputs), model(inputs), atol=1e-4)
    assert all(isinstance(block, CoordBlock) for block in model.encoders) and not model.training
    assert all(p.requires_grad for p in model.parameters())


def test_the_networks_compute_in_bfloat16_only_where_the_cpu_does_so_natively_unless_told(monkeypatch):
    assert network_dtype("float32") == torch.float32 and network_dtype("bfloat16", "cuda") == torch.bfloat16
    assert network_dtype("auto", "cuda") == torch.float32
    for avx512_bf16, amx in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
        assert network_dtype("auto") == (torch.bfloat16 if avx512_bf16 or amx else torch.float32)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch build without the check
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert network_dtype("auto") == torch.float32
    with pytest.raises(ValueError, match="'float16' is not one of auto, float32, bfloat16"):
        network_dtype("float16")


def test_bfloat16_networks_segment_and_measure_a_stack_as_float32_ones_do():
    image, _, geometry, _ = synthetic_stack(seed=21, levels=("L3-L4", "L4-L5"))
    volume = axial_from_array(image, geometry)
    runs = {precision: measure_with_segmenter(volume, load_segmenter(threads=2, precision=precision))
            for precision in ("float32", "bfloat16")}
    assert [runs[p].provenance["precision"] for p in runs] == ["float32", "bfloat16"]
    for exact, fast in zip(runs["float32"].measurements, runs["bfloat16"].measurements):
        for name in ("canal_ap_mm", "canal_area_mm2"):
            assert fast.values[name] == pytest.approx(exact.values[name], rel=0.01), name
    for label in (1, 2, 3):
        exact, fast = runs["float32"].stack_labels == label, runs["bfloat16"].stack_labels == label
        assert 2 * (exact & fast).sum() / (exact.sum() + fast.sum()) > 0.99, label


def test_models_folder_can_be_overridden(tmp_path, monkeypatch):
    folder = tiny_models_folder(tmp_path)
    monkeypatch.setenv("SPINAL_STENOSIS_MODELS", str(folder))
    assert models_folder() == folder
    assert load_segmenter().provenance["models_release"] == "test"
    assert load_segmenter().second_roi_model is not None


def test_a_models_folder_from_before_the_second_roi_network_still_loads(tmp_path):
    folder = tiny_models_folder(tmp_path)
    manifest = read_manifest(folder)
    del manifest["models"]["roi_second"]
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    segmenter = load_segmenter(folder=folder)
    assert segmenter.second_roi_model is None and set(segmenter.provenance["models"]) == {"roi", "canal"}


def test_a_device_this_computer_lacks_is_refused_with_what_to_choose(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"cannot compute on '{device}' on this computer .*: use cpu"):
            load_segmenter(device=device)
    with pytest.raises(ValueError, match="unknown device 'gpu': use cpu, cuda or mps"):
        load_segmenter(device="gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert checked_device("cuda:1") == "cuda:1" and checked_device("cpu") == "cpu"


def native(pixel=(0.7, 0.6), shape=(200, 180), angle_deg=10.0):
    a = np.radians(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    return PlaneGrid(np.array([40.0, 70.0, -12.0]), rotation @ [0, -pixel[0], 0], rotation @ [-pixel[1], 0, 0], shape)


def disc_slice(centre_rc=(125, 125), radius_px=8, angle_deg=10.0):
    """A 250² slice of 0.8 mm pixels holding a bright disc (a "canal"), and the disc centre on network 1's view."""
    grid = native(pixel=(0.8, 0.8), shape=(250, 250), angle_deg=angle_deg)
    rows, columns = np.mgrid[:250, :250]
    image = (np.hypot(rows - centre_rc[0], columns - centre_rc[1]) < radius_px).astype(np.float32)
    view_rc = tuple(int(round(float(v[0]))) for v in whole_slice_grid(grid).to_index(grid.to_ras(*centre_rc)[None]))
    return grid, image, view_rc


def roi_square(row, column, half):
    """A stub network 1 marking a square of the view around (row, column)."""
    def roi(inputs):
        logits = torch.full(inputs.shape, -20.0)
        logits[..., row - half:row + half, column - half:column + half] = 20.0
        return logits
    return roi


def canal_only(canal_logits):
    """A stub network 2's output: these canal logits, no foramina."""
    no_foramen = torch.full_like(canal_logits, -20.0)
    return torch.cat([no_foramen, canal_logits, no_foramen], dim=1)


def canal_where_bright(inputs):
    return canal_only(40.0 * (inputs - 0.5))


def tagged_stack(grid, tags):
    """A stack whose slice s is tags[s] but in a patch of air (0) off its edges, as MR slices have: the fake segmenters
    below tell the slices apart by their brightest value, which the networks see as it is (no offset to take off)."""
    stack = np.repeat(np.asarray(tags, np.float32)[:, None, None], grid.shape[0], axis=1).repeat(grid.shape[1], axis=2)
    stack[:, 2:8, 2:8] = 0.0
    return stack


def test_a_known_crop_box_maps_to_known_ras_points():
    grid = native()
    crop = crop_grid(grid, (100.0, 90.0), 64.0, 128)
    centre_ras = grid.to_ras(100.0, 90.0)
    corner_ras = crop.to_ras(-0.5, -0.5)  # outer corner of the crop's first pixel
    half_rows, half_columns = 32.0 / 0.7, 32.0 / 0.6
    assert np.allclose(corner_ras, grid.to_ras(100.0 - half_rows, 90.0 - half_columns))
    assert np.allclose(crop.to_ras(63.5, 63.5), centre_ras)
    assert crop.pixel_size_mm == pytest.approx((0.5, 0.5))
    rows, columns = np.indices(grid.shape)
    ramp = 2.0 * rows + 3.0 * columns  # linear: bilinear resampling reproduces it exactly inside the image
    sampled = resample(ramp, grid, crop)
    crop_rows, crop_columns = grid.to_index(crop.to_ras(*np.indices(crop.shape).reshape(2, -1)))
    assert np.allclose(sampled.ravel(), 2.0 * crop_rows + 3.0 * crop_columns, atol=1e-3)
    extent = crop.extent_on(grid)  # the crop's outer pixel edges, in slice pixel indices
    assert extent == pytest.approx((100.0 - half_rows, 100.0 + half_rows, 90.0 - half_columns, 90.0 + half_columns))


def test_roi_box_gives_a_crop_centred_on_it():
    grid = native(angle_deg=0.0)
    view = whole_slice_grid(grid)
    roi = np.zeros(view.shape)
    roi[50:70, 40:90] = 1.0
    [crop] = crops_from_roi(grid, view, roi)
    box_centre = view.to_ras(59.5, 64.5)
    assert np.allclose(crop.to_ras(63.5, 63.5), box_centre, atol=1e-6)
    assert crops_from_roi(grid, view, np.zeros(view.shape)) == []


def test_the_region_of_interest_is_the_same_on_a_grid_whose_pixel_size_float_rounding_has_touched():
    targets = np.zeros((3, 128, 128))
    targets[1, 50:70, 40:60] = 1.0  # a canal, no foramina: 12 mm of lateral padding, 16 pixels of 0.75 mm
    exact = native(pixel=(0.75, 0.75), shape=(128, 128), angle_deg=0.0)
    read_back = native(pixel=(0.75, 0.7499999999999999), shape=(128, 128), angle_deg=0.0)  # as from DICOM text
    assert 12.0 / read_back.pixel_size_mm[1] > 16.0  # float rounding: np.floor(40 - 16.000000000000004) is 23
    assert roi_box(targets, exact) == roi_box(targets, read_back) == (44, 76, 24, 76)


def test_a_crop_is_resampled_alike_on_a_grid_whose_pixel_size_float_rounding_has_touched():
    grid = native(pixel=(0.5, 0.5), shape=(96, 96), angle_deg=0.0)
    image = np.random.default_rng(0).random(grid.shape).astype(np.float32)
    exact, read_back = (native(pixel=(0.75, pixel_mm), shape=(40, 40), angle_deg=0.0)
                        for pixel_mm in (0.75, 0.7500000000000001))
    assert read_back.pixel_size_mm[1] / grid.pixel_size_mm[1] > 1.5  # float rounding: over where resample blurs
    assert np.abs(resample(image, grid, exact) - resample(image, grid, read_back)).max() < 1e-5
    widest = native(pixel=(0.75, 0.7500000000000001), shape=(128, 128), angle_deg=0.0)
    assert 128 * widest.pixel_size_mm[1] > MAX_CROP_MM and field_of_view_side_mm(widest) == MAX_CROP_MM


def test_a_slice_of_pixels_a_million_times_finer_than_its_crop_s_is_blurred_at_most_over_its_own_size(monkeypatch):
    from SpinalStenosisLib import crop

    grid = native(pixel=(1e-6, 1e-6), shape=(64, 64), angle_deg=0.0)  # a header's size in metres read as mm
    image = np.random.default_rng(0).uniform(1.0, 2.0, grid.shape).astype(np.float32)
    target = native(pixel=(0.4, 0.4), shape=(128, 128), angle_deg=0.0)
    sigmas = []
    blur = crop.ndimage.gaussian_filter
    monkeypatch.setattr(crop.ndimage, "gaussian_filter", lambda channel, sigma: sigmas.append(sigma) or blur(
        channel, sigma))
    sampled = resample(image, grid, target)
    assert len(sigmas) == 1 and (np.asarray(sigmas[0]) <= 64).all()  # not 160 000 pixels: a kernel of gigabytes
    assert np.count_nonzero(sampled) <= 1 and sampled.max() < 2.0  # the slice a point in the crop, about flat


def test_a_slice_resampled_onto_its_own_pixels_keeps_its_outermost_ones():
    for angle_deg in (0.0, 10.0, 33.0):  # turned grids: float rounding puts edge samples 1e-15 of a pixel outside
        grid = native(pixel=(0.7, 0.7), shape=(128, 128), angle_deg=angle_deg)
        image = np.random.default_rng(0).uniform(1.0, 2.0, grid.shape).astype(np.float32)
        view = whole_slice_grid(grid)  # a native 128 x 128 slice's whole view lies on its pixels
        assert np.abs(resample(image, grid, view) - image).max() < 1e-4
    outside = grid.crop(-1e-3, 0.0, 128, 128, (128, 128))
    assert (resample(image, grid, outside)[0] == 0).all()  # a thousandth of a pixel outside is outside


def test_the_region_of_interest_reaches_beyond_a_crop_that_cuts_the_canal():
    grid = native(pixel=(0.5, 0.5), shape=(100, 100), angle_deg=0.0)
    targets = np.zeros((3, 100, 100))
    targets[1, 40:60, 0:10] = 1.0  # a canal cut by the crop's edge, no foramina
    r0, r1, c0, c1 = roi_box(targets, grid)
    assert c0 < 0
    crop = crop_from_box(grid, grid, (r0, r1, c0, c1))
    side_mm = crop_side_mm((r1 - r0) * 0.5, (c1 - c0) * 0.5)
    assert crop.pixel_size_mm[0] * crop.shape[0] == pytest.approx(side_mm) and side_mm > 1.15 * (c1 * 0.5) + 6


def test_the_final_crop_averaged_with_its_mirror_reports_a_foramen_a_one_sided_network_2_half_sees():
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, (row, column) = disc_slice(angle_deg=0.0)

    def canal_with_lopsided_foramina(inputs):  # sure of the foramen on the image's right, unsure of the one on its left
        logits = canal_where_bright(inputs)
        rows, columns = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in inputs.shape[-2:]),
                                       indexing="ij")
        for n, canal in enumerate(inputs[:, 0] > 0.5):
            centre_row, centre_column = rows[canal].mean(), columns[canal].mean()
            for channel, side, logit in ((0, 1.0, 2.2), (2, -1.0, -0.85)):  # probabilities 0.9 and 0.3
                blob = ((rows - centre_row).abs() < 4) & ((columns - centre_column - side * 26).abs() < 4)
                logits[n, channel][blob] = logit
        return logits

    def labels(mirror_average):
        segmenter = NetworkSegmenter(roi_square(row, column, 8), canal_with_lopsided_foramina,
                                     mirror_average=mirror_average)
        [result] = segmenter.segment([image], [grid])
        return result.native_labels

    one_view, averaged = labels(()), labels(("final",))
    assert (one_view == 2).sum() > 0 and (one_view == 3).sum() == 0  # columns run R→L: the image's right is left
    left, right = (averaged == 2).sum(), (averaged == 3).sum()
    assert left > 0 and right == pytest.approx(left, rel=0.25)  # each side 0.6 on the average: both reported
    x_ras = [grid.centroid_ras(averaged == label)[0] for label in (2, 1, 3)]  # RAS x grows to the patient's right
    assert x_ras == sorted(x_ras)


def test_a_slice_given_as_several_contrasts_is_looked_at_in_the_first_and_outlined_by_their_average():
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, small, (row, column) = disc_slice(angle_deg=0.0)  # a "canal" 8 pixels across in one contrast
    _, large, _ = disc_slice(radius_px=12, angle_deg=0.0)  # 12 in another: network 2 finds each where it is bright
    looked_at = []

    def roi(inputs):
        looked_at.append(inputs.clone())
        return roi_square(row, column, 8)(inputs)

    segmenter = NetworkSegmenter(roi, canal_where_bright, mirror_average=("final",))

    def canal_mm2(*contrasts):
        [result] = segmenter.segment([np.stack(contrasts) if len(contrasts) > 1 else contrasts[0]], [grid])
        return (result.native_labels == 1).sum() * 0.64, result.native_labels

    alone_mm2, alone = canal_mm2(small)
    twice_mm2, twice = canal_mm2(small, small)
    assert np.array_equal(twice, alone)  # the same contrast twice: the same outline, to the pixel
    assert alone_mm2 == pytest.approx(np.pi * (8 * 0.8) ** 2, rel=0.15)
    # where two of three contrasts show the canal its probability is 2/3, where one does 1/3
    assert canal_mm2(small, small, large)[0] == pytest.approx(alone_mm2, rel=0.05)
    assert canal_mm2(large, large, small)[0] == pytest.approx(np.pi * (12 * 0.8) ** 2, rel=0.15)
    looked_at.clear()
    canal_mm2(large, small)
    canal_mm2(large)
    assert len(looked_at) == 2 and torch.equal(looked_at[0], looked_at[1])  # network 1 saw the first contrast only


def test_patient_sides_survive_any_storage_flip(segmenter):
    image, _, geometry, _ = synthetic_stack(seed=5, levels=("L4-L5",))
    reference = measure_with_segmenter(axial_from_array(image, geometry), segmenter).measurements
    for order, flips in (((0, 2, 1), (False, True, False)), ((0, 1, 2), (True, False, True))):
        stored, stored_geometry = reordered(image, geometry, order, flips)
        run = measure_with_segmenter(axial_from_array(stored, stored_geometry), segmenter)
        by_z = {round(m.z_mm, 3): m.values for m in run.measurements}
        for m in reference:
            assert by_z[round(m.z_mm, 3)] == pytest.approx(m.values, nan_ok=True)


def test_mirror_averaged_networks_measure_a_mirrored_patient_alike_with_the_foramina_swapped(segmenter):
    image, _, geometry, _ = synthetic_stack(seed=5, levels=("L4-L5",))
    mirrored = image[:, :, ::-1]  # columns run from the patient's right to left: the same body, sides swapped
    averaged = load_segmenter(threads=2, mirror_average=("roi", "canal"))
    assert averaged.provenance["mirror_average"] == ["roi", "canal"]
    assert segmenter.provenance["mirror_average"] == ["final"]

    def measured(stack, networks, columns):
        run = measure_with_segmenter(axial_from_array(stack, geometry), networks)
        return np.array([[m.values[name] for name in columns] for m in run.measurements])

    as_mirrored = [{"left_foramen_width_mm": "right_foramen_width_mm",
                    "right_foramen_width_mm": "left_foramen_width_mm"}.get(name, name) for name in MEASUREMENT_COLUMNS]
    for networks, alike in ((averaged, True), (segmenter, False)):
        direct = measured(image, networks, MEASUREMENT_COLUMNS)
        assert np.allclose(measured(mirrored, networks, as_mirrored), direct, rtol=1e-3, equal_nan=True) is alike
    run = measure_with_segmenter(axial_from_array(image, geometry), averaged)
    sides = 0
    for s, labels in enumerate(run.stack_labels):
        if all((labels == label).any() for label in (1, 2, 3)):
            grid = run.volume.layout.slice_grid(s)
            x_ras = [grid.centroid_ras(labels == label)[0] for label in (2, 1, 3)]  # RAS x grows to the patient's right
            assert x_ras == sorted(x_ras)
            sides += 1
    assert sides


def test_shipped_networks_find_and_measure_a_synthetic_lumbar_stack(segmenter):
    image, labels, geometry, truth = synthetic_stack(seed=21, levels=("L3-L4", "L4-L5"))
    run = measure_with_segmenter(axial_from_array(image, geometry), segmenter)
    errors = [abs(m.values["canal_ap_mm"] - t["canal_ap_mm"]) for m, t in zip(run.measurements, truth)]
    assert np.median(errors) < 2.0
    assert all(not math.isnan(m.values["canal_area_mm2"]) for m in run.measurements)
    assert all(0.5 <= m.confidences["canal_confidence"] <= 1.0 for m in run.measurements)  # network 2's probability
    assert all(m.canal_off_axis_mm == 0.0 for m in run.measurements)  # on the spine's axis
    canal_dice = [2 * ((run.stack_labels[s] == 1) & (labels[s] == 1)).sum()
                  / ((run.stack_labels[s] == 1).sum() + (labels[s] == 1).sum()) for s in range(len(truth))]
    assert np.median(canal_dice) > 0.7


def test_a_canal_network_1_sends_network_2_to_find_on_a_vessel_beside_the_spine_is_to_check():
    from scipy import ndimage
    from shapes import axial_grid, spine

    from SpinalStenosisLib.inference import NetworkSegmenter
    from SpinalStenosisLib.measurement import measure_slice

    grid = axial_grid((0.7, 0.7), (360, 420))
    image, sac, vena_cava = spine(grid, vessel_level=950.0, vena_cava_mm=(12.0, 9.0))  # larger, brighter than the sac

    def roi_on(pick):
        def roi(inputs):  # network 1 marks one bright region: the sac, or the vena cava as on a real abdominal series
            logits = torch.full(inputs.shape, -20.0)
            labelled, count = ndimage.label(inputs[0, 0].numpy() > 0.8 * float(inputs.max()))
            centres = ndimage.center_of_mass(labelled > 0, labelled, range(1, count + 1))
            chosen = labelled == 1 + pick(centres, inputs.shape[-1] / 2)
            logits[0, 0][torch.from_numpy(ndimage.binary_dilation(chosen, iterations=2))] = 20.0
            return logits
        return roi

    def central(centres, middle):
        return int(np.argmin([np.hypot(r - middle, c - middle) for r, c in centres]))

    def front_right(centres, middle):  # rows run to the back, columns to the patient's left
        return int(np.argmin([c if r < middle else np.inf for r, c in centres]))

    def brightest(inputs):  # network 2 outlines what is near the crop's brightest
        return canal_only(40.0 * (inputs - 0.8))

    for region, roi, judged_off_axis in ((sac, roi_on(central), False), (vena_cava, roi_on(front_right), True)):
        [result] = NetworkSegmenter(roi, brightest).segment([image], [grid])
        found = result.native_labels == 1
        assert (found & region).sum() > 0.8 * region.sum()
        m = measure_slice(result.masks, result.grid, canal_off_axis_mm=result.canal_off_axis_mm)
        assert (result.canal_off_axis_mm >= 10.0) == judged_off_axis and m.is_to_check("canal") == judged_off_axis


@pytest.mark.parametrize("presented, said", [
    (lambda image: (image - image.mean()) / image.std(), "normalised to zero mean: the networks saw it from"),
    (lambda image: image + 0.2 * np.percentile(image, 99),
     "an offset added (its air not dark), one so noisy that its air is grey, or one cropped so tightly that it "
     "shows no air: the networks saw it"),
], ids=["normalised to zero mean", "offset added"])
def test_a_stack_shown_from_another_zero_measures_as_it_does_as_acquired_and_says_how_it_was_seen(segmenter, presented,
                                                                                                  said):
    image, _, geometry, _ = synthetic_stack(seed=21, levels=("L3-L4", "L4-L5"))
    acquired = measure_with_segmenter(axial_from_array(image, geometry), segmenter)
    shown = measure_with_segmenter(axial_from_array(presented(image), geometry), segmenter)
    for before, after in zip(acquired.measurements, shown.measurements):
        assert after.values["canal_ap_mm"] == pytest.approx(before.values["canal_ap_mm"], abs=0.4)
        assert after.values["canal_area_mm2"] == pytest.approx(before.values["canal_area_mm2"], rel=0.03)
    assert not any("networks saw it" in warning for warning in acquired.warnings)
    assert any(said in warning for warning in shown.warnings)


def test_a_stack_with_spikes_measures_as_it_does_without_them(segmenter):
    """Ten pixels a slice at ten times the stack's brightest (spike noise): without despiking, the blobs they became in
    network 2's resampled crop moved the canal's outline (AP by 0.3 mm here)."""
    image, _, geometry, _ = synthetic_stack(seed=21, levels=("L3-L4", "L4-L5"))
    spiked = image.copy()
    rng = np.random.default_rng(0)
    for section in spiked:
        rows, columns = rng.integers(0, section.shape, (10, 2)).T
        section[rows, columns] = 10 * image.max()
    acquired = measure_with_segmenter(axial_from_array(image, geometry), segmenter)
    shown = measure_with_segmenter(axial_from_array(spiked, geometry), segmenter)
    for before, after in zip(acquired.measurements, shown.measurements):
        assert after.values["canal_ap_mm"] == pytest.approx(before.values["canal_ap_mm"], abs=0.1)
        assert after.values["canal_area_mm2"] == pytest.approx(before.values["canal_area_mm2"], rel=0.01)
        assert after.check == before.check
    assert shown.warnings == acquired.warnings


@pytest.mark.parametrize("unit", [1e-20, 1e-10, 1e4])
def test_a_stack_measures_the_same_whatever_the_unit_of_its_intensities(segmenter, unit):
    image, _, geometry, _ = synthetic_stack(seed=21, levels=("L3-L4", "L4-L5"))
    acquired = measure_with_segmenter(axial_from_array(image, geometry), segmenter)
    scaled = measure_with_segmenter(axial_from_array(image * np.float32(unit), geometry), segmenter)
    for before, after in zip(acquired.measurements, scaled.measurements):
        assert after.values["canal_ap_mm"] == pytest.approx(before.values["canal_ap_mm"], abs=0.05)
        assert after.values["canal_area_mm2"] == pytest.approx(before.values["canal_area_mm2"], rel=0.01)
        assert after.check == before.check
    assert scaled.warnings == acquired.warnings


def test_slices_without_a_spine_give_nan_not_a_crash(segmenter):
    grid = native()
    blank = np.zeros(grid.shape, np.float32)
    noise = np.random.default_rng(0).random(grid.shape).astype(np.float32)
    results = segmenter.segment([blank, noise], [grid, grid])
    from SpinalStenosisLib.measurement import measure_slice

    for result in results:
        assert result.native_labels.shape == grid.shape
        values = measure_slice(result.masks, result.grid).values
        assert all(math.isnan(v) or v >= 0 for v in values.values())
    assert all(math.isnan(v) for v in measure_slice(results[0].masks, results[0].grid).values.values())


def test_measure_without_masks_runs_the_networks(tmp_path, capsys):
    rng = np.random.default_rng(4)
    case = synthetic_slice(rng, "cervical", with_truth=False)
    from SpinalStenosisLib.volume_io import write_image

    write_image(tmp_path / "neck.nii.gz", case.image[None] * 500, slice_geometry(case.grid, 3.0))
    code = cli.main(["measure", str(tmp_path / "neck.nii.gz"), "--out", str(tmp_path / "out"), "--quiet",
                     "--region", "cervical", "--precision", "float32"])
    assert code == 0, capsys.readouterr().err
    document = json.loads((tmp_path / "out" / "measurements.json").read_text(encoding="utf-8"))
    assert document["models"]["canal"]["sha256"] == read_manifest()["models"]["canal"]["sha256"]
    assert document["precision"] == "float32"
    [entry] = document["slices"]
    corners = np.array(entry["region_of_interest_ras"])  # network 2's crop, as a box on the slice
    assert corners.shape == (4, 3) and np.allclose(corners[:, 2], corners[0, 2])
    across, down = corners[1] - corners[0], corners[3] - corners[0]
    assert abs(across @ down) < 1e-5 * (across @ across) and 20.0 < np.linalg.norm(across) < 120.0  # a square,
    assert np.linalg.norm(across) == pytest.approx(np.linalg.norm(down), rel=0.05)  # 20-120 mm a side
    for ruler in entry["rulers"].values():  # every measurement lies within it
        for point in (ruler["start_ras"], ruler["end_ras"]):
            offset = np.array(point) - corners[0]
            assert all(-0.01 <= offset @ side / (side @ side) <= 1.01 for side in (across, down))


def test_demo_writes_every_output(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 0
    names = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"segmentation.nii.gz", "measurements.csv", "rulers.mrk.json", "report.png", "input"} <= names
    shutil.rmtree(tmp_path / "demo")


def test_the_readme_python_example_runs_and_measures_the_file_and_its_voxels_alike(tmp_path, monkeypatch, capsys):
    """The README's Python API example, run as written on the demo series: once from its file, once from its voxels
    [slice, row, column] and IJK→RAS matrix in memory, as the example says to give them."""
    from SpinalStenosisLib.demo import DEMO_SEED
    from SpinalStenosisLib.findings import worst_findings
    from SpinalStenosisLib.volume_io import write_image

    [example] = readme_code("python")
    image, _, geometry, _ = synthetic_stack(DEMO_SEED)
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "T2_axial.nii.gz", image, geometry)
    names = {"voxels": image, "ijk_to_ras": geometry.ijk_to_ras}
    exec(compile(example, "README.md", "exec"), names)
    from_file, graded_region, worst_in_memory = capsys.readouterr().out.splitlines()
    in_memory = names["run"].measurements[7]
    assert float(from_file.split()[0]) == pytest.approx(in_memory.values["canal_ap_mm"], abs=1e-6)
    assert worst_in_memory == str(worst_findings(names["run"].measurements, "lumbar")["canal_ap_mm"])
    document = json.loads((tmp_path / "results" / "measurements.json").read_text(encoding="utf-8"))
    assert graded_region == document["region"] == "lumbar"  # no header names it, and the image shows no neck or cord


def test_cervical_demo_is_a_cervical_series_graded_as_cervical(tmp_path):
    assert cli.main(["demo", "--out", str(tmp_path / "neck"), "--masks-only"]) == 0
    assert cli.main(["demo", "--out", str(tmp_path / "neck"), "--region", "cervical", "--masks-only",
                     "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "neck" / "input").iterdir()) == [
        "demo_cervical_t2.nii.gz", "demo_cervical_true_labels.nii.gz"]  # not the lumbar series it replaced
    document = json.loads((tmp_path / "neck" / "measurements.json").read_text(encoding="utf-8"))
    assert document["region"] == "cervical" and document["input"] == "demo_cervical_t2.nii.gz"
    plan = SERIES_PLANS["cervical"]
    slices = document["slices"]
    assert len(slices) == len(plan.levels) * len(plan.slice_kinds)
    assert all(m["canal_ap_mm"] > 0 for m in slices)
    mid_body = [m for n, m in enumerate(slices) if plan.slice_kinds[n % len(plan.slice_kinds)] == "mid-body"]
    assert all(m["left_foramen_width_mm"] is None and m["right_foramen_width_mm"] is None for m in mid_body)
    assert [m["level"] for m in slices] == [level for level in plan.levels
                                            for _ in plan.slice_kinds]  # each slice is named by its level
    assert list(document["worst_findings_by_level"]) == list(plan.levels)


def test_implausible_foramina_are_reported_absent():
    from SpinalStenosisLib.inference import plausible

    grid = PlaneGrid(np.zeros(3), np.array([0.0, -0.5, 0.0]), np.array([-0.5, 0.0, 0.0]), (128, 128))
    canal = np.zeros(grid.shape)
    canal[60:80, 54:74] = 1.0  # centre at column 64
    left, right = np.zeros(grid.shape), np.zeros(grid.shape)
    left[65:70, 90:100] = 1.0   # patient left = higher columns: plausible
    right[65:70, 100:110] = 1.0  # "right" foramen on the patient's left: impossible
    kept = plausible({"canal": canal, "left_foramen": left, "right_foramen": right}, grid)
    assert kept["left_foramen"].sum() == left.sum() and kept["right_foramen"].sum() == 0
    speck = np.zeros(grid.shape)
    speck[66:68, 30:32] = 1.0  # 1 mm², on the right side
    assert plausible({"canal": canal, "left_foramen": left, "right_foramen": speck}, grid)["right_foramen"].sum() == 0


def test_a_canal_smaller_than_any_dural_sac_is_reported_absent():
    from SpinalStenosisLib.inference import MIN_CANAL_MM2, plausible

    grid = PlaneGrid(np.zeros(3), np.array([0.0, -0.5, 0.0]), np.array([-0.5, 0.0, 0.0]), (128, 128))
    for side_px, reported in ((4, False), (5, True)):  # 4 mm² and 6.25 mm² against MIN_CANAL_MM2's 5 mm²
        masks = {name: np.zeros(grid.shape) for name in ("canal", "left_foramen", "right_foramen")}
        masks["canal"][60:60 + side_px, 60:60 + side_px] = 1.0
        assert (side_px ** 2 * grid.pixel_area_mm2 >= MIN_CANAL_MM2) == reported
        assert (plausible(masks, grid, reported=True)["canal"].sum() > 0) == reported
        assert plausible(masks, grid)["canal"].sum() > 0  # a speck of a narrowed sac still gives the second crop
        assert masks["canal"].sum() == side_px ** 2  # the caller's masks are not modified


def test_the_segmenter_reports_no_canal_on_a_bright_speck():
    from SpinalStenosisLib.inference import NetworkSegmenter

    # 2 x 2 pixels of 0.8 mm (2.6 mm²), which the native grid holds; a disc of about 18 mm²
    for centre_rc, radius_px, reported in (((125.5, 125.5), 0.75, False), ((125, 125), 3.0, True)):
        grid, image, (row, column) = disc_slice(centre_rc, radius_px)
        [result] = NetworkSegmenter(roi_square(row, column, 8), canal_where_bright).segment([image], [grid])
        assert (result.native_labels == 1).any() == reported


def test_a_foramen_far_beside_the_canal_is_reported_absent():
    from SpinalStenosisLib.inference import plausible

    grid = PlaneGrid(np.zeros(3), np.array([0.0, -0.5, 0.0]), np.array([-0.5, 0.0, 0.0]), (128, 128))
    masks = {name: np.zeros(grid.shape) for name in ("canal", "left_foramen", "right_foramen")}
    masks["canal"][60:80, 54:74] = 1.0
    masks["left_foramen"][65:70, 90:100] = 1.0  # its edge 8.5 mm from the canal's: kept
    masks["right_foramen"][65:70, 20:31] = 1.0  # 12 mm (MAX_FORAMEN_GAP_MM is 10): a vessel, not a foramen
    reported = plausible(masks, grid, reported=True)
    assert reported["left_foramen"].sum() == 50 and reported["right_foramen"].sum() == 0
    assert masks["right_foramen"].sum() == 55  # the caller's masks are not modified
    assert plausible(masks, grid)["right_foramen"].sum() == 55  # the gap bound applies to the result only


def test_the_segmenter_reports_a_foramen_far_beside_the_canal_absent(monkeypatch):
    import SpinalStenosisLib.inference as inference

    grid, image, (row, column) = disc_slice()

    def canal_and_a_far_right_foramen(inputs):  # a "right foramen" at the crop's edge on the patient's right
        logits = canal_where_bright(inputs)
        logits[:, 2, 59:69, 4:14] = 20.0
        return logits

    def right_foramen_pixels() -> int:
        segmenter = inference.NetworkSegmenter(roi_square(row, column, 8), canal_and_a_far_right_foramen)
        [result] = segmenter.segment([image], [grid])
        assert (result.native_labels == 1).sum() > 0.8 * image.sum()
        return int((result.native_labels == 3).sum())

    assert right_foramen_pixels() == 0
    monkeypatch.setattr(inference, "MAX_FORAMEN_GAP_MM", np.inf)
    assert right_foramen_pixels() > 0  # what the rule removed: plausible() alone keeps it


def test_a_field_of_view_within_the_smallest_crop_is_its_own_region_of_interest():
    from SpinalStenosisLib.crop import MIN_CROP_MM
    from SpinalStenosisLib.inference import NetworkSegmenter

    def roi_in_a_corner(inputs):  # network 1 "finds" a region in the top-left corner of every slice
        logits = torch.full(inputs.shape, -20.0)
        logits[..., :20, :20] = 20.0
        return logits

    def canal_nowhere(inputs):
        return torch.full((inputs.shape[0], 3, *inputs.shape[2:]), -20.0)

    segmenter = NetworkSegmenter(roi_in_a_corner, canal_nowhere)
    tight, wide = native(pixel=(0.5, 0.5), shape=(50, 54)), native(pixel=(0.5, 0.5), shape=(300, 300))
    assert 54 * 0.5 < MIN_CROP_MM < 300 * 0.5
    results = segmenter.segment([np.ones(tight.shape, np.float32), np.ones(wide.shape, np.float32)], [tight, wide])
    for result, grid in zip(results, (tight, wide)):
        crop_centre = result.grid.to_ras((result.grid.shape[0] - 1) / 2, (result.grid.shape[1] - 1) / 2)
        slice_centre = grid.to_ras((grid.shape[0] - 1) / 2, (grid.shape[1] - 1) / 2)
        distance = np.linalg.norm(crop_centre - slice_centre)
        if grid is tight:
            assert distance < 1e-6 and result.grid.pixel_size_mm[0] * result.grid.shape[0] == pytest.approx(MIN_CROP_MM)
        else:
            assert distance > 50  # the larger slice follows network 1 into its corner


def test_a_canal_network_2_finds_running_out_of_the_slice_is_flagged_for_a_check():
    from SpinalStenosisLib.crop import crop_grid
    from SpinalStenosisLib.pipeline import SliceSegmentation

    grid = native(pixel=(0.5, 0.5), shape=(60, 60), angle_deg=0.0)  # a 30 mm field of view (a tight cervical T2*)

    class WideCropSegmenter:  # network 2's crop, 40 mm, holds a sac 32 mm wide on slice 0 and 16 mm on slice 1
        def segment(self, images, grids):
            crop = crop_grid(grid, (29.5, 29.5), 40.0)
            rows, columns = np.indices(crop.shape)
            results = []
            for image in images:
                half_width_px = 0.4 * crop.shape[1] if image.max() > 1 else 0.2 * crop.shape[1]
                canal = (((rows - 63.5) / 20) ** 2 + ((columns - 63.5) / half_width_px) ** 2 <= 1).astype(np.float32)
                results.append(SliceSegmentation({"canal": canal}, crop, np.zeros(grid.shape, np.uint8)))
            return results

    stack = tagged_stack(grid, [2.0, 1.0])
    run = measure_with_segmenter(axial_from_array(stack, slice_geometry(grid, 4.0, n_slices=2)), WideCropSegmenter())
    assert [m.cut_by_field_of_view for m in run.measurements] == [{"canal"}, set()]
    assert [m.check for m in run.measurements] == ["canal", ""]


def test_network_2_picks_the_region_of_network_1_where_it_finds_a_canal():
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, (disc_row, disc_column) = disc_slice(centre_rc=(180, 60))  # a bright "canal" low on the left

    def roi_two_regions(inputs):  # a large empty region and a small one around the bright disc
        logits = torch.full(inputs.shape, -20.0)
        logits[..., 10:50, 60:110] = 20.0
        logits[..., disc_row - 6:disc_row + 7, disc_column - 6:disc_column + 7] = 20.0
        return logits

    [result] = NetworkSegmenter(roi_two_regions, canal_where_bright).segment([image], [grid])
    assert (result.native_labels == 1).sum() > 0.8 * (image > 0).sum()
    assert (result.native_labels[image == 0] == 0).all()


def test_the_second_roi_network_is_asked_only_where_network_1_gives_no_region_with_a_canal():
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, (disc_row, disc_column) = disc_slice(centre_rc=(180, 60))  # a bright "canal" low on the left
    asked = []

    def second_roi_on_the_disc(inputs):
        asked.append(len(inputs))
        return roi_square(disc_row, disc_column, 8)(inputs)

    def second_roi_elsewhere(inputs):
        asked.append(len(inputs))
        return roi_square(30, 90, 12)(inputs)

    def roi_nowhere(inputs):
        return torch.full(inputs.shape, -20.0)

    for first in (roi_square(30, 90, 12), roi_nowhere):  # a region without the canal, or none
        asked.clear()
        segmenter = NetworkSegmenter(first, canal_where_bright, second_roi_model=second_roi_on_the_disc)
        [result] = segmenter.segment([image], [grid])
        assert asked == [1]
        assert (result.native_labels == 1).sum() > 0.8 * (image > 0).sum()
        assert (result.native_labels[image == 0] == 0).all()
    asked.clear()
    NetworkSegmenter(roi_square(disc_row, disc_column, 8), canal_where_bright,
                     second_roi_model=second_roi_on_the_disc).segment([image], [grid])
    assert asked == []  # network 1 found the canal's region
    NetworkSegmenter(roi_nowhere, canal_where_bright, second_roi_model=second_roi_elsewhere).segment([image], [grid])
    assert asked == [1]  # asked once: where its region holds no canal either, it is not asked again


def test_the_second_crop_keeps_the_canal_when_network_2_loses_it_there():
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, (row, column) = disc_slice()

    def roi_beside_the_canal(inputs):  # a region holding the canal near its edge: the second crop moves
        logits = torch.full(inputs.shape, -20.0)
        logits[..., row - 8:row + 8, column - 4:column + 30] = 20.0
        return logits

    calls = []

    def canal_at_first_sight_only(inputs):
        calls.append(len(inputs))
        return canal_only(40.0 * (inputs - 0.5) if len(calls) == 1 else torch.full_like(inputs, -20.0))

    [result] = NetworkSegmenter(roi_beside_the_canal, canal_at_first_sight_only).segment([image], [grid])
    assert len(calls) == 3  # the first crop, the second crop, the second crop widened
    assert (result.native_labels == 1).sum() > 0.8 * (image > 0).sum()


def test_a_slice_missing_its_canal_or_off_the_line_is_looked_at_again_where_its_neighbours_put_it():
    from SpinalStenosisLib.centreline import CanalSighting, second_looks

    def at(x_mm, y_mm=-20.0):
        return CanalSighting(np.array([x_mm, y_mm, 0.0]), 50.0)

    def on_the_line(position_mm):  # a canal drifting left and, as in lordosis, posteriorly along the stack
        return at(0.1 * position_mm, -20.0 - 0.2 * position_mm)

    positions = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 200.0]
    sightings = [on_the_line(p) for p in positions]
    sightings[2] = None  # missed
    sightings[4] = at(60.0, -24.0)  # on a kidney
    sightings[6] = at(3.0, -56.0)  # in the skin behind the spine
    looks = second_looks(sightings, positions)
    assert sorted(looks) == [2, 4, 6]  # the last slice has no neighbour within reach
    for n in (2, 4, 6):
        assert looks[n].centre_ras == pytest.approx([0.1 * positions[n], -20.0 - 0.2 * positions[n], positions[n]])
        assert looks[n].crop_side_mm == 50.0
    line_then_bowel = [at(0.5 * (n % 2)) for n in range(8)] + [at(90.0 + n % 2) for n in range(7)]
    assert sorted(second_looks(line_then_bowel, [4.0 * n for n in range(15)])) == list(range(8, 15))
    assert second_looks([at(0.0), None], [0.0, 5.0]) == {}  # one neighbour is not a line


def canal_layout(centres_anterior_mm, semi_ap_mm, spacing_mm):
    """Canal masks [slice, row, column] of canal_arrays and their stack layout."""
    from SpinalStenosisLib.geometry import AxialLayout

    labels, geometry = canal_arrays(centres_anterior_mm, semi_ap_mm, spacing_mm)
    layout = AxialLayout.from_geometry(geometry)
    return layout.to_stack(labels) == 1, layout


def test_thick_slices_through_a_tilted_canal_are_warned_of_and_sacs_changing_shape_are_not():
    from SpinalStenosisLib.centreline import front_to_back_blur_mm, thick_slice_warnings

    n = np.arange(8)
    tilted_thick = canal_layout(-2.0 * n, [6.0] * 8, 7.7)  # 2 mm further back on every 7.7 mm slice: 15°
    assert front_to_back_blur_mm(*tilted_thick) == pytest.approx(np.full(8, 2.0), abs=0.1)
    [warning] = thick_slice_warnings(*tilted_thick)
    assert "slices 7.7 mm apart" in warning and "tilted about 15°" in warning and "over about 2.0 mm" in warning
    assert thick_slice_warnings(*canal_layout(-0.26 * n, [6.0] * 8, 1.0)) == []  # the same tilt, 1 mm slices
    # sacs narrowed at every other level: their centres move 1.5 mm from slice to slice, along no tilt
    changing = canal_layout(-1.5 * (n % 2), [6.0, 4.5] * 4, 7.7)
    assert np.nanmedian(front_to_back_blur_mm(*changing)) < 0.5 and thick_slice_warnings(*changing) == []
    few = canal_layout(-2.0 * n[:2], [6.0] * 2, 7.7)  # two slices draw no line
    assert np.isnan(front_to_back_blur_mm(*few)).all() and thick_slice_warnings(*few) == []
    # slices thicker than their spacing (5 mm every 2.5 mm) blur twice as far as their spacing says
    overlapping = canal_layout(-0.8 * n, [6.0] * 8, 2.5)
    assert thick_slice_warnings(*overlapping) == []
    assert front_to_back_blur_mm(*overlapping, 5.0) == pytest.approx(np.full(8, 1.6), abs=0.1)
    [warning] = thick_slice_warnings(*overlapping, 5.0)
    assert warning.startswith("slices 5.0 mm thick, 2.5 mm apart, through a spine tilted about 18° against them: a "
                              "slice that thick blurs the sac over about 1.6 mm")
    assert thick_slice_warnings(*tilted_thick, 5.0) == []  # 5 mm slices with gaps: 1.3 mm


def test_pixels_coarser_than_the_networks_learnt_from_or_finer_than_any_mr_s_are_warned_of():
    from SpinalStenosisLib.pipeline import input_warnings
    from SpinalStenosisLib.crop import COARSEST_PIXEL_MM

    def warnings_at(pixel_mm):
        grid = PlaneGrid(np.zeros(3), np.array([0.0, -pixel_mm[0], 0.0]), np.array([-pixel_mm[1], 0.0, 0.0]), (40, 40))
        volume = axial_from_array(np.ones((3, 40, 40), np.float32), slice_geometry(grid, 4.0, n_slices=3))
        return input_warnings(volume, np.zeros((3, 40, 40), np.uint8))

    assert 1.3 < COARSEST_PIXEL_MM < 1.5  # the lumbar synthetic slices' coarsest pixels, 1.3 mm wide, 10 % taller
    assert warnings_at((1.0, 1.0)) == [] and warnings_at((1.4, 1.3)) == []
    [warning] = warnings_at((3.0, 3.0))  # the TotalSegmentator example's
    assert warning.startswith("pixels of 3.00 × 3.00 mm, coarser than any the networks learnt from (up to 1.43 mm)")
    assert len(warnings_at((1.0, 1.6))) == 1
    [warning] = warnings_at((1.4304, 1.3))  # not "1.43 × 1.30 mm, coarser than ... (up to 1.43 mm)"
    assert warning.startswith("pixels of 1.4304 × 1.30 mm, coarser than any the networks learnt from (up to 1.43 mm)")
    assert warnings_at((0.14, 0.14)) == []  # a scan interpolated to a 1024 matrix over 140 mm
    [warning] = warnings_at((0.07, 0.07))  # the demo's pixel size in cm, read as mm
    assert warning == ("pixels of 0.07 × 0.07 mm, finer than any MR of the spine has (0.1 mm or more), and a field of "
                       "view of 2.8 × 2.8 mm: is the header's pixel size in other units than mm (cm, m)? Every length "
                       "and area measured follows it")
    [warning] = warnings_at((0.0999, 0.0999))  # not "0.1 × 0.1 mm, finer than ... (0.1 mm or more)"
    assert warning.startswith("pixels of 0.0999 × 0.0999 mm, finer than any MR of the spine has (0.1 mm or more), and "
                              "a field of view of 4 × 4 mm")


def test_a_canal_larger_than_any_dural_sac_over_the_stack_asks_whether_the_pixels_are_the_headers():
    from SpinalStenosisLib.pipeline import input_warnings

    def warnings_of(pixel_mm, canal_radii_px):
        grid = PlaneGrid(np.zeros(3), np.array([0.0, -pixel_mm, 0.0]), np.array([-pixel_mm, 0.0, 0.0]), (80, 80))
        rows, columns = np.mgrid[:80, :80]
        labels = np.stack([np.hypot(rows - 40, columns - 40) < radius for radius in canal_radii_px]).astype(np.uint8)
        volume = axial_from_array(np.ones(labels.shape, np.float32), slice_geometry(grid, 4.0, len(labels)))
        return input_warnings(volume, labels)

    assert warnings_of(0.7, [10, 11, 12, 0]) == []  # 149-214 mm²: a sac's; the slice without a canal left out
    assert warnings_of(1.0, [10, 11, 30]) == []  # one slice's outline 2 809 mm², the median slice's 373 mm²
    [warning] = warnings_of(1.0, [12, 12, 13, 0])  # a 214 mm² sac read with 1 mm pixels, not 0.7 mm: 437 mm²
    assert warning == (
        "the canal's area is 437 mm² on the median slice, more than any dural sac's (at most about 400 mm²): are the "
        "pixels 1.00 × 1.00 mm, as the header says? A converter may write 1 mm for a scan whose pixel size it lost, "
        "and every length and area measured follows it; else check that each canal outline lies on the spinal canal")
    disc_pixels = int((np.hypot(*np.mgrid[-40:40, -40:40]) < 12).sum())
    [warning] = warnings_of(np.sqrt(400.4 / disc_pixels), [12, 12, 12])  # not "400 mm², more than ... 400 mm²"
    assert warning.startswith("the canal's area is 400.4 mm² on the median slice, more than any dural sac's (at most "
                              "about 400 mm²)")


def test_a_field_of_view_narrower_than_any_canal_is_refused_for_the_networks_which_would_outline_one_in_it():
    from SpinalStenosisLib.pipeline import checked_mr_image

    def checked(pixel_mm, size):
        grid = PlaneGrid(np.zeros(3), np.array([0.0, -pixel_mm, 0.0]), np.array([-pixel_mm, 0.0, 0.0]), (size, size))
        noise = np.random.default_rng(0).uniform(10.0, 100.0, (3, size, size)).astype(np.float32)
        return checked_mr_image(axial_from_array(noise, slice_geometry(grid, 4.0, n_slices=3)), "scan")

    for pixel_mm, size in ((0.7, 40), (0.07, 320)):  # a tight crop, 28 mm; the demo's pixel size in cm, 22 mm
        checked(pixel_mm, size)
    for pixel_mm, size, field in ((0.7, 4, "2.8 × 2.8"), (1e-9, 320, "3.2e-07 × 3.2e-07"),  # in m: no canal fits
                                  (2.4975, 4, "9.99 × 9.99")):  # not "10 × 10 mm, narrower than ... (10 mm or more"
        with pytest.raises(InputError, match=re.escape(f"scan: a field of view of {field} mm, narrower than any "
                                                       "spinal canal (10 mm or more across), in which the networks "
                                                       "would still outline one")):
            checked(pixel_mm, size)


def test_a_stack_keeps_to_the_canal_where_network_1_strays_onto_a_bright_kidney_on_one_slice():
    from scipy import ndimage

    from SpinalStenosisLib.inference import NetworkSegmenter

    grid = native(pixel=(0.8, 0.8), shape=(250, 250), angle_deg=0.0)
    rows, columns = np.mgrid[:250, :250]
    canal = np.hypot(rows - 125, columns - 125) < 8
    kidney = np.hypot(rows - 125, columns - 200) < 8
    stack = np.stack([canal | (kidney if s == 3 else False) for s in range(7)]).astype(np.float32)

    def roi_on_the_rightmost_bright_region(inputs):  # image columns run to the patient's left
        logits = torch.full(inputs.shape, -20.0)
        for n, image in enumerate(inputs[:, 0].numpy()):
            labelled, count = ndimage.label(image > 0.5)
            if count:
                centres = ndimage.center_of_mass(image > 0.5, labelled, range(1, count + 1))
                label = 1 + int(np.argmax([c[1] for c in centres]))
                logits[n, 0][torch.from_numpy(ndimage.binary_dilation(labelled == label, iterations=3))] = 20.0
        return logits

    segmenter = NetworkSegmenter(roi_on_the_rightmost_bright_region, canal_where_bright)
    [first_look] = segmenter.segment([stack[3]], [grid])
    assert (first_look.native_labels[kidney] == 1).all() and not (first_look.native_labels[canal] == 1).any()
    geometry = slice_geometry(grid, 4.0, n_slices=len(stack))
    run = measure_with_segmenter(axial_from_array(stack, geometry), segmenter)  # stored as rows A→P, columns R→L
    for labels in run.stack_labels:
        assert (labels[canal] == 1).sum() > 0.8 * canal.sum() and not (labels[kidney] == 1).any()


def test_a_canal_off_the_line_is_dropped_when_the_second_look_finds_none_on_it():
    from SpinalStenosisLib.pipeline import SliceSegmentation

    grid = native(pixel=(1.0, 1.0), shape=(60, 60), angle_deg=0.0)

    def result_with_canal_at(column):
        canal = np.zeros(grid.shape, np.float32)
        canal[25:35, column - 5:column + 5] = 1.0
        return SliceSegmentation({"canal": canal}, grid, canal.astype(np.uint8))

    class StrayingSegmenter:
        looked_again = []

        def segment(self, images, grids):
            return [result_with_canal_at(50 if image.max() > 1 else 30) for image in images]

        def look_again(self, images, grids, expected):
            self.looked_again += [where.centre_ras[0] for where in expected]
            return [result_with_canal_at(50) for _ in images]

    stack = tagged_stack(grid, [1.0, 1.0, 2.0, 1.0, 1.0])  # slice 2: where the canal is found 20 mm off the line
    segmenter = StrayingSegmenter()
    run = measure_with_segmenter(axial_from_array(stack, slice_geometry(grid, 4.0, n_slices=5)), segmenter)
    assert segmenter.looked_again == [pytest.approx(grid.to_ras(29.5, 29.5)[0])]
    assert not run.stack_labels[2].any() and math.isnan(run.measurements[2].values["canal_ap_mm"])
    assert (run.stack_labels[1, 25:35, 25:35] == 1).all() and (run.stack_labels[3, 25:35, 25:35] == 1).all()


def test_a_blank_slice_is_given_to_no_network_and_said_to_be_blank():
    image, _, geometry = phantom_arrays(n_slices=5)
    image[2] = 0.0  # a slice lost in the export, between two with a canal: the second look would go there
    given = []

    class Recording(ThresholdSegmenter):
        def segment(self, images, grids):
            given.extend(images)
            return super().segment(images, grids)

        def look_again(self, images, grids, expected):
            return self.segment(images, grids)

    run = measure_with_segmenter(axial_from_array(image, geometry), Recording())
    assert len(given) == 4 and not any(is_blank(image) for image in given)
    assert not run.stack_labels[2].any() and math.isnan(run.measurements[2].values["canal_ap_mm"])
    assert all(run.stack_labels[s].any() for s in (0, 1, 3, 4))
    assert run.warnings == ["slice 2 holds one value throughout (blank: padding, or a slice lost in the export): "
                            "nothing is measured on it"]


def test_a_canal_much_smaller_than_its_neighbours_is_looked_at_again_where_they_put_it():
    from SpinalStenosisLib.centreline import PART_OF_SAC, CanalSighting, second_looks

    def canal(area_mm2, x_mm=0.0):
        return CanalSighting(np.array([x_mm, -20.0, 0.0]), 50.0, area_mm2, 0.9)

    positions = [4.0 * n for n in range(7)]
    sightings = [canal(200.0) for _ in positions]
    sightings[2] = canal(0.9 * PART_OF_SAC * 200.0, x_mm=3.0)  # a part of the sac on the line
    sightings[4] = canal(1.1 * PART_OF_SAC * 200.0)  # about its neighbours' size
    looks = second_looks(sightings, positions)
    assert sorted(looks) == [2]
    assert looks[2].centre_ras == pytest.approx([0.0, -20.0, 8.0]) and looks[2].crop_side_mm == 50.0


def test_a_second_look_replaces_a_part_of_the_sac_by_the_whole_surer_sac_but_keeps_a_narrowed_sac():
    from SpinalStenosisLib.pipeline import SliceSegmentation

    grid = native(pixel=(1.0, 1.0), shape=(60, 60), angle_deg=0.0)

    def result(half_width, probability, half_height=None):
        canal = np.zeros(grid.shape, np.float32)
        half_height = half_height or half_width
        canal[30 - half_height:30 + half_height, 30 - half_width:30 + half_width] = probability
        return SliceSegmentation({"canal": canal}, grid, (canal >= 0.5).astype(np.uint8))

    first_results = {1.0: result(8, 1.0), 2.0: result(2, 0.7), 3.0: result(3, 0.95), 4.0: result(5, 0.9)}
    second_results = {2.0: result(8, 0.98), 3.0: result(2, 0.99), 4.0: result(5, 0.97, half_height=6)}

    class Segmenter:  # slice 2 (value 2): a part of the sac at first sight; slices 4 and 5 (3, 4): narrowed sacs
        looked_again = []

        def segment(self, images, grids):
            return [first_results[image.max()] for image in images]

        def look_again(self, images, grids, expected):  # all surer: the whole sac, a smaller one, one 1.2 times larger
            self.looked_again += [int(image.max()) for image in images]
            return [second_results[image.max()] for image in images]

    stack = tagged_stack(grid, [1.0, 1.0, 2.0, 1.0, 3.0, 4.0, 1.0])
    segmenter = Segmenter()
    run = measure_with_segmenter(axial_from_array(stack, slice_geometry(grid, 4.0, n_slices=7)), segmenter)
    assert sorted(segmenter.looked_again) == [2, 3, 4]
    assert run.measurements[2].values["canal_area_mm2"] == pytest.approx(16 * 16 * 0.98)
    assert run.measurements[4].values["canal_area_mm2"] == pytest.approx(6 * 6 * 0.95)  # the first look stays
    assert run.measurements[5].values["canal_area_mm2"] == pytest.approx(10 * 10 * 0.9)  # so does this one


def test_a_slice_is_looked_at_again_when_the_growing_line_moves_where_its_canal_is_expected():
    from SpinalStenosisLib.pipeline import SliceSegmentation

    grid = native(pixel=(1.0, 1.0), shape=(60, 60), angle_deg=0.0)
    true_column = [30, 30, 35, 40]  # a canal curving 5 mm to the patient's left per 4 mm slice from slice 1 on

    def result_with_canal_at(column):
        canal = np.zeros(grid.shape, np.float32)
        if column is not None:
            canal[25:35, column - 5:column + 5] = 1.0
        return SliceSegmentation({"canal": canal}, grid, canal.astype(np.uint8))

    class CurvingSegmenter:
        looks = []

        def segment(self, images, grids):  # network 1 finds the canal on the first two slices only
            return [result_with_canal_at(30 if image.max() <= 2 else None) for image in images]

        def look_again(self, images, grids, expected):
            slices = [int(image.max()) - 1 for image in images]
            self.looks += [(s, where.centre_ras[0]) for s, where in zip(slices, expected)]
            return [result_with_canal_at(true_column[s]) for s in slices]

    stack = tagged_stack(grid, [1.0, 2.0, 3.0, 4.0])
    segmenter = CurvingSegmenter()
    run = measure_with_segmenter(axial_from_array(stack, slice_geometry(grid, 4.0, n_slices=4)), segmenter)
    # first round: slices 2 and 3 expected in line with slices 0-1; slice 3's canal is 10 mm off it, not kept
    # second round: the line through slices 0-2 puts slice 3's canal 6.7 mm farther left, where it is found
    assert [s for s, _ in segmenter.looks] == [2, 3, 3]
    assert segmenter.looks[2][1] - segmenter.looks[1][1] == pytest.approx(-20.0 / 3, abs=0.01)  # RAS x: to the left
    for s, column in enumerate(true_column):
        assert (run.stack_labels[s, 25:35, column - 5:column + 5] == 1).all()


def test_a_stray_foramen_far_from_the_canal_does_not_stretch_the_second_crop():
    from SpinalStenosisLib.crop import MIN_CROP_MM
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, (row, column) = disc_slice(angle_deg=0.0)

    def canal_and_a_stray_right_foramen(inputs):  # the "foramen" sits in a crop corner, ~40 mm from the canal
        canal = 40.0 * (inputs - 0.5)
        stray = torch.full_like(canal, -20.0)
        stray[..., 118:126, 2:10] = 20.0
        return torch.cat([torch.full_like(canal, -20.0), canal, stray], dim=1)

    [result] = NetworkSegmenter(roi_square(row, column, 40), canal_and_a_stray_right_foramen).segment([image], [grid])
    canal_only_side_mm = 1.15 * (16 * 0.8 + 2 * 12.0) + 6.0  # canal box with lateral padding, no foramina
    assert result.grid.shape[0] * result.grid.pixel_size_mm[0] == pytest.approx(canal_only_side_mm, abs=2.0)
    assert canal_only_side_mm > MIN_CROP_MM


def test_a_canal_lost_in_a_tight_second_crop_is_looked_for_from_farther_away():
    from SpinalStenosisLib.crop import MAX_CROP_MM
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, (row, column) = disc_slice(radius_px=12, angle_deg=0.0)  # a 19 mm canal

    def canal_unless_it_fills_the_crop(inputs):  # like network 2 on real canals filling a tight crop
        bright = inputs > 0.5
        small = (bright.float().mean(dim=(1, 2, 3)) < 0.06)[:, None, None, None]
        return canal_only(torch.where(small & bright, 20.0, -20.0))

    [result] = NetworkSegmenter(roi_square(row, column, 45), canal_unless_it_fills_the_crop).segment([image], [grid])
    tight_side_mm = 1.15 * (24 * 0.8 + 2 * 12.0) + 6.0  # the second crop around the canal found first
    assert result.grid.shape[0] * result.grid.pixel_size_mm[0] == pytest.approx(1.5 * tight_side_mm, abs=2.0)
    assert 1.5 * tight_side_mm < MAX_CROP_MM
    assert (result.native_labels == 1).sum() > 0.8 * image.sum()


def test_a_small_canal_network_2_misses_in_a_wide_crop_is_looked_for_closer():
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, (row, column) = disc_slice(centre_rc=(110, 140), radius_px=4, angle_deg=0.0)  # a 6 mm canal
    shares = []  # of each crop network 2 is given, the share the canal fills

    def canal_only_when_large_enough(inputs):  # like network 2 on a small canal in a crop wider than it learnt on
        bright = inputs > 0.5
        share = bright.float().mean(dim=(1, 2, 3))
        shares.append(share.tolist())
        return canal_only(torch.where((share > 0.008)[:, None, None, None] & bright, 20.0, -20.0))

    wide_roi = roi_square(row + 12, column - 15, 30)  # network 1's region: 94 mm wide, the canal off its centre
    [result] = NetworkSegmenter(wide_roi, canal_only_when_large_enough).segment([image], [grid])
    assert len(shares[0]) == 1 and shares[0][0] < 0.008  # the wide crop hides the canal
    assert len(shares[1]) == 9  # 3 x 3 closer crops
    assert (result.native_labels == 1).sum() > 0.8 * image.sum()
    assert (result.native_labels[image == 0] == 0).all()


def test_a_canal_outlined_in_noise_alone_is_to_check_and_a_visible_one_is_not():
    from SpinalStenosisLib.inference import NetworkSegmenter
    from SpinalStenosisLib.measurement import doubted, measure_slice

    grid, sac, (row, column) = disc_slice()
    rng = np.random.default_rng(3)
    noise, sac_in_noise = (rng.normal(0.0, 0.05, grid.shape).astype(np.float32) + s for s in (0.0, sac))

    def canal_at_the_crop_centre(inputs):  # network 2 outlining a sure "canal" whatever the crop holds
        size = inputs.shape[-1]
        rows, columns = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        disc = torch.hypot(rows - (size - 1) / 2, columns - (size - 1) / 2) < size / 6
        return canal_only(torch.where(disc, 20.0, -20.0).expand(inputs.shape).clone())

    roi = roi_square(row, column, 12)
    for network_2, image, to_check in ((canal_at_the_crop_centre, noise, "canal"),
                                       (canal_where_bright, sac_in_noise, "")):
        [result] = NetworkSegmenter(roi, network_2).segment([image], [grid])
        m = measure_slice(result.masks, result.grid, canal_edge_to_noise=result.canal_edge_to_noise)
        assert not doubted(m.confidences["canal_confidence"]) and not math.isnan(m.values["canal_ap_mm"])
        assert m.check == to_check


def test_half_slice_views_cover_the_whole_slice_view_overlapping_by_half():
    grid = native()
    whole = whole_slice_grid(grid)
    views = half_slice_grids(grid)
    assert len(views) == 9
    corners = [view.extent_on(whole) for view in views]  # row min, row max, column min, column max
    starts = sorted({round(c[0], 6) for c in corners}), sorted({round(c[2], 6) for c in corners})
    for row_or_column in starts:
        assert row_or_column == pytest.approx([-0.5, 31.5, 63.5])  # every 32 view pixels: a quarter of the side
    for row0, row1, column0, column1 in corners:
        assert row1 - row0 == pytest.approx(64) and column1 - column0 == pytest.approx(64)
    assert all(view.shape == whole.shape for view in views)


def test_network_1_looks_closer_at_a_large_slice_where_it_sees_no_spine():
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, _ = disc_slice(centre_rc=(150, 80), radius_px=6, angle_deg=0.0)  # 200 mm slice, a 10 mm canal
    shares = []

    def roi_only_when_large_enough(inputs):  # like network 1 on a canal a few pixels wide in a whole-body view
        bright = inputs > 0.5
        share = bright.float().mean(dim=(1, 2, 3))
        shares.append(share.tolist())
        return torch.where((share > 0.006)[:, None, None, None] & bright, 20.0, -20.0)

    [result] = NetworkSegmenter(roi_only_when_large_enough, canal_where_bright).segment([image], [grid])
    assert len(shares[0]) == 1 and shares[0][0] < 0.006  # the whole slice hides the canal
    assert len(shares[1]) == 9  # nine half as wide views
    assert (result.native_labels == 1).sum() > 0.8 * image.sum()
    assert (result.native_labels[image == 0] == 0).all()


def test_a_second_look_finds_a_canal_that_the_expected_crop_cuts_at_its_edge():
    from SpinalStenosisLib.centreline import CanalSighting
    from SpinalStenosisLib.inference import NetworkSegmenter

    grid, image, _ = disc_slice(radius_px=8, angle_deg=0.0)  # a 13 mm canal at the slice centre

    def canal_unless_cut_by_the_crop(inputs):  # like network 2 on a sac at the edge of its crop
        bright = inputs > 0.5
        edge = torch.zeros_like(bright)
        edge[..., :2, :], edge[..., -2:, :], edge[..., :, :2], edge[..., :, -2:] = True, True, True, True
        cut = (bright & edge).flatten(1).any(dim=1)[:, None, None, None]
        return canal_only(torch.where(bright & ~cut, 20.0, -20.0))

    canal_ras = grid.to_ras(125, 125)
    expected = CanalSighting(canal_ras + np.array([0.0, -20.0, 0.0]), 44.0)  # 20 mm posterior: the crop cuts it
    [result] = NetworkSegmenter(None, canal_unless_cut_by_the_crop).look_again([image], [grid], [expected])
    assert (result.native_labels == 1).sum() > 0.8 * image.sum()
