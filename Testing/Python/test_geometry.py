"""Geometry: LPS/RAS, axial axis wherever it sits, flips and obliques, refusal of non-axial stacks, DICOM."""
import gzip
import itertools
import re
import shutil
import struct
from collections import Counter

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import phantom_arrays, tilted, write_dicom_series
from enhanced_dicom import Writer, frame_planes_lps, write_enhanced_mr

from SpinalStenosisLib import dicom_frames, dicom_series
from SpinalStenosisLib.geometry import (AxialLayout, FieldOfView, GeometryError, PlaneGrid, VolumeGeometry, ceil_pixels,
                                        floor_pixels, reordered, stack_layout)
from SpinalStenosisLib.pipeline import checked_mr_image, measure_with_labels
from SpinalStenosisLib.volume_io import (NON_FINITE_WARNING, WRAPPED_BYTES_WARNING, InputError, axial_from_array,
                                         input_name, open_axial, open_axial_blocks, read_labels, structure_segments,
                                         with_image_numbers, write_image, write_labels)


def measured(image, labels, geometry):
    """Measurement rows ordered by slice position (z), so storage order does not matter."""
    volume = axial_from_array(image, geometry)
    rows = sorted(measure_with_labels(volume, labels).measurements, key=lambda m: m.z_mm)
    return np.array([[m.z_mm] + [m.values[k] for k in sorted(m.values)] for m in rows])


def by_position(layout, stack):
    """Stack slices ordered inferior → superior, with each slice's pixel→RAS mapping."""
    order = np.argsort([layout.slice_position_mm(s) for s in range(stack.shape[0])])
    grids = [layout.slice_grid(int(s)) for s in order]
    return stack[order], np.array([[g.origin_ras, g.row_step_ras, g.column_step_ras] for g in grids])


def test_lps_file_geometry_becomes_ras():
    image = sitk.Image([4, 5, 6], sitk.sitkFloat32)
    image.SetOrigin((10.0, 20.0, 30.0))
    image.SetSpacing((0.5, 0.6, 3.0))
    geometry = VolumeGeometry.from_sitk(image)
    assert np.allclose(geometry.ijk_to_ras[:3, 3], [-10.0, -20.0, 30.0])
    assert np.allclose(geometry.ijk_to_ras[:3, :3], np.diag([-0.5, -0.6, 3.0]))
    copy = sitk.Image([4, 5, 6], sitk.sitkFloat32)
    geometry.apply_to_sitk(copy)
    assert copy.GetOrigin() == pytest.approx(image.GetOrigin()) and copy.GetDirection() == image.GetDirection()


def test_a_grid_whose_voxels_lie_on_another_s_gives_their_indices_there():
    steps = np.diag([-0.7, -0.7, 4.0])
    whole = VolumeGeometry((320, 320, 9), np.block([[steps, np.array([[110.0], [120.0], [0.0]])], [np.zeros(3), 1.0]]))
    box = VolumeGeometry((40, 30, 9), whole.ijk_to_ras.copy())
    box.ijk_to_ras[:3, 3] = whole.ijk_to_ras[:3, :3] @ [150, 200, 0] + whole.ijk_to_ras[:3, 3]
    permutation, offset = box.voxels_on(whole)
    assert np.array_equal(permutation, np.eye(3)) and offset.tolist() == [150, 200, 0]
    assert whole.voxels_on(box)[1].tolist() == [-150, -200, 0]
    # the whole grid reoriented: rows and columns swapped, the slices in reverse order
    turned = np.eye(4)
    turned[:3, :3] = whole.ijk_to_ras[:3, :3] @ [[0, 1, 0], [1, 0, 0], [0, 0, -1]]
    turned[:3, 3] = whole.ijk_to_ras[:3, :3] @ [0, 0, 8] + whole.ijk_to_ras[:3, 3]
    permutation, offset = VolumeGeometry((320, 320, 9), turned).voxels_on(whole)
    assert permutation.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, -1]] and offset.tolist() == [0, 0, 8]
    half = VolumeGeometry(box.size_ijk, box.ijk_to_ras.copy())
    half.ijk_to_ras[:3, 3] += [0.35, 0.0, 0.0]  # half a voxel across
    finer = VolumeGeometry(box.size_ijk, box.ijk_to_ras @ np.diag([0.5, 0.5, 1.0, 1.0]))
    assert half.voxels_on(whole) is None and finer.voxels_on(whole) is None


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_every_array_layout_gives_the_same_stack_and_measurements(order):
    image, labels, geometry = phantom_arrays()
    reference_layout = AxialLayout.from_geometry(geometry)
    reference = measured(image, labels, geometry)
    for flips in itertools.product([False, True], repeat=3):
        stored_image, stored_geometry = reordered(image, geometry, order, flips)
        stored_labels, _ = reordered(labels, geometry, order, flips)
        layout = AxialLayout.from_geometry(stored_geometry)
        stack, in_plane = by_position(layout, layout.to_stack(stored_image))
        reference_stack, reference_in_plane = by_position(reference_layout, reference_layout.to_stack(image))
        assert np.array_equal(stack, reference_stack)
        assert np.allclose(in_plane, reference_in_plane)
        assert np.allclose(measured(stored_image, stored_labels, stored_geometry), reference, equal_nan=True)
        volume = axial_from_array(stored_image, stored_geometry)  # masks written back onto the input's grid
        assert np.array_equal(volume.to_source_grid(volume.from_source_grid(stored_labels)), stored_labels)
        assert np.array_equal(volume.source_voxels(), stored_image)


@pytest.mark.parametrize("code", ["RAS", "LPS", "LAS", "RPI", "PIR", "SLA"])
def test_files_reoriented_by_simpleitk_measure_identically(tmp_path, code):
    image, labels, geometry = phantom_arrays()
    reference = measured(image, labels, geometry)
    for name, array in (("image", image), ("labels", labels)):
        itk = sitk.GetImageFromArray(array)
        geometry.apply_to_sitk(itk)
        sitk.WriteImage(sitk.DICOMOrient(itk, code), str(tmp_path / f"{name}.nrrd"))
    volume = open_axial(tmp_path / "image.nrrd")
    run = measure_with_labels(volume, read_labels(tmp_path / "labels.nrrd", volume.source_geometry))
    rows = sorted(run.measurements, key=lambda m: m.z_mm)
    values = np.array([[m.z_mm] + [m.values[k] for k in sorted(m.values)] for m in rows])
    assert np.allclose(values, reference, equal_nan=True)


def test_twenty_degree_oblique_acquisition_measures_identically():
    image, labels, geometry = phantom_arrays()
    t = np.radians(20.0)
    tilt = np.eye(4)
    tilt[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    oblique = VolumeGeometry(geometry.size_ijk, tilt @ geometry.ijk_to_ras)
    assert np.allclose(measured(image, labels, oblique)[:, 1:], measured(image, labels, geometry)[:, 1:],
                       equal_nan=True)


def test_patient_left_comes_from_the_affine_not_the_pixels():
    image, labels, geometry = phantom_arrays()
    mirrored = VolumeGeometry(geometry.size_ijk, np.diag([-1.0, 1, 1, 1]) @ geometry.ijk_to_ras)
    volume = axial_from_array(image, mirrored)
    stack = volume.from_source_grid(labels)
    # mirrored through the affine, the label-2 structure now lies on the patient's right: image left
    columns = np.nonzero(stack[0] == 2)[1]
    assert columns.mean() < stack.shape[2] / 2


def test_sagittal_thick_slices_are_refused_with_what_was_found():
    sagittal = VolumeGeometry((20, 64, 64), np.diag([4.0, 0.7, 0.7, 1.0]))  # i along R-L with 4 mm slices
    with pytest.raises(GeometryError, match="sagittal stack, 4.0 mm slices: load the axial series"):
        AxialLayout.from_geometry(sagittal)


def test_a_volume_is_stacked_along_its_one_thickest_axis_or_where_two_share_it_along_the_closest_to_axial():
    thin_axial = VolumeGeometry((64, 64, 20), np.diag([0.8, 0.8, 0.4, 1.0]))  # slices closer than the pixels' sides
    assert AxialLayout.from_geometry(thin_axial).stack_shape == (20, 64, 64)
    oblong_pixels = VolumeGeometry((64, 64, 20), np.diag([0.4, 0.8, 0.8, 1.0]))
    assert AxialLayout.from_geometry(oblong_pixels).stack_shape == (20, 64, 64)
    thin_sagittal = VolumeGeometry((20, 64, 64), np.diag([0.4, 0.9, 0.9, 1.0]))  # read across its sagittal slices
    assert AxialLayout.from_geometry(thin_sagittal).stack_shape == (64, 64, 20)
    thick_coronal = VolumeGeometry((64, 20, 64), np.diag([0.7, 4.0, 0.7, 1.0]))  # one thickest: its slices
    with pytest.raises(GeometryError, match="coronal stack, 4.0 mm slices: load the axial series"):
        AxialLayout.from_geometry(thick_coronal)


def slice_centres_ras(layout: AxialLayout) -> np.ndarray:
    """The centre of each slice of a stack, [slice, 3]."""
    return np.array([layout.slice_grid(k).centre_ras for k in range(layout.stack_shape[0])])


def test_isotropic_volume_stored_sagittally_is_used_without_reslicing():
    image, labels, geometry = phantom_arrays(n_slices=8)
    iso = VolumeGeometry(geometry.size_ijk, geometry.ijk_to_ras @ np.diag([1.0, 1.0, 0.2, 1.0]))  # 0.8 mm cubes
    stored, stored_geometry = reordered(image, iso, (2, 0, 1), (False, True, False))
    volume = axial_from_array(stored, stored_geometry)
    assert volume.layout.geometry is volume.source_geometry  # not resliced
    assert volume.n_slices == 8 and volume.layout.slice_axis == 1
    assert with_image_numbers(volume, list("12345678")).image_numbers == []  # a slice is no one stored image
    layout = stack_layout(stored_geometry)
    assert layout.stack_shape == volume.layout.stack_shape
    assert np.array_equal(layout.stack_index_to_ras(), volume.layout.stack_index_to_ras())


def test_tilted_isotropic_volume_is_resliced_and_labels_map_back():
    image, labels, geometry = phantom_arrays(n_slices=12, size=48)
    iso = geometry.ijk_to_ras @ np.diag([1.0, 1.0, 0.2, 1.0])
    t = np.radians(40.0)
    tilt = np.eye(4)
    tilt[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    tilted = VolumeGeometry(geometry.size_ijk, tilt @ iso)
    volume = axial_from_array(image, tilted)
    assert volume.layout.geometry != tilted
    assert abs(volume.layout.geometry.directions_ras[2, 2]) == pytest.approx(1.0)
    back = volume.to_source_grid(volume.from_source_grid(labels))
    assert back.shape == labels.shape
    assert (back == labels).mean() > 0.97
    assert stack_layout(tilted).geometry.matches(volume.layout.geometry)  # the same stack, without the voxels
    assert with_image_numbers(volume, [str(k) for k in range(volume.n_slices)]).image_numbers == []  # resliced


def test_dicom_series_round_trip(tmp_path):
    image, labels, geometry = phantom_arrays(n_slices=4)
    write_dicom_series(tmp_path, image, geometry, series=1)
    volume = open_axial(tmp_path)
    reference = AxialLayout.from_geometry(geometry)
    assert np.allclose(volume.layout.stack_index_to_ras(), reference.stack_index_to_ras(), atol=1e-3)
    assert np.array_equal(volume.stack(), reference.to_stack(image.astype(np.int16)).astype(np.float32))
    assert volume.warnings == []


def test_a_series_in_angled_blocks_is_read_with_a_warning_or_as_one_stack_per_block(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    second_image, _, second_geometry = phantom_arrays(n_slices=4)
    second = tilted(second_geometry, 15.0, (0.0, 0.0, 30.0))
    write_dicom_series(tmp_path, image, geometry, series=1)
    write_dicom_series(tmp_path, second_image, second, series=1, first_instance=3)
    (tmp_path / "series1_slice004.dcm").unlink()  # the second block's second slice is missing
    volume = open_axial(tmp_path)
    assert volume.n_slices == 6
    [warning] = volume.warnings
    assert "2 different angles" in warning and "in-plane measurements hold" in warning
    first_block, lone_slice, rest = open_axial_blocks(tmp_path)  # the gap parts the second angle's slices
    assert first_block.source_geometry.matches(geometry)
    assert np.array_equal(first_block.source_voxels(), image)
    [warning] = first_block.warnings
    assert warning.startswith("the DICOM series' slices at one of its angles lie in 2 runs of evenly spaced slices "
                              "parted by wider gaps (8.0 mm; parallel blocks, or a slice missing)")
    for block, slices in ((lone_slice, [0]), (rest, [2, 3])):
        assert block.source_geometry.size_ijk == (96, 96, len(slices))
        assert block.warnings == [warning]  # the series' warning is each block's
        assert np.allclose(slice_centres_ras(block.layout), slice_centres_ras(stack_layout(second))[slices],
                           atol=1e-3)  # each slice where it was imaged
        assert np.array_equal(block.source_voxels(), second_image[slices])


@pytest.mark.parametrize("explicit, undefined_lengths, icon", [
    (True, False, False), (True, True, False), (False, False, False), (False, True, False),
    (True, False, True), (True, True, True),  # an icon whose pixels are encapsulated, before the functional groups
])
def test_an_enhanced_multi_frame_file_in_angled_blocks_is_read_as_its_functional_groups_place_each_frame(
        tmp_path, explicit, undefined_lengths, icon):
    image, _, geometry = phantom_arrays(n_slices=3)
    second_image, _, second_geometry = phantom_arrays(n_slices=4)
    second = tilted(second_geometry, 15.0, (0.0, 0.0, 30.0))
    planes = frame_planes_lps(image, geometry) + frame_planes_lps(second_image, second)
    order = [6, 0, 5, 1, 4, 2, 3]  # the blocks' frames interleaved, each block's from head to foot
    path = tmp_path / "enhanced.dcm"
    write_enhanced_mr(path, np.concatenate([image, second_image])[order], [planes[n] for n in order], pixel_mm=0.8,
                      explicit=explicit, undefined_lengths=undefined_lengths, icon=icon)
    for blocks in (open_axial_blocks(path), open_axial_blocks(tmp_path)):  # the file, and its folder
        tilted_block, first_block = blocks  # in the order of their first frames
        assert first_block.source_geometry.matches(geometry) and tilted_block.source_geometry.matches(second)
        assert np.array_equal(first_block.source_voxels(), image)
        assert np.array_equal(tilted_block.source_voxels(), second_image)
        assert (first_block.warnings, first_block.slice_thickness_mm) == ([], 4.0)
        assert (first_block.image_numbers, tilted_block.image_numbers) == (["2", "4", "6"], ["7", "5", "3", "1"])
    [warning] = open_axial(path).warnings  # as one stack
    assert warning.startswith("the DICOM series has slices at 2 different angles (angled blocks)")


def test_an_enhanced_file_s_image_sets_and_gaps_are_told_apart_as_a_series_files_are(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=5)
    imaged = [4, 3, 1, 0]  # from head to foot, the middle slice missing
    planes = frame_planes_lps(image, geometry)
    water, fat = "ORIGINAL\\PRIMARY\\WATER\\NONE", "ORIGINAL\\PRIMARY\\FAT\\NONE"
    path = tmp_path / "dixon.dcm"
    write_enhanced_mr(path, np.concatenate([image[imaged], 2 * image[imaged]]), [planes[k] for k in imaged * 2],
                      pixel_mm=0.8, echo_times_ms=[4.8] * 8, frame_types=[water] * 4 + [fat] * 4)
    imaged_ras = slice_centres_ras(stack_layout(geometry))
    for image_set, times, why in ((None, 1, "its Image Type names a water"), ("fat", 2, "as --image-set asked")):
        blocks = open_axial_blocks(path, image_set=image_set)
        assert [block.n_slices for block in blocks] == [2, 2]
        chosen, runs = blocks[0].warnings
        assert f'told apart by their Image Type: "{water}" (4 slices), "{fat}" (4 slices); measured those of' in chosen
        assert why in chosen and runs.startswith("the DICOM series' slices lie in 2 runs of evenly spaced slices")
        for block, slices in zip(blocks, ([3, 4], [0, 1])):  # in the order of their first frames
            assert np.allclose(slice_centres_ras(block.layout), imaged_ras[slices], atol=1e-3)
            assert np.array_equal(block.source_voxels(), times * image[slices])
        assert [block.image_numbers for block in blocks] == ([["2", "1"], ["4", "3"]] if times == 1 else
                                                             [["6", "5"], ["8", "7"]])  # each slice's frame
    assert "unevenly spaced (4.0-8.0 mm apart" in open_axial(path).warnings[1]
    with pytest.raises(InputError, match="--image-set 'opp_phase' names none of the series' images"):
        open_axial(path, image_set="opp_phase")


def test_a_series_in_multi_frame_files_one_a_block_is_read_frame_by_frame_and_counts_its_frames(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=4)
    upper = tilted(geometry, 0.0, (0.0, 0.0, 30.0))  # a parallel block, its first slice 18 mm above the last below
    write_enhanced_mr(tmp_path / "lower.dcm", image, frame_planes_lps(image, geometry), pixel_mm=0.8, instance=1)
    write_enhanced_mr(tmp_path / "upper.dcm", image[:2], frame_planes_lps(image[:2], upper), pixel_mm=0.8, instance=2)
    write_dicom_series(tmp_path, image[:3], geometry, series=2, tags=(("0020|0011", "3"), ("0008|103e", "AX T2"),
                                                                     ("0008|0008", "ORIGINAL\\PRIMARY\\M\\NONE")))
    lower, higher = open_axial_blocks(tmp_path)
    assert lower.source_geometry.matches(geometry) and np.array_equal(lower.source_voxels(), image)
    assert higher.source_geometry.matches(VolumeGeometry((96, 96, 2), upper.ijk_to_ras))
    assert np.array_equal(higher.source_voxels(), image[:2])
    assert (lower.image_numbers, higher.image_numbers) == (["1:1", "1:2", "1:3", "1:4"], ["2:1", "2:2"])  # frames
    assert lower.warnings[0].startswith('the DICOM folder holds 2 axial series: measured series 5 ("t2_tse_tra", 6 '
                                        'slices), the T2-weighted one with the most slices; not measured: series 3 '
                                        '("AX T2", 3 slices)')
    assert "lie in 2 runs of evenly spaced slices parted by wider gaps (18.0 mm" in lower.warnings[1]


def test_a_series_of_enhanced_files_of_one_frame_each_is_placed_by_their_functional_groups_without_false_gaps(
        tmp_path):
    image, _, geometry = phantom_arrays(n_slices=4)
    planes = frame_planes_lps(image, geometry)
    for k in range(4):  # as some exports and GDCM write them: the geometry in the groups only, not at the top level
        write_enhanced_mr(tmp_path / f"frame{k}.dcm", image[k:k + 1], planes[k:k + 1], pixel_mm=0.8, instance=k + 1)
    header = sitk.ImageFileReader()
    header.SetFileName(str(tmp_path / "frame0.dcm"))
    header.ReadImageInformation()
    assert not header.HasMetaDataKey("0020|0032") and not header.HasMetaDataKey("0028|0030")
    series = open_axial(tmp_path)
    assert series.warnings == []  # not "no Image Position (Patient) tag ...", "no pixel size ..."
    assert series.source_geometry.matches(geometry) and np.array_equal(series.source_voxels(), image)
    assert series.image_numbers == ["1", "2", "3", "4"]  # each file's Instance Number, as a viewer numbers it
    one = open_axial(tmp_path / "frame2.dcm")
    assert (one.warnings, one.image_numbers, one.n_slices) == ([], ["3"], 1)


def test_a_file_is_read_frame_by_frame_only_where_per_frame_groups_place_each_frame(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=2)
    tilted_geometry = tilted(geometry, 10.0)
    write_dicom_series(tmp_path, image, geometry, series=1)  # one slice a file
    write_image(tmp_path / "image.nii.gz", image, geometry)
    frames = sitk.GetImageFromArray(image.astype(np.uint16))
    tilted_geometry.apply_to_sitk(frames)
    sitk.WriteImage(frames, str(tmp_path / "frames.dcm"))  # GDCM writes per-frame groups too
    read = dicom_frames.read_frames(tmp_path / "frames.dcm")
    assert np.allclose([frame.position_lps for frame in read], [frames.TransformIndexToPhysicalPoint((0, 0, k))
                                                                 for k in range(2)], atol=1e-4)
    assert np.allclose(read[1].direction_lps.ravel(), frames.GetDirection(), atol=1e-6)
    write_enhanced_mr(tmp_path / "enhanced.dcm", image, frame_planes_lps(image, geometry), pixel_mm=0.8)
    (tmp_path / "cut.dcm").write_bytes((tmp_path / "enhanced.dcm").read_bytes()[:600])  # cut in its header
    nested = struct.pack("<HH2sHI", 0x5200, 0x9230, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000,
                                                                                       0xFFFFFFFF)
    (tmp_path / "nested.dcm").write_bytes(b"\0" * 128 + b"DICM" + nested * 5000)  # deeper than Python recurses
    for name in ("series1_slice000.dcm", "image.nii.gz", "cut.dcm", "nested.dcm"):
        assert dicom_frames.read_frames(tmp_path / name) is None


def test_a_series_whose_pixel_grid_changes_is_read_as_a_block_per_grid_and_refused_clearly_as_one_stack(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    coarser, _, coarser_geometry = phantom_arrays(n_slices=2, size=64, pixel_mm=1.2)
    write_dicom_series(tmp_path, image, geometry, series=1)
    write_dicom_series(tmp_path, coarser, tilted(coarser_geometry, 15.0, (0.0, 0.0, 30.0)), series=1, first_instance=3)
    first_block, second_block = open_axial_blocks(tmp_path)  # a block each: each is read on its own grid
    assert first_block.source_geometry.matches(geometry) and second_block.source_geometry.size_ijk == (64, 64, 2)
    reason = "its slices are not all alike (96 × 96 pixels of 0.80 × 0.80 mm and 64 × 64 pixels of 1.20 × 1.20 mm)"
    with pytest.raises(InputError, match=re.escape(f"the DICOM series cannot be read as a stack: {reason}; save")):
        open_axial(tmp_path)  # as one stack
    resized = tilted(coarser_geometry, 0.0, (0.0, 0.0, 12.0))  # the first angle's field of view changed part way
    write_dicom_series(tmp_path, coarser, resized, series=1, first_instance=5)
    blocks = open_axial_blocks(tmp_path)
    assert len(blocks) == 3 and [block.source_geometry.matches(resized) for block in blocks].count(True) == 1
    assert blocks[0].source_geometry.matches(geometry) and blocks[0].warnings[0] == (
        "the DICOM series' slices at one of its angles lie in 2 fields of view (96 × 96 pixels of 0.80 × 0.80 mm and "
        "64 × 64 pixels of 1.20 × 1.20 mm): each is measured as a block of its own, so that every slice lies where it "
        "was imaged")  # its corner moved with its grid, which is not said


@pytest.mark.parametrize("enhanced", [False, True])
def test_a_series_whose_field_of_view_moved_part_way_is_read_as_a_block_per_field_each_where_imaged(
        tmp_path, enhanced):
    image, _, geometry = phantom_arrays(n_slices=5)
    fields = [geometry, tilted(geometry, 0.0, (15.0, -6.0, 0.0)), tilted(geometry, 0.0, (15.2, -6.0, 0.0))]
    parts = [(0, [0, 1]), (1, [2]), (2, [3, 4])]  # the third within 0.25 mm of the second: one field of view
    if enhanced:
        planes = [frame_planes_lps(image, fields[field])[k] for field, slices in parts for k in slices]
        write_enhanced_mr(tmp_path / "enhanced.dcm", image, planes, pixel_mm=0.8)
    else:
        for field, slices in parts:
            write_dicom_series(tmp_path, image[slices], tilted(fields[field], 0.0, (0.0, 0.0, 4.0 * slices[0])),
                               series=1, first_instance=slices[0])
    first, second = open_axial_blocks(tmp_path)
    assert np.allclose(first.source_geometry.ijk_to_ras, geometry.ijk_to_ras, atol=1e-3)
    assert np.array_equal(first.source_voxels(), image[:2]) and np.array_equal(second.source_voxels(), image[2:])
    assert np.allclose(slice_centres_ras(second.layout), slice_centres_ras(stack_layout(fields[1]))[2:], atol=0.25)
    assert second.source_geometry.ijk_to_ras[2, 2] == pytest.approx(4.0, abs=0.01)  # not stretched by the move
    for block in (first, second):
        assert block.warnings == ["the DICOM series' slices lie in 2 fields of view (moved by up to 16.2 mm in the "
                                  "slice plane): each is measured as a block of its own, so that every slice lies "
                                  "where it was imaged"]
    [warning] = open_axial(tmp_path).warnings  # as one stack
    assert warning.startswith("the DICOM series' field of view moves part way through it (moved by up to 16.2 mm "
                              "in the slice plane); it is read as one stack of slices each behind the first")


@pytest.mark.parametrize("enhanced_name", ["a.dcm", "z.dcm"])  # read before or after the single-frame files
def test_a_series_of_a_multi_frame_file_and_single_frame_files_is_read_frame_by_frame(tmp_path, enhanced_name):
    image, _, geometry = phantom_arrays(n_slices=6)
    angled = tilted(geometry, 15.0, (0.0, 0.0, 30.0))  # the multi-frame file's last frame: another block
    planes = frame_planes_lps(image, geometry)[:2] + frame_planes_lps(image, angled)[5:]
    write_enhanced_mr(tmp_path / enhanced_name, image[[0, 1, 5]], planes, pixel_mm=0.8)
    write_dicom_series(tmp_path, image[2:5], tilted(geometry, 0.0, (0.0, 0.0, 8.0)), series=1, first_instance=2,
                       tags=(("0020|000e", "1.2.3.4"), ("0020|000d", "1.2.3")))  # the multi-frame file's series
    stacked, turned = open_axial_blocks(tmp_path)
    assert np.array_equal(stacked.source_voxels(), image[:5]) and np.array_equal(turned.source_voxels(), image[5:])
    assert np.allclose(slice_centres_ras(stacked.layout), slice_centres_ras(stack_layout(geometry))[:5], atol=1e-3)
    assert np.allclose(slice_centres_ras(turned.layout), slice_centres_ras(stack_layout(angled))[5:], atol=1e-3)
    assert stacked.warnings == [] and stacked.blocks_reason == "slices at 2 angles"


def test_a_tilted_series_whose_positions_were_rounded_to_whole_mm_is_one_stack_and_a_missing_slice_parts_it(
        tmp_path):
    image, _, geometry = phantom_arrays(n_slices=12)
    for degrees in (12.0, 30.0):  # rounding moves each slice up to 0.87 mm, in its plane and along its normal
        write_dicom_series(tmp_path, image, tilted(geometry, degrees), series=1, position_step_mm=1.0)
        [volume] = open_axial_blocks(tmp_path)
        assert volume.warnings == [] and np.array_equal(volume.source_voxels(), image)
        assert volume.source_geometry.spacing_mm[2] == pytest.approx(4.0, abs=0.2)
        assert open_axial(tmp_path).warnings == []
        (tmp_path / "series1_slice005.dcm").unlink()
        assert [block.n_slices for block in open_axial_blocks(tmp_path)] == [5, 6]
        for path in tmp_path.iterdir():
            path.unlink()


def test_an_axial_series_at_whole_mm_positions_whose_field_of_view_moved_1_mm_is_read_as_two_blocks(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=4)  # along the axis: the rounding moves every slice alike in-plane
    write_dicom_series(tmp_path, image[:2], geometry, series=1, position_step_mm=1.0)
    moved = tilted(geometry, 0.0, (1.0, 0.0, 8.0))  # the next two slices' field of view 1 mm to the side
    write_dicom_series(tmp_path, image[2:], moved, series=1, first_instance=2, position_step_mm=1.0)
    assert [block.n_slices for block in open_axial_blocks(tmp_path)] == [2, 2]


def test_the_step_a_series_positions_were_rounded_to_is_told_from_them():
    exact = np.array([[-120.3417, 81.2006, 33.9871], [-120.3417, 80.3691, 37.9001]])
    assert dicom_series.position_rounding_step_mm(exact) == 0.0
    assert dicom_series.position_rounding_step_mm(np.round(exact, 1)) == 0.1
    assert dicom_series.position_rounding_step_mm(np.round(exact * 2) / 2) == 0.5
    assert dicom_series.position_rounding_step_mm(np.round(exact)) == 1.0


def test_a_single_angle_series_is_one_stack_and_a_localizer_in_it_is_left_out(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    write_dicom_series(tmp_path, image, geometry, series=1)
    [volume] = open_axial_blocks(tmp_path)
    assert volume.source_geometry.matches(geometry) and volume.warnings == []
    localizer = VolumeGeometry((96, 96, 1), geometry.ijk_to_ras[:, [0, 2, 1, 3]])  # a coronal slice
    write_dicom_series(tmp_path, image[:1], localizer, series=1, first_instance=3)
    [volume] = open_axial_blocks(tmp_path)
    assert volume.source_geometry.matches(geometry)
    assert volume.warnings == ["1 of the DICOM series' slices not axial (e.g. a localizer) left out"]


def test_a_series_with_a_missing_slice_is_read_with_a_warning_or_as_two_blocks_each_where_imaged(tmp_path, capfd):
    image, _, geometry = phantom_arrays(n_slices=5)
    write_dicom_series(tmp_path, image, geometry, series=1)
    (tmp_path / "series1_slice002.dcm").unlink()
    [warning] = open_axial(tmp_path).warnings
    assert warning.startswith("the DICOM series' slices are unevenly spaced (4.0-8.0 mm apart")
    assert "ImageSeriesReader" not in capfd.readouterr().err  # ITK's own warning, in its terms, is not shown
    assert sitk.ProcessObject.GetGlobalWarningDisplay()  # for what else reads images in the process
    blocks = open_axial_blocks(tmp_path)
    assert [block.n_slices for block in blocks] == [2, 2]
    assert blocks[0].warnings == ["the DICOM series' slices lie in 2 runs of evenly spaced slices parted by wider gaps "
                                  "(8.0 mm; parallel blocks, or a slice missing): each run is measured as a block of "
                                  "its own, so that z_mm and the places of the rulers and masks along the spine are "
                                  "exact"]
    imaged_ras = slice_centres_ras(stack_layout(geometry))
    for block, slices in zip(blocks, ([0, 1], [3, 4])):
        assert np.allclose(slice_centres_ras(block.layout), imaged_ras[slices], atol=1e-3)
        assert np.array_equal(block.source_voxels(), image[slices])
        assert block.image_numbers == [str(k + 1) for k in slices]  # each slice's Instance Number
    assert open_axial(tmp_path).image_numbers == ["1", "2", "4", "5"]


@pytest.mark.parametrize("position_step_mm", [None, 0.1])
def test_a_series_of_slices_thinner_than_half_a_mm_with_one_missing_is_read_as_two_blocks(tmp_path, position_step_mm):
    image, _, geometry = phantom_arrays(n_slices=6)  # 0.8 mm pixels: slices interpolated between thicker ones
    thin = VolumeGeometry(geometry.size_ijk, geometry.ijk_to_ras @ np.diag([1.0, 1.0, 0.45 / 4.0, 1.0]))
    write_dicom_series(tmp_path, image, thin, series=1, position_step_mm=position_step_mm)
    [volume] = open_axial_blocks(tmp_path)
    assert volume.warnings == [] and volume.source_geometry.spacing_mm[2] == pytest.approx(0.45, abs=0.05)
    (tmp_path / "series1_slice002.dcm").unlink()
    blocks = open_axial_blocks(tmp_path)
    assert [block.n_slices for block in blocks] == [2, 3] and blocks[0].blocks_reason == "parted by gaps"
    for block, slices in zip(blocks, ([0, 1], [3, 4, 5])):
        assert np.allclose(slice_centres_ras(block.layout), slice_centres_ras(stack_layout(thin))[slices],
                           atol=0.1 if position_step_mm else 1e-3)


def test_a_dicom_file_cut_short_is_named_as_left_out_of_its_series(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=5)
    write_dicom_series(tmp_path, image, geometry, series=1)
    cut = tmp_path / "series1_slice002.dcm"
    cut.write_bytes(cut.read_bytes()[:2000])  # a copy cut short: its header whole, its pixels not
    (tmp_path / "DICOMDIR").write_bytes(bytes(128) + b"DICM")  # the index beside the images: not left out
    (tmp_path / ".DS_Store").write_bytes(b"not DICOM")
    unread = ("1 DICOM file of {} cannot be read as an image (series1_slice002.dcm: damaged, or a copy cut short; or "
              "not an image, as a report or a presentation state): left out, so that a slice among them leaves a gap "
              "in its series")
    blocks = open_axial_blocks(tmp_path)
    assert [block.n_slices for block in blocks] == [2, 2] and blocks[0].warnings[0] == unread.format(tmp_path.name)
    (tmp_path / "only").mkdir()
    cut.rename(tmp_path / "only" / cut.name)
    with pytest.raises(InputError, match="no DICOM series in this folder or its subfolders; 1 DICOM file of only "):
        open_axial(tmp_path / "only")
    whole = bytearray((tmp_path / "series1_slice001.dcm").read_bytes())
    at = whole.index(b"\x02\x00\x10\x00UI")  # the Transfer Syntax UID, in the explicit VR file meta information
    length = struct.unpack("<H", whole[at + 6:at + 8])[0]
    jpeg_xl = b"1.2.840.10008.1.2.4.110\0"  # a compression GDCM does not decode
    whole[at + 6:at + 8 + length] = struct.pack("<H", len(jpeg_xl)) + jpeg_xl
    group = whole.index(b"\x02\x00\x00\x00UL")  # the meta information's group length, which the UID lengthened
    whole[group + 8:group + 12] = struct.pack("<I", struct.unpack("<I", whole[group + 8:group + 12])[0] + len(jpeg_xl)
                                              - length)
    (tmp_path / "jpeg_xl").mkdir()
    (tmp_path / "jpeg_xl" / "image.dcm").write_bytes(bytes(whole))
    with pytest.raises(InputError, match=re.escape("(image.dcm: damaged, or a copy cut short; or not an image, as a "
                                                   "report or a presentation state; compressed as JPEG XL, which "
                                                   "SimpleITK may not decode: export them uncompressed): left out")):
        open_axial(tmp_path / "jpeg_xl")
    assert [dicom_series.compression(uid) for uid in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                                                      "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90",
                                                      "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5")] == [
        "", "", "JPEG", "JPEG 2000", "High-Throughput JPEG 2000", "RLE"]


def test_a_dicom_file_copied_twice_is_read_once_but_files_that_share_only_their_uid_are_all_read(tmp_path):
    import shutil

    image, _, geometry = phantom_arrays(n_slices=5)
    for folder in ("copied", "one_uid"):
        (tmp_path / folder).mkdir()
    write_dicom_series(tmp_path / "copied", image, geometry, series=1)
    shutil.copy(tmp_path / "copied" / "series1_slice002.dcm", tmp_path / "copied" / "series1_slice002 (1).dcm")
    volume = open_axial(tmp_path / "copied")
    assert volume.warnings == ["1 of the DICOM series' files repeats the image of another (the same SOP Instance UID, "
                               "place and number: a file copied twice?): each image is read once"]
    assert np.array_equal(volume.source_voxels(), image) and volume.source_geometry.matches(geometry)
    # an anonymiser that gave every file one SOP Instance UID: the images differ, each is read
    write_dicom_series(tmp_path / "one_uid", image, geometry, series=1, tags=(("0008|0018", "1.2.3.4"),))
    volume = open_axial(tmp_path / "one_uid")
    assert volume.warnings == [] and np.array_equal(volume.source_voxels(), image)


def test_whole_pixels_are_counted_as_whole_whatever_float_rounding_left_in_them():
    assert 12.0 / 0.7499999999999999 > 16.0
    assert floor_pixels(40 - 12.0 / 0.7499999999999999) == 24 and ceil_pixels(12.0 / 0.7499999999999999) == 16
    assert (floor_pixels(2.5), ceil_pixels(2.5), floor_pixels(-0.3), ceil_pixels(-0.3)) == (2, 3, -1, 0)


@pytest.mark.parametrize("offsets_mm, runs", [
    ([0, 4, 8, 12], [[0, 1, 2, 3]]),  # evenly spaced
    ([0, 4.2, 7.9, 12.1], [[0, 1, 2, 3]]),  # within the tolerance
    ([0, 4, 12, 16], [[0, 1], [2, 3]]),  # a slice missing
    ([0, 4, 8, 30, 34, 38, 52, 56], [[0, 1, 2], [3, 4, 5], [6, 7]]),  # parallel blocks parted by unlike gaps
    ([0, 4, 8, 20, 23, 26, 29], [[0, 1, 2], [3, 4, 5, 6]]),  # blocks whose spacing differs
    ([0, 4, 6, 10, 14], [[0, 1, 2, 3, 4]]),  # a narrower gap: no run is even, so one (warned of as uneven)
    ([0, 0.6, 1.2, 2.4, 3.0], [[0, 1, 2], [3, 4]]),  # a slice 0.6 mm thin missing
    ([0, 0.45, 0.9, 1.8, 2.25], [[0, 1, 2], [3, 4]]),  # a slice 0.45 mm thin missing
    ([0, 9], [[0, 1]]),
    ([5], [[0]]),
])
def test_a_block_is_parted_into_evenly_spaced_runs_at_its_wider_gaps(offsets_mm, runs):
    assert dicom_series.evenly_spaced_runs(np.array(offsets_mm, float)) == runs


def test_a_block_whose_positions_were_rounded_is_parted_only_at_gaps_wider_than_the_rounding_makes():
    # slices 4 mm apart at 30°, their positions rounded to whole mm: each moved by up to 0.68 mm along the normal
    offsets_mm = np.array([0, 3.6, 8.06, 11.66, 16.12, 19.72, 24.19, 27.78])
    assert len(dicom_series.evenly_spaced_runs(offsets_mm)) > 1  # as if parallel blocks
    assert dicom_series.evenly_spaced_runs(offsets_mm, rounding_mm=0.68) == [list(range(8))]
    assert dicom_series.evenly_spaced_runs(np.delete(offsets_mm, 4), rounding_mm=0.68) == [[0, 1, 2, 3], [4, 5, 6]]
    # slices 0.45 mm apart, their positions rounded to 0.1 mm (each moved by up to 0.05 mm): one missing parts them
    assert dicom_series.evenly_spaced_runs(np.array([0, 0.4, 0.9, 1.3, 1.8, 2.2]), rounding_mm=0.05) == [
        list(range(6))]
    assert dicom_series.evenly_spaced_runs(np.array([0, 0.4, 0.9, 1.8, 2.2]), rounding_mm=0.05) == [[0, 1, 2], [3, 4]]
    # slices 1 mm apart at whole-mm positions, one missing: the rounding cannot hide a whole gap
    assert dicom_series.evenly_spaced_runs(np.array([0, 1, 2, 4, 5, 6.0]), rounding_mm=0.5) == [[0, 1, 2], [3, 4, 5]]
    whole_mm = np.array([[10.0, 20.0, z] for z in (0, 1, 2, 4, 5, 6)])
    assert dicom_series.uneven_spacing("the slices", np.array([0, 0, 1.0]), whole_mm)[0].startswith(
        "the slices are unevenly spaced (1.0-2.0 mm apart")
    whole_mm[3:, 2] -= 1.0  # none missing
    assert dicom_series.uneven_spacing("the slices", np.array([0, 0, 1.0]), whole_mm) == []


def test_a_series_blocks_are_said_to_lie_at_several_angles_to_be_parted_by_gaps_or_to_overlap():
    def block(degrees=0.0, origin_lps=(0.0, 0.0, 0.0), size=96, pixel_mm=0.8):  # 3 slices 4 mm apart
        turn = np.radians(degrees)  # about the left-right axis
        direction = np.column_stack([[1.0, 0.0, 0.0], [0.0, np.cos(turn), -np.sin(turn)],
                                     [0.0, np.sin(turn), np.cos(turn)]])
        return [(direction, np.array(origin_lps) + 4.0 * k * direction[:, 2],
                 dicom_series._pixel_grid((size, size), (pixel_mm, pixel_mm))) for k in range(3)]

    def described(*blocks, stacks=None):
        images = [image for block in blocks for image in block]
        planes = dicom_series.SlicePlanes(
            np.array([direction for direction, _, _ in images]), np.array([position for _, position, _ in images]),
            [], None, None, [("",) * len(dicom_series.SUBSERIES_TAGS)] * len(images),
            [grid for _, _, grid in images], [""] * len(images), stacks=stacks)
        return dicom_series.stack_blocks(planes)[2]

    below, above, moved = block(), block(origin_lps=(0.0, 0.0, 30.0)), block(origin_lps=(0.3, 0.0, 30.0))
    assert described(below) == ""
    assert described(below, above) == "parted by gaps"
    assert described(below, block(origin_lps=(0.0, 0.0, 8.0)), stacks=["1"] * 3 + ["2"] * 3) == (
        "in stacks that overlap")  # at 8 mm, both
    assert described(below, moved) == described(below, block(origin_lps=(0.0, 0.0, 12.0), size=64)) == (
        "in different fields of view")
    assert described(below, block(origin_lps=(0.0, 0.0, 30.0), pixel_mm=0.7)) == "in different fields of view"
    assert described(block(origin_lps=(0.3, 0.0, 60.0)), below, above) == (
        "parted by gaps or in different fields of view")
    assert described(below, block(12.0), block(origin_lps=(0.0, 0.1, 60.0))) == (
        "slices at 2 angles, some parted by gaps")
    assert described(below, block(12.0)) == "slices at 2 angles"


@pytest.mark.parametrize("told_apart_by", ["echo time", "image type", "slices missing", "acquisition"])
def test_a_series_of_several_images_at_each_position_measures_one_of_them_and_says_which(tmp_path, told_apart_by):
    image, _, geometry = phantom_arrays(n_slices=4)
    other = image * 0.5 + 300.0  # a proton-density echo or a fat image: CSF no brighter than the tissues around it
    dixon = "DERIVED\\PRIMARY\\DIXON\\"
    first, second = {"echo time": ((("0018|0081", "20"),), (("0018|0081", "100"),)),
                     "image type": ((("0008|0008", dixon + "FAT"),), (("0008|0008", dixon + "WATER"),)),
                     "slices missing": ((("0020|0012", "1"),), (("0020|0012", "2"),)),
                     "acquisition": ((("0020|0012", "1"),), (("0020|0012", "2"),))}[told_apart_by]
    write_dicom_series(tmp_path, other, geometry, series=1, tags=first)  # both on the same slice positions
    write_dicom_series(tmp_path, image, geometry, series=1, first_instance=4, tags=second)
    if told_apart_by == "slices missing":  # the first acquisition stopped early: the second is measured
        (tmp_path / "series1_slice003.dcm").unlink()
    measured = other if told_apart_by == "acquisition" else image
    expected = AxialLayout.from_geometry(geometry).to_stack(measured.astype(np.int16)).astype(np.float32)
    why = {"echo time": 'Echo Time: "20" (4 slices), "100" (4 slices); measured those of Echo Time "100", the longest '
                        "echo (the most T2-weighted)",
           "image type": f'Image Type: "{dixon}FAT" (4 slices), "{dixon}WATER" (4 slices); measured those of Image '
                         f'Type "{dixon}WATER", its Image Type names a water, in-phase or magnitude image (not fat, '
                         "opposed phase or phase, whose CSF is not bright)",
           "slices missing": 'Acquisition Number: "1" (3 slices), "2" (4 slices); measured those of Acquisition Number '
                             '"2", the most complete',
           "acquisition": 'Acquisition Number: "1" (4 slices), "2" (4 slices); measured those of Acquisition Number '
                          '"1", the first'}[told_apart_by]
    another = {"echo time": "20", "image type": dixon + "FAT", "slices missing": "1", "acquisition": "2"}[told_apart_by]
    for volume in (open_axial(tmp_path), *open_axial_blocks(tmp_path)):
        assert volume.source_geometry.matches(geometry)
        assert np.array_equal(volume.stack(), expected)
        [warning] = volume.warnings
        assert warning == (f"the DICOM series holds 2 images at its slice positions, told apart by their {why}; the "
                           f'others are left out (to measure another, name it: measure --image-set, e.g. "{another}")')


def test_the_echoes_of_one_slice_are_measured_as_one_slice_not_as_a_stack_1_mm_apart(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=1)
    write_dicom_series(tmp_path, image * 0.5 + 300.0, geometry, series=1, tags=(("0018|0081", "20"),))
    write_dicom_series(tmp_path, image, geometry, series=1, first_instance=1, tags=(("0018|0081", "100"),))
    volume = open_axial(tmp_path)  # SimpleITK alone: two slices 1 mm apart, and no word
    assert volume.n_slices == 1 and np.array_equal(volume.source_voxels(), image)
    assert volume.warnings == ['the DICOM series holds 2 images at its slice positions, told apart by their Echo Time: '
                               '"20" (1 slice), "100" (1 slice); measured those of Echo Time "100", the longest echo '
                               '(the most T2-weighted); the others are left out (to measure another, name it: measure '
                               '--image-set, e.g. "20")']


def test_images_at_one_position_that_no_tag_tells_apart_are_read_with_a_warning(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    for k in range(3):  # an acquisition repeated, nothing in the headers to say which is which
        write_dicom_series(tmp_path, image[k:k + 1], geometry, series=1, first_instance=k)
    warning = ("the DICOM series' slices all lie at one position and no tag tells them apart (an acquisition "
               "repeated?): they are read as slices 1 mm apart, which is not where they lie; the in-plane measurements "
               "hold")
    assert open_axial(tmp_path).warnings == [warning]
    assert [volume.warnings for volume in open_axial_blocks(tmp_path)] == [[warning]]


@pytest.mark.parametrize("enhanced", [False, True])
def test_stacks_that_overlap_at_a_few_positions_are_each_measured_as_a_block_not_taken_for_image_sets(
        tmp_path, enhanced):
    image, _, geometry = phantom_arrays(n_slices=5)
    upper = tilted(geometry, 0.0, (0.0, 0.0, 12.0))  # 0-16 mm and 12-28 mm: two positions imaged by both
    if enhanced:  # told apart by their Stack ID
        write_enhanced_mr(tmp_path / "enhanced.dcm", np.concatenate([image, image[::-1]]),
                          frame_planes_lps(image, geometry) + frame_planes_lps(image, upper)[::-1], pixel_mm=0.8,
                          stack_ids=["1"] * 5 + ["2"] * 5)
    else:  # by their Acquisition Number
        write_dicom_series(tmp_path, image, geometry, series=1, tags=(("0020|0012", "1"),))
        write_dicom_series(tmp_path, image, upper, series=1, first_instance=5, tags=(("0020|0012", "2"),))
    told_apart_by = "Stack ID" if enhanced else "Acquisition Number"
    lower_block, upper_block = sorted(open_axial_blocks(tmp_path), key=lambda block: block.layout.slice_position_mm(0))
    for block, placed in ((lower_block, geometry), (upper_block, upper)):
        assert block.source_geometry.matches(placed) and np.array_equal(block.source_voxels(), image)
        assert block.warnings == [f"the DICOM series' slices lie in 2 stacks that overlap along the spine, told apart "
                                  f'by their {told_apart_by}: "1" (5 slices), "2" (5 slices), 2 positions imaged by '
                                  "more than one; each stack is measured as a block of its own"]
    assert "lie in 2 stacks that overlap; it is read as one stack" in open_axial(tmp_path).warnings[1]


def test_the_image_set_named_is_measured_and_a_name_that_fits_none_is_refused_with_the_sets(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    folders = {name: tmp_path / name for name in ("dixon", "echoes", "single")}
    for folder in folders.values():
        folder.mkdir()
    dixon = "DERIVED\\PRIMARY\\DIXON\\"
    for k, (kind, echo_ms) in enumerate((("WATER", "4.8"), ("FAT", "4.8"), ("IN_PHASE", "2.4"))):
        write_dicom_series(folders["dixon"], image * (k + 1), geometry, series=1, first_instance=3 * k,
                           tags=(("0008|0008", dixon + kind), ("0018|0081", echo_ms)))
    stack = AxialLayout.from_geometry(geometry).to_stack(image.astype(np.int16)).astype(np.float32)
    for image_set, kind, times in (("fat", "FAT", 2), (dixon + "IN_PHASE", "IN_PHASE", 3), (None, "WATER", 1)):
        for volume in (open_axial(folders["dixon"], image_set=image_set),
                       *open_axial_blocks(folders["dixon"], image_set=image_set)):
            assert np.array_equal(volume.stack(), stack * times)
            why = "as --image-set asked" if image_set else "its Image Type names a water"
            assert f'measured those of Image Type "{dixon}{kind}", {why}' in volume.warnings[0]
    sets = (f'told apart by their Image Type: "{dixon}WATER" (3 slices), "{dixon}FAT" (3 slices), "{dixon}IN_PHASE" '
            "(3 slices)")
    for image_set, names in (("OPP_PHASE", "none"), ("DIXON", "3")):
        with pytest.raises(InputError, match=re.escape(f"--image-set '{image_set}' names {names} of the series' images "
                                                       f"at each slice position, {sets}")):
            open_axial_blocks(folders["dixon"], image_set=image_set)
    for k, echo_ms in enumerate(("20.0", "100.0")):
        write_dicom_series(folders["echoes"], image * (k + 1), geometry, series=1, first_instance=3 * k,
                           tags=(("0018|0081", echo_ms),))
    [volume] = open_axial_blocks(folders["echoes"], image_set="20")  # an Echo Time by its value
    assert np.array_equal(volume.stack(), stack)
    write_dicom_series(folders["single"], image, geometry, series=1)
    with pytest.raises(InputError, match="the series holds one image at each slice position"):
        open_axial_blocks(folders["single"], image_set="20")
    write_image(tmp_path / "image.nii.gz", image, geometry)
    with pytest.raises(InputError, match="an image set is chosen in a DICOM folder or multi-frame file; this is a "
                                         "file"):
        open_axial_blocks(tmp_path / "image.nii.gz", image_set="20")


def without_tag(path, group: int = 0x0020, element: int = 0x0037) -> None:
    """Cut an element (by default Image Orientation (Patient)) out of a DICOM file written by SimpleITK (implicit
    VR)."""
    data = path.read_bytes()
    start = data.index(struct.pack("<HH", group, element))
    length = struct.unpack("<I", data[start + 4:start + 8])[0]
    path.write_bytes(data[:start] + data[start + 8 + length:])


def test_a_series_without_orientation_tags_is_read_with_a_warning_to_check_the_sides(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    columns, rows = geometry.size_ijk[:2]
    turned = VolumeGeometry(geometry.size_ijk, geometry.ijk_to_ras @ np.array(  # columns run patient left→right,
        [[-1.0, 0, 0, columns - 1], [0, -1, 0, rows - 1], [0, 0, 1, 0], [0, 0, 0, 1]]))  # rows posterior→anterior
    write_dicom_series(tmp_path, image, turned, series=1)
    assert open_axial(tmp_path).source_geometry.matches(turned) and open_axial(tmp_path).warnings == []
    for path in tmp_path.glob("*.dcm"):
        without_tag(path)
    volume = open_axial(tmp_path)
    assert not volume.source_geometry.matches(turned)  # SimpleITK's default puts the patient's right first
    [warning] = volume.warnings
    assert warning.startswith("the DICOM files have no Image Orientation (Patient) tag")
    assert [v.warnings for v in open_axial_blocks(tmp_path)] == [[warning]]


def test_a_series_without_position_tags_is_read_whole_with_a_warning_that_its_places_are_unknown(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    for k in range(3):  # one acquisition per slice, as some scanners number them: no subseries
        write_dicom_series(tmp_path, image[k:k + 1], tilted(geometry, 0.0, (0.0, 0.0, 4.0 * k)), series=1,
                           first_instance=k, tags=(("0020|0012", str(k + 1)),))
    for path in tmp_path.glob("*.dcm"):
        without_tag(path, 0x0020, 0x0032)
    volume = open_axial(tmp_path)
    assert volume.n_slices == 3
    [warning] = volume.warnings
    assert warning.startswith("the DICOM files have no Image Position (Patient) tag (0020,0032): where the slices lie "
                              "is unknown")
    assert [v.warnings for v in open_axial_blocks(tmp_path)] == [[warning]]


@pytest.mark.parametrize("unplaced, tag", [(0, 0x0032), (2, 0x0032), (2, 0x0037)])  # position, orientation
def test_a_file_without_a_position_or_orientation_in_a_series_whose_others_have_them_is_left_out(tmp_path, unplaced,
                                                                                                   tag):
    image, _, geometry = phantom_arrays(n_slices=5)
    geometry = tilted(geometry, 10.0)  # so that SimpleITK's default, axial, is not its orientation
    write_dicom_series(tmp_path, image, geometry, series=1)
    without_tag(tmp_path / f"series1_slice{unplaced:03d}.dcm", 0x0020, tag)  # SimpleITK: at the origin, axial
    volume = open_axial(tmp_path)
    kept = [k for k in range(5) if k != unplaced]
    assert volume.warnings[0] == (f"1 of the DICOM series' files (image {unplaced + 1}) lacks the Image Position or "
                                  "Image Orientation (Patient) tag the others have: where its slice lies is unknown (a "
                                  "screenshot or a key image saved in the series?), so it is left out")
    blocks = open_axial_blocks(tmp_path)
    assert [block.image_numbers for block in blocks] == ([[str(k + 1) for k in kept]] if unplaced == 0
                                                         else [["1", "2"], ["4", "5"]])  # a gap where it was
    for block in blocks:
        assert block.warnings[0] == volume.warnings[0]  # not the series' "the DICOM files have no Image Position"
        assert not any(warning.startswith("the DICOM files have no") for warning in block.warnings)
        numbers = [int(n) - 1 for n in block.image_numbers]
        assert np.allclose(slice_centres_ras(block.layout), slice_centres_ras(stack_layout(geometry))[numbers],
                           atol=1e-3)


def test_one_dicom_file_is_read_with_what_its_header_says_as_its_series_is(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    series = tmp_path / "series"
    series.mkdir()
    write_dicom_series(series, image, geometry, series=1, tags=(("0018|0015", "CSPINE"), ("0018|0050", "7.0")))
    middle = sorted(series.glob("*.dcm"))[1]
    one, whole = open_axial(middle), open_axial(series).stack()
    in_series = ("the DICOM file is one of the 3 images of its series in series: it alone is measured; to measure the "
                 f"series, give its folder ({series})")
    assert (one.named_region, one.slice_thickness_mm, one.warnings) == ("cervical", 7.0, [in_series])
    assert one.n_slices == 1 and np.array_equal(one.read_slice(0), whole[1])
    assert one.image_numbers == ["2"]  # its Instance Number
    without_tag(middle)
    warning, _ = open_axial(middle).warnings
    assert warning.startswith("the DICOM files have no Image Orientation (Patient) tag (0020,0037)")
    without_tag(middle, 0x0028, 0x0030)  # nor a Pixel Spacing: SimpleITK's 1 mm is not the scan's
    assert open_axial(middle).warnings[1:] == [("the DICOM files give no pixel size (no Pixel Spacing (0028,0030)): "
                                               "they were measured with 1.00 × 1.00 mm pixels, which may not be the "
                                               "scan's (a screenshot saved as DICOM?)"), in_series]
    frames = sitk.GetImageFromArray(image.astype(np.uint16))  # one multi-frame file: orientation kept per frame
    geometry.apply_to_sitk(frames)
    (tmp_path / "frames").mkdir()
    sitk.WriteImage(frames, str(tmp_path / "frames" / "frames.dcm"))
    for volume in (open_axial(tmp_path / "frames" / "frames.dcm"), open_axial(tmp_path / "frames"),
                   *open_axial_blocks(tmp_path / "frames")):  # the file, and its folder (one file, not 4-D)
        assert volume.warnings == [] and volume.source_geometry.matches(geometry)
        assert (volume.named_region, volume.slice_thickness_mm) == (None, None)
        assert np.array_equal(volume.stack(), whole)


def test_a_nifti_or_nrrd_file_without_orientation_is_read_with_a_warning_to_check_the_sides(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=2)
    write_image(tmp_path / "scan.nii", image, geometry)
    assert open_axial(tmp_path / "scan.nii").warnings == []
    header = bytearray((tmp_path / "scan.nii").read_bytes())
    header[252:256] = struct.pack("<hh", 0, 0)  # qform_code, sform_code: NIFTI_XFORM_UNKNOWN
    (tmp_path / "unknown.nii").write_bytes(bytes(header))
    [warning] = open_axial(tmp_path / "unknown.nii").warnings
    assert warning.startswith("the NIfTI header gives no orientation (its qform and sform codes are 0)")
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "unknown.nii")), str(tmp_path / "converted.nrrd"))
    assert open_axial(tmp_path / "converted.nrrd").warnings == []  # its codes, fields of its own, are not NIfTI's
    image.astype(np.float32).tofile(tmp_path / "scan.raw")
    for name, space in (("spaced.nhdr", "space: left-posterior-superior\nspace directions: (0.8,0,0) (0,0.8,0) "
                                        "(0,0,4)\n"), ("bare.nhdr", "spacings: 0.8 0.8 4\n")):
        (tmp_path / name).write_text(f"NRRD0004\ntype: float\ndimension: 3\nsizes: 96 96 2\n{space}endian: "
                                     "little\nencoding: raw\ndata file: scan.raw\n", encoding="utf-8")
    assert open_axial(tmp_path / "spaced.nhdr").warnings == []
    [warning] = open_axial(tmp_path / "bare.nhdr").warnings
    assert warning.startswith("the NRRD header gives no orientation (no space field): the image is taken as its array")


def test_a_nifti_file_with_a_negative_pixdim_is_read_as_its_orientation_has_it_not_mirrored_as_itk_reads_it(tmp_path):
    image, labels, geometry = phantom_arrays(n_slices=2)
    write_image(tmp_path / "scan.nii", image, geometry)
    write_labels(tmp_path / "labels.nii", labels, geometry)
    for name in ("scan", "labels"):
        header = bytearray((tmp_path / f"{name}.nii").read_bytes())
        header[80:84] = struct.pack("<f", -struct.unpack("<f", header[80:84])[0])  # pixdim[1], which must be positive
        (tmp_path / f"negative_{name}.nii").write_bytes(bytes(header))
    mirrored = VolumeGeometry.from_sitk(sitk.ReadImage(str(tmp_path / "negative_scan.nii")))
    assert np.allclose(mirrored.ijk_to_ras[:3, 0], -geometry.ijk_to_ras[:3, 0])  # as ITK reads it: sides swapped
    for volume in (open_axial(tmp_path / "negative_scan.nii"),
                   open_axial(tmp_path / "negative_scan.nii", max_voxels_in_memory=1000)):
        assert volume.source_geometry.matches(geometry) and np.array_equal(volume.stack(), open_axial(
            tmp_path / "scan.nii").stack())
        assert volume.warnings == ["the header gives a negative voxel size (-0.8 × 0.8 × 4 mm), which ITK, so "
                                   "SimpleITK and 3D Slicer, reads as that axis mirrored against the header's "
                                   "orientation: it was read as the orientation has it"]
    np.testing.assert_array_equal(read_labels(tmp_path / "negative_labels.nii", geometry), labels)


def test_a_header_whose_voxel_size_or_placement_is_no_scan_s_is_refused_so_not_as_a_sagittal_stack(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=2)
    write_image(tmp_path / "scan.nii", image, geometry)
    header = bytes((tmp_path / "scan.nii").read_bytes())
    for name, at, value in (("huge.nii", 80, 1e6), ("nan.nii", 280, float("nan"))):  # pixdim[1]; srow_x[0]
        (tmp_path / name).write_bytes(header[:at] + struct.pack("<f", value) + header[at + 4:])
    with pytest.raises(InputError, match=re.escape("huge.nii: the header gives voxels of 1e+06 × 0.8 × 4 mm, of no "
                                                   "scan (a number of no meaning?); the image's geometry is unknown: "
                                                   "correct the header, or export the image again")):
        open_axial(tmp_path / "huge.nii")  # not "sagittal stack, 1000000.0 mm slices"
    with pytest.raises(InputError, match=re.escape("nan.nii: the header's voxel size, orientation or position holds "
                                                   "values that are not numbers (NaN or infinite)")):
        open_axial(tmp_path / "nan.nii")  # not "sagittal stack, nan mm slices"
    at_infinity = geometry.ijk_to_ras.copy()
    at_infinity[0, 3] = np.inf
    folded = geometry.ijk_to_ras.copy()
    folded[:3, 1] = folded[:3, 0]  # rows and columns along one direction
    for ijk_to_ras in (at_infinity, geometry.ijk_to_ras @ np.diag([1.0, 1.0, 300.0, 1.0]), folded):  # 1.2 m slices
        with pytest.raises(GeometryError, match="the image's geometry is unknown"):
            AxialLayout.from_geometry(VolumeGeometry(geometry.size_ijk, ijk_to_ras))
    image.astype(np.float32).tofile(tmp_path / "scan.raw")
    for name, directions, fault in (  # which ITK reads, then refuses in its own terms ("determinant is 0")
            ("parallel", "(0.8,0,0) (0.8,0,0) (0,0,4)", "the header's orientation lays two of the image's axes along "
                                                         "one direction"),
            ("zero", "(0.8,0,0) (0,0,0) (0,0,4)", "the header's voxel size, orientation or position holds values that "
                                                  "are not numbers")):
        (tmp_path / f"{name}.nhdr").write_text(
            "NRRD0004\ntype: float\ndimension: 3\nsizes: 96 96 2\nspace: left-posterior-superior\nspace directions: "
            f"{directions}\nendian: little\nencoding: raw\ndata file: scan.raw\n", encoding="utf-8")
        with pytest.raises(InputError, match=re.escape(f"{name}.nhdr: {fault}")):
            open_axial(tmp_path / f"{name}.nhdr")
    from SpinalStenosisLib.volume_io import _itk_reason

    itk_error = RuntimeError("Exception thrown in SimpleITK ImageFileReader_Execute: .../itkImageBase.hxx:145:\nITK "
                             "ERROR: Image(0x562c94b69d70): Bad direction, determinant is 0. Refusing to change "
                             "direction from 1 0 0\n0 1 0\n0 0 1\n to 1 1 0\n0 0 0\n0 0 1\n")  # as ITK words it
    assert _itk_reason(itk_error) == "Bad direction, determinant is 0. Refusing to change direction from 1 0 0"
    (tmp_path / "cut.raw").write_bytes((tmp_path / "scan.raw").read_bytes()[:20000])  # a copy interrupted
    (tmp_path / "cut.nhdr").write_text((tmp_path / "zero.nhdr").read_text(encoding="utf-8").replace(
        "(0,0,0)", "(0,0.8,0)").replace("scan.raw", "cut.raw"), encoding="utf-8")
    with pytest.raises(RuntimeError, match="fread got only 5000 4-sized things, not 18432") as raised:
        sitk.ReadImage(str(tmp_path / "cut.nhdr"))
    assert _itk_reason(raised.value).startswith("[nrrd] _nrrdEncodingRaw_read: fread got only 5000 4-sized things")
    with pytest.raises(InputError, match=re.escape("cut.nhdr: the NRRD file's data file cut.raw is cut short (a copy "
                                                   "or download interrupted?), holding 27.1 % of the image's voxels")):
        open_axial(tmp_path / "cut.nhdr")  # before ITK's reason: where it ends in a colon, NRRD's last line


def test_a_nifti_file_whose_qform_and_sform_disagree_is_read_with_a_warning_to_check_the_sides(tmp_path):
    image, labels, geometry = phantom_arrays(n_slices=2)
    write_image(tmp_path / "scan.nii", image, geometry)
    header = bytearray((tmp_path / "scan.nii").read_bytes())
    srow_x = list(struct.unpack("<4f", header[280:296]))
    srow_x[0] = -srow_x[0]  # the sform mirrored left to right, the qform as it was: a tool changed one of them
    header[280:296] = struct.pack("<4f", *srow_x)
    (tmp_path / "mirrored.nii").write_bytes(bytes(header))
    [warning] = open_axial(tmp_path / "mirrored.nii").warnings
    assert warning == ("the NIfTI header's qform and sform orient the image differently (its rows or columns 180° "
                       "apart): it was read with its sform, as ITK, SimpleITK and 3D Slicer read it, which may not be "
                       "the scan's; check which foramen is left and which is right")
    assert open_axial(tmp_path / "scan.nii").warnings == []
    header[252:254] = struct.pack("<h", 0)  # the qform unset: the sform alone orients it
    (tmp_path / "sform_only.nii").write_bytes(bytes(header))
    assert open_axial(tmp_path / "sform_only.nii").warnings == []


def test_a_sheared_pixel_grid_is_refused_which_the_networks_would_see_sheared_and_nifti_cannot_hold(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=2)  # 96 x 96 pixels of 0.8 mm, slices 4 mm apart
    image.astype(np.float32).tofile(tmp_path / "scan.raw")
    for name, second in (("sheared", "(0.3,0.8,0)"), ("square", "(0,0.8,0)")):  # an NRRD file may give any grid
        (tmp_path / f"{name}.nhdr").write_text(
            "NRRD0004\ntype: float\ndimension: 3\nsizes: 96 96 2\nspace: left-posterior-superior\nspace directions: "
            f"(0.8,0,0) {second} (0,0,4)\nendian: little\nencoding: raw\ndata file: scan.raw\n", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape("sheared.nhdr: the image's rows and columns are 69° apart, not at "
                                                   "right angles (a sheared grid, which no scanner acquires)")):
        open_axial(tmp_path / "sheared.nhdr")
    assert open_axial(tmp_path / "square.nhdr").warnings == []
    sheared = VolumeGeometry(geometry.size_ijk, geometry.ijk_to_ras @ np.array(
        [[1.0, 0.02, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))  # 1.1° off, as no export rounds
    with pytest.raises(InputError, match="rows and columns are 89° apart"):  # a 3D Slicer volume's too
        axial_from_array(image, sheared)


def test_a_nifti_file_whose_pixdim_and_sform_give_other_voxel_sizes_is_read_with_a_warning_saying_what_is_off(
        tmp_path, capfd):
    image, _, geometry = phantom_arrays(n_slices=2)  # 0.8 mm pixels, slices 4 mm apart
    write_image(tmp_path / "scan.nii", image, geometry)
    header = bytearray((tmp_path / "scan.nii").read_bytes())
    pixdim = list(struct.unpack("<8f", header[76:108]))
    for name, zeroed, off in (("pixels", (1, 2), "the lengths and areas measured are off"),
                              ("slices", (3,), "the slices' spacing and positions along the spine (z_mm), not the "
                                               "in-plane measurements, are off")):
        edited = bytearray(header)
        edited[76:108] = struct.pack("<8f", *[0.0 if n in zeroed else v for n, v in enumerate(pixdim)])
        (tmp_path / f"{name}.nii").write_bytes(bytes(edited))  # as a tool that set the sform, not the pixdim
        volume = open_axial(tmp_path / f"{name}.nii")
        sizes = "1 × 1 × 4" if name == "pixels" else "0.8 × 0.8 × 1"
        assert volume.warnings == [f"the NIfTI header's voxel size ({sizes} mm, its pixdim), which the image was "
                                   "measured with, as ITK, SimpleITK and 3D Slicer read it, is not its sform's (0.8 × "
                                   f"0.8 × 4 mm): one is not the scan's; if the sform's is, {off} by their ratio"]
        assert volume.stack().shape == (2, 96, 96)
    assert "unexpected scales" not in capfd.readouterr().err  # ITK's own warning, in its terms, is not shown
    assert open_axial(tmp_path / "scan.nii").warnings == []
    microns = bytearray(header)  # the same file in microns: its pixdim and sform in them, as its xyzt_units says
    microns[123] = (header[123] & 0xF8) | 3
    microns[76:108] = struct.pack("<8f", pixdim[0], *[1000 * v for v in pixdim[1:4]], *pixdim[4:])
    for at in (268, 280, 296, 312):  # the qform's offsets, the sform's rows
        values = struct.unpack(f"<{3 if at == 268 else 4}f", header[at:at + (12 if at == 268 else 16)])
        microns[at:at + 4 * len(values)] = struct.pack(f"<{len(values)}f", *[1000 * v for v in values])
    (tmp_path / "microns.nii").write_bytes(bytes(microns))
    in_microns, in_mm = open_axial(tmp_path / "microns.nii"), open_axial(tmp_path / "scan.nii")
    assert in_microns.warnings == [] and in_microns.source_geometry.matches(in_mm.source_geometry)


def test_a_file_simpleitk_refuses_is_refused_with_its_reason_and_an_archive_with_what_to_do(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=2)
    write_image(tmp_path / "scan.nii", image, geometry)
    header = bytearray((tmp_path / "scan.nii").read_bytes())
    header[252:256] = struct.pack("<hh", 0, 1)  # only the sform (NIFTI_XFORM_SCANNER_ANAT), and it sheared:
    header[284:288] = struct.pack("<f", 0.3)  # srow_x[1], so its columns are not orthogonal to its rows
    (tmp_path / "sheared.nii").write_bytes(bytes(header))
    with pytest.raises(InputError, match=r"sheared.nii: not an image SimpleITK can read \(ITK only supports "
                                         r"orthonormal direction cosines"):
        open_axial(tmp_path / "sheared.nii")
    (tmp_path / "notes.nii").write_text("not an image", encoding="utf-8")
    with pytest.raises(InputError, match=r"notes.nii: not an image SimpleITK can read$"):  # nothing more to say
        open_axial(tmp_path / "notes.nii")
    (tmp_path / "zipped.nii").write_bytes(gzip.compress((tmp_path / "scan.nii").read_bytes()))  # .gz dropped
    (tmp_path / "download").write_bytes((tmp_path / "zipped.nii").read_bytes())  # .nii.gz dropped
    (tmp_path / "plain").write_bytes((tmp_path / "scan.nii").read_bytes())  # no plain.nii beside, which ITK would read
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "scan.nii")), str(tmp_path / "scan.nrrd"))
    (tmp_path / "nrrd.dat").write_bytes((tmp_path / "scan.nrrd").read_bytes())
    from PIL import Image

    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "slice", "JPEG")  # ITK reads a PNG so named
    for name, what, suffix, renamed in (
            ("zipped.nii", "a gzip-compressed file in NIfTI", ".nii.gz", "zipped.nii.gz"),
            ("download", "a gzip-compressed file in NIfTI", ".nii.gz", "download.nii.gz"),
            ("plain", "a file in NIfTI", ".nii", "plain.nii"), ("nrrd.dat", "a file in NRRD", ".nrrd", "nrrd.dat.nrrd"),
            ("slice", "a file in JPEG", ".jpg", "slice.jpg")):
        pixel_mm = 0.7 if name == "slice" else None
        with pytest.raises(InputError, match=re.escape(f"{name}: {what} format whose name does not end in {suffix} (a "
                                                       "download renamed?), by which SimpleITK picks its reader: "
                                                       f"rename it {renamed}")):
            open_axial(tmp_path / name, pixel_mm=pixel_mm)
        (tmp_path / name).rename(tmp_path / renamed)
        assert open_axial(tmp_path / renamed, pixel_mm=pixel_mm).n_slices >= 1  # read once renamed
    series = tmp_path / "series"
    series.mkdir()
    write_dicom_series(series, image, geometry, series=1)
    for archive in (shutil.make_archive(str(tmp_path / "study"), "zip", series),
                    shutil.make_archive(str(tmp_path / "study"), "gztar", series)):  # as a PACS exports a study
        with pytest.raises(InputError, match=re.escape(f"{archive}: not an image SimpleITK can read; it is an archive "
                                                       "(as a PACS or a web viewer exports a study): unpack it")):
            open_axial_blocks(archive)


def test_a_nifti_file_cut_short_or_damaged_is_refused_which_itk_reads_without_a_word(tmp_path):
    image, labels, geometry = phantom_arrays(n_slices=8)
    image = image + np.random.default_rng(0).uniform(0, 50, image.shape).astype(np.float32)  # noise, which a gzip
    write_image(tmp_path / "scan.nii", image, geometry)  # stream is long for, so that it is damaged past the header
    whole = (tmp_path / "scan.nii").read_bytes()
    voxel_bytes = len(whole) - 352  # 352: the header, as SimpleITK writes it (vox_offset)
    zipped = gzip.compress(whole)
    (tmp_path / "cut.nii").write_bytes(whole[:352 + voxel_bytes // 2])  # an interrupted copy
    (tmp_path / "cut.nii.gz").write_bytes(zipped[:len(zipped) * 3 // 4])
    damaged = bytearray(zipped)
    damaged[len(zipped) // 2:len(zipped) // 2 + 64] = bytes(64)  # as a bad sector or a faulty transfer leaves it
    (tmp_path / "damaged.nii.gz").write_bytes(bytes(damaged))
    for name in ("cut.nii", "cut.nii.gz", "damaged.nii.gz"):
        assert sitk.ReadImage(str(tmp_path / name)).GetSize() == (96, 96, 8)  # ITK reads each without a word
    with pytest.raises(InputError, match=re.escape("cut.nii: the NIfTI file is cut short (a copy or download "
                                                   "interrupted?): it holds 50 % of its voxels, and the others would "
                                                   "be read as 0 (ITK reads such a file without a word); copy it")):
        open_axial(tmp_path / "cut.nii")
    with pytest.raises(InputError, match=r"cut.nii.gz: the NIfTI file is cut short .*: it holds \d+(\.\d)? % of its"):
        open_axial(tmp_path / "cut.nii.gz")
    with pytest.raises(InputError, match=re.escape("damaged.nii.gz: the NIfTI file is damaged (its gzip stream does "
                                                   "not decompress")):
        open_axial(tmp_path / "damaged.nii.gz")
    write_labels(tmp_path / "labels.nii", labels, geometry)
    (tmp_path / "cut_labels.nii").write_bytes((tmp_path / "labels.nii").read_bytes()[:-100])
    with pytest.raises(InputError, match="cut_labels.nii: the NIfTI file is cut short"):  # masks are read so too
        read_labels(tmp_path / "cut_labels.nii", geometry)
    members = gzip.compress(whole[:1000]) + gzip.compress(whole[1000:]) + bytes(16)  # as cat joins them, padded
    (tmp_path / "members.nii.gz").write_bytes(members)
    (tmp_path / "scan.nii.gz").write_bytes(zipped)
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "scan.nii")), str(tmp_path / "pair.hdr"))  # and pair.img
    (tmp_path / "cut_pair.hdr").write_bytes((tmp_path / "pair.hdr").read_bytes())
    (tmp_path / "cut_pair.img").write_bytes((tmp_path / "pair.img").read_bytes()[:voxel_bytes // 4])
    for name, holder in (("cut_pair.hdr", "its .img file"), ("cut_pair.img", "it")):
        with pytest.raises(InputError, match=re.escape(f"{name}: the NIfTI file is cut short (a copy or download "
                                                       f"interrupted?): {holder} holds 25 % of its voxels")):
            open_axial(tmp_path / name)
    (tmp_path / "lone.hdr").write_bytes((tmp_path / "pair.hdr").read_bytes())  # ITK: "nifti_image_load failed ..."
    with pytest.raises(InputError, match=re.escape("lone.hdr: the NIfTI file's .img file lone.img is missing (it must "
                                                   "lie beside lone.hdr)")):
        open_axial(tmp_path / "lone.hdr")
    for name in ("converted.nrrd", "converted.mha"):  # holding the NIfTI header's fields, as fields of their own
        sitk.WriteImage(sitk.ReadImage(str(tmp_path / "scan.nii")), str(tmp_path / name), True)
        assert "vox_offset" in (tmp_path / name).read_bytes()[:4000].decode("latin-1")  # compressed: not 352 + voxels
    for name in ("scan.nii", "scan.nii.gz", "members.nii.gz", "pair.hdr", "pair.img", "converted.nrrd",
                 "converted.mha"):
        np.testing.assert_array_equal(open_axial(tmp_path / name).stack(), image)


def test_a_metaimage_or_nrrd_file_cut_short_damaged_or_without_its_data_file_is_refused_saying_so(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=8)
    image = image + np.random.default_rng(0).uniform(0, 50, image.shape).astype(np.float32)
    write_image(tmp_path / "packed.mha", image, geometry)  # compressed, as write_image writes
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "packed.mha")), str(tmp_path / "scan.mha"))
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "packed.mha")), str(tmp_path / "pair.mhd"))  # and pair.raw
    raw, packed = (tmp_path / "scan.mha").read_bytes(), (tmp_path / "packed.mha").read_bytes()
    assert len(packed) < len(raw)
    (tmp_path / "cut.mha").write_bytes(raw[:len(raw) // 2])  # an interrupted copy
    (tmp_path / "cut_packed.mha").write_bytes(packed[:len(packed) * 3 // 4])
    damaged = bytearray(packed)
    damaged[len(packed) // 2:len(packed) // 2 + 64] = bytes(64)  # as a bad sector or a faulty transfer leaves it
    (tmp_path / "damaged.mha").write_bytes(bytes(damaged))
    write_image(tmp_path / "flat.mha", phantom_arrays(n_slices=8)[0], geometry)  # a short stream, which the same
    damaged = bytearray((tmp_path / "flat.mha").read_bytes())  # damage decodes to more voxels than the image has,
    damaged[-200:-100] = bytes(100)  # without an error, and without reaching the stream's end
    (tmp_path / "damaged_flat.mha").write_bytes(bytes(damaged))
    (tmp_path / "cut_pair.mhd").write_bytes((tmp_path / "pair.mhd").read_bytes().replace(b"pair.raw", b"cut_pair.raw"))
    (tmp_path / "cut_pair.raw").write_bytes((tmp_path / "pair.raw").read_bytes()[:image.nbytes // 4])
    (tmp_path / "lone.mhd").write_bytes((tmp_path / "pair.mhd").read_bytes().replace(b"pair.raw", b"lone.raw"))
    for name in ("cut.mha", "cut_packed.mha", "cut_pair.mhd", "lone.mhd"):
        with pytest.raises(RuntimeError, match="No such file or directory"):  # what ITK says of each
            sitk.ReadImage(str(tmp_path / name))
    written = sitk.ReadImage(str(tmp_path / "packed.mha"))  # the same in NRRD: raw, gzip, detached raw and gzip
    for name, compressed in (("scan.nrrd", False), ("packed.nrrd", True), ("pair.nhdr", False),
                             ("packed_pair.nhdr", True)):
        sitk.WriteImage(written, str(tmp_path / name), compressed)  # a .nhdr and its pair.raw, packed_pair.raw.gz
    raw, packed = (tmp_path / "scan.nrrd").read_bytes(), (tmp_path / "packed.nrrd").read_bytes()
    (tmp_path / "cut.nrrd").write_bytes(raw[:len(raw) - image.nbytes // 2])
    (tmp_path / "cut_packed.nrrd").write_bytes(packed[:len(packed) * 3 // 4])
    damaged = bytearray(packed)
    damaged[len(packed) // 2:len(packed) // 2 + 64] = bytes(64)
    (tmp_path / "damaged.nrrd").write_bytes(bytes(damaged))
    header = (tmp_path / "packed_pair.nhdr").read_bytes()
    (tmp_path / "cut_pair.nhdr").write_bytes(header.replace(b"packed_pair.raw.gz", b"cut_pair.raw.gz"))
    (tmp_path / "cut_pair.raw.gz").write_bytes((tmp_path / "packed_pair.raw.gz").read_bytes()[:-1000])
    (tmp_path / "lone.nhdr").write_bytes(header.replace(b"packed_pair.raw.gz", b"lone.raw.gz"))
    with pytest.raises(RuntimeError, match="couldn't open"):  # ITK's terms
        sitk.ReadImage(str(tmp_path / "lone.nhdr"))
    for name in ("damaged.mha", "damaged_flat.mha", "damaged.nrrd"):
        assert sitk.ReadImage(str(tmp_path / name)).GetSize() == (96, 96, 8)  # without a word
    for name, fault in (("cut.mha", r"data are cut short \(a copy or download interrupted\?\), holding 49\.\d % of"),
                        ("cut_packed.mha", r"data are cut short .*, holding \d+(\.\d)? % of the image's voxels"),
                        ("cut_pair.mhd", r"data file cut_pair\.raw is cut short .*, holding 25 % of the image's"),
                        ("damaged.mha", r"data are damaged \(the compressed voxels do not decompress"),
                        ("damaged_flat.mha", r"data are damaged \(the compressed voxels do not decompress"),
                        ("lone.mhd", r"data file lone\.raw is missing \(it must lie beside lone\.mhd\)"),
                        ("cut.nrrd", r"data are cut short \(a copy or download interrupted\?\), holding 50 % of"),
                        ("cut_packed.nrrd", r"data are cut short .*, holding \d+(\.\d)? % of the image's voxels"),
                        ("cut_pair.nhdr", r"data file cut_pair\.raw\.gz is cut short .*, holding \d+(\.\d)? %"),
                        ("damaged.nrrd", r"data are damaged \(the compressed voxels do not decompress"),
                        ("lone.nhdr", r"data file lone\.raw\.gz is missing \(it must lie beside lone\.nhdr\)")):
        kind = "NRRD" if "nrrd" in name or "nhdr" in name else "MetaImage"
        with pytest.raises(InputError, match=f"{name}: the {kind} file's {fault}.*; copy it again"):
            open_axial(tmp_path / name)
    for name in ("scan.mha", "packed.mha", "pair.mhd", "scan.nrrd", "packed.nrrd", "pair.nhdr", "packed_pair.nhdr"):
        np.testing.assert_array_equal(open_axial(tmp_path / name).stack(), image)


def test_a_dicom_series_stored_monochrome1_is_read_as_it_is_shown_not_refused_as_below_0(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    image = np.round(image * 10 + 100)
    write_dicom_series(tmp_path, image.max() - image, geometry, series=1)  # stored so that its lowest shows white
    for path in tmp_path.glob("*.dcm"):  # SimpleITK's writer always writes MONOCHROME2
        path.write_bytes(path.read_bytes().replace(b"MONOCHROME2", b"MONOCHROME1"))
    middle = sorted(tmp_path.glob("*.dcm"))[1]
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(middle))).max() < 0  # SimpleITK reads it inverted, below 0
    warning = ("the DICOM images are stored MONOCHROME1 (their lowest values shown white) and were read inverted, as "
               "they are shown, all below 0 (as ITK's GDCM reader reads them): they are measured from their lowest "
               "value up")
    series = open_axial(tmp_path)
    np.testing.assert_array_equal(series.stack(), image - image.min())
    assert series.warnings == [warning]
    [block] = open_axial_blocks(tmp_path)
    np.testing.assert_array_equal(block.stack(), image - image.min())
    assert block.warnings == [warning]
    one = open_axial(middle)
    np.testing.assert_array_equal(one.stack()[0], image[1] - image[1].min())
    assert one.warnings[0] == warning
    checked_mr_image(series, "MONOCHROME1")  # not "99.5 % of the image's pixels are below 0"


def test_a_dicom_series_whose_spacing_or_position_is_malformed_is_refused_not_read_as_numbers_of_no_meaning(
        tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)  # 0.8 mm pixels
    write_dicom_series(tmp_path, image * 10 + 100, geometry, series=1)
    element = b"\x28\x00\x30\x00\x06\x00\x00\x00.8\\.8 "  # (0028,0030), 6 bytes long (implicit VR), as GDCM writes it
    for path in tmp_path.glob("*.dcm"):  # as an export under a locale that writes a decimal comma
        written = path.read_bytes()
        assert written.count(element) == 1
        path.write_bytes(written.replace(element, element[:8] + b",8\\,8 "))
    message = re.escape('the DICOM files\' pixel size (0028,0030) is ",8\\,8", not one or two sizes in mm (a decimal '
                        "comma?), which DICOM readers take as 1 mm, 0 or a number of no meaning: the pixel size is "
                        "unknown; correct the tag, or export the series again")
    for read in (open_axial, open_axial_blocks):
        with pytest.raises(InputError, match=message):
            read(tmp_path)
    with pytest.raises(InputError, match=message):
        open_axial(sorted(tmp_path.glob("*.dcm"))[1])
    positions = tmp_path / "positions"
    positions.mkdir()
    write_dicom_series(positions, image * 10 + 100, tilted(geometry, 0.0, (0.25, 0.5, 0.75)), series=2)
    for path in positions.glob("*.dcm"):  # "-38.25\\-38.5\\4.75 " written "-38,25\\-38,5\\4,75 "
        written = path.read_bytes()
        at = written.index(b"\x20\x00\x32\x00") + 8
        end = at + int.from_bytes(written[at - 4:at], "little")
        path.write_bytes(written[:at] + written[at:end].replace(b".", b",") + written[end:])
    with pytest.raises(InputError, match=re.escape("the DICOM files' Image Position (Patient) (0020,0032) is "
                                                   '"-38,25\\-38,5\\,75", not 3 numbers (a decimal comma?), which '
                                                   "DICOM readers take as 1 mm, 0 or a number of no meaning: where the "
                                                   "slices lie is unknown")):  # not "all at one position"
        open_axial_blocks(positions)
    parallel = tmp_path / "parallel"
    parallel.mkdir()
    write_dicom_series(parallel, image * 10 + 100, geometry, series=3)
    for path in parallel.glob("*.dcm"):  # rows and columns along one direction, which GDCM replaces with the axial one
        written = path.read_bytes()
        at = written.index(b"\x20\x00\x37\x00") + 8
        end = at + int.from_bytes(written[at - 4:at], "little")
        path.write_bytes(written[:at - 4] + struct.pack("<I", 12) + b"1\\0\\0\\1\\0\\0 " + written[end:])
    with pytest.raises(InputError, match=re.escape("the DICOM files' Image Orientation (Patient) (0020,0037) is "
                                                   '"1\\0\\0\\1\\0\\0", not two directions at right angles, which '
                                                   "DICOM readers replace with the axial one")):
        open_axial(parallel)


def test_a_dicom_rescale_slope_or_intercept_that_is_not_a_number_is_refused_naming_it(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    element = b"\x28\x00\x53\x10\x02\x00\x00\x002 "  # Rescale Slope (0028,1053) "2" (implicit VR), as GDCM writes it
    for name, value in (("empty", b""), ("word", b"abc "), ("comma", b"1,5 ")):
        (tmp_path / name).mkdir()
        write_dicom_series(tmp_path / name, image * 10 + 100, geometry, series=1,
                           tags=(("0028|1053", "2"), ("0028|1052", "0")))
        for path in (tmp_path / name).glob("*.dcm"):
            written = path.read_bytes()
            assert written.count(element) == 1
            path.write_bytes(written.replace(element, element[:4] + struct.pack("<I", len(value)) + value))
    one_file = tmp_path / "word" / "series1_slice001.dcm"
    (tmp_path / "one_slice").mkdir()  # of a series whose other files are well formed
    write_dicom_series(tmp_path / "one_slice", image * 10 + 100, geometry, series=1)
    shutil.copy(tmp_path / "word" / "series1_slice002.dcm", tmp_path / "one_slice")
    # SimpleITK cannot read them ("Pixel type larger than output type"), or reads a value GDCM did not set (as of a
    # pixel spacing that is not a number): which of the two depends on what the process read before
    for path, file, value in ((tmp_path / "empty", "series1_slice000.dcm", ""),
                              (tmp_path / "word", "series1_slice000.dcm", "abc"), (one_file, one_file.name, "abc"),
                              (tmp_path / "one_slice", "series1_slice002.dcm", "abc")):
        with pytest.raises(InputError, match=re.escape(
                f'{path}: the Rescale Slope (0028,1053) of {file} is "{value}", not a number, with which SimpleITK '
                "cannot read its pixels, or reads them scaled by a number of no meaning; correct the tag, or export "
                "the series again")):
            open_axial(path)
    for explicit in (True, False):  # a scanner's classic MR file holds the tags at its top level, which counts
        writer = Writer(explicit)
        meta = Writer().dataset([(2, 0x10, "UI", "1.2.840.10008.1.2.1" if explicit else "1.2.840.10008.1.2")])
        shared = [(0x5200, 0x9229, "SQ", [writer.dataset([(0x28, 0x9145, "SQ", [writer.dataset(
            [(0x28, 0x1052, "DS", "0"), (0x28, 0x1053, "DS", "abc")])])])])]
        for intercept, fault in (("0", ""), ("-", 'the Rescale Intercept (0028,1052) of classic.dcm is "-", not a')):
            top = [(0x28, 0x1052, "DS", intercept), (0x28, 0x1053, "DS", "1")]
            (tmp_path / "classic.dcm").write_bytes(b"\0" * 128 + b"DICM" + Writer().element(2, 0, "UL", len(meta))
                                                   + meta + writer.dataset([*top, *shared]))
            found = dicom_series.rescale_fault(tmp_path / "classic.dcm")
            assert found.startswith(fault) and bool(found) == bool(fault)
    # GDCM reads the number a value begins with, "1,5" as 1: the values as stored (halved, for the slope of 2 they
    # were written with), an image scaled otherwise, as the networks may see any
    np.testing.assert_array_equal(open_axial(tmp_path / "comma").source_voxels(), (image * 10 + 100) / 2)


def test_one_dicom_file_of_a_series_given_alone_is_measured_alone_with_a_warning_naming_the_series_folder(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=5)
    (tmp_path / "series").mkdir()
    write_dicom_series(tmp_path / "series", image, geometry, series=1)
    write_dicom_series(tmp_path / "series", image[:2], geometry, series=2)  # another series beside it
    volume = open_axial(tmp_path / "series" / "series1_slice002.dcm")
    assert volume.n_slices == 1 and volume.image_numbers == ["3"]
    assert volume.warnings == [f"the DICOM file is one of the 5 images of its series in series: it alone is measured; "
                               f"to measure the series, give its folder ({tmp_path / 'series'})"]
    (tmp_path / "alone").mkdir()
    shutil.copy(tmp_path / "series" / "series1_slice002.dcm", tmp_path / "alone")
    assert open_axial(tmp_path / "alone" / "series1_slice002.dcm").warnings == []  # the series' one file there
    converted = tmp_path / "series" / "slice.nrrd"  # holding the DICOM header's tags as fields of its own
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "series" / "series1_slice002.dcm")), str(converted))
    assert open_axial(converted).warnings == []


def test_a_dicom_file_or_grey_and_alpha_picture_simpleitk_cannot_read_is_named_so_without_itk_s_names(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=1)
    write_dicom_series(tmp_path, image, geometry, series=1)
    [dicom_file] = tmp_path.glob("*.dcm")
    (tmp_path / "cut.dcm").write_bytes(dicom_file.read_bytes()[:400])
    with pytest.raises(InputError, match=re.escape("cut.dcm: a DICOM file, but not an image SimpleITK can read "
                                                   "(damaged, or a copy cut short; or not an image, as a report")):
        open_axial(tmp_path / "cut.dcm")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((32, 32), np.uint8)), str(tmp_path / "slice.png"))
    (tmp_path / "cut.png").write_bytes((tmp_path / "slice.png").read_bytes()[:60])
    with pytest.raises(InputError, match=re.escape("cut.png: the PNG picture file is cut short (a copy or download ")):
        open_axial(tmp_path / "cut.png", pixel_mm=0.7)  # not "PNGImageIO(0x55d0...): Error ...", ITK's object
    from PIL import Image

    for suffix, picture in (("gif", "GIF"), ("webp", "WEBP")):  # formats Pillow reads and SimpleITK does not
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / f"slice.{suffix}")
        with pytest.raises(InputError, match=re.escape(f"slice.{suffix}: a {picture} picture, which SimpleITK does not "
                                                       "read: save it as PNG")):
            open_axial(tmp_path / f"slice.{suffix}", pixel_mm=0.7)
    Image.fromarray(np.zeros((32, 32, 2), np.uint8), "LA").save(tmp_path / "transparent.png")
    with pytest.raises(InputError, match=re.escape("transparent.png: a grey picture with an alpha channel "
                                                   "(transparency), which SimpleITK cannot read: save it without one")):
        open_axial(tmp_path / "transparent.png", pixel_mm=0.7)


def test_a_jpeg_or_bmp_picture_cut_short_which_itk_reads_without_a_word_is_refused_saying_so(tmp_path):
    from PIL import Image

    image = (phantom_arrays(n_slices=1)[0][0] / 4 + np.random.default_rng(0).uniform(0, 20, (96, 96))).astype(np.uint8)
    for suffix in ("jpg", "bmp"):
        Image.fromarray(image).save(tmp_path / f"slice.{suffix}")
        whole = (tmp_path / f"slice.{suffix}").read_bytes()
        (tmp_path / f"cut.{suffix}").write_bytes(whole[:len(whole) // 2])  # an interrupted copy
        assert sitk.ReadImage(str(tmp_path / f"cut.{suffix}")).GetSize()[:2] == (96, 96)  # ITK: without a word
        kind = "JPEG" if suffix == "jpg" else "BMP"
        with pytest.raises(InputError, match=re.escape(f"cut.{suffix}: the {kind} picture file is cut short (a copy or "
                                                       "download interrupted?), its last pixels missing; copy it")):
            open_axial(tmp_path / f"cut.{suffix}", pixel_mm=0.7)
        assert open_axial(tmp_path / f"slice.{suffix}", pixel_mm=0.7).read_slice(0).shape == (96, 96)


def test_a_picture_is_read_turned_as_its_exif_orientation_shows_it_as_a_viewer_does(tmp_path):
    from PIL import Image, ImageOps

    stored = np.arange(24 * 30, dtype=np.uint16).reshape(24, 30) % 251  # ITK reads the pixels as stored
    for orientation in range(1, 9):
        picture = Image.fromarray(stored.astype(np.uint8))
        exif = picture.getexif()
        exif[0x0112] = orientation
        for suffix in ("png", "jpg"):
            picture.save(tmp_path / f"turned.{suffix}", exif=exif, **({"quality": 100} if suffix == "jpg" else {}))
            with Image.open(tmp_path / f"turned.{suffix}") as saved:
                shown = np.asarray(ImageOps.exif_transpose(saved), np.float32)  # as a viewer shows it
            volume = open_axial(tmp_path / f"turned.{suffix}", pixel_mm=0.7)
            assert np.array_equal(volume.read_slice(0), shown), (orientation, suffix)
            assert bool(volume.warnings) == (orientation != 1)
    assert volume.warnings == ["the picture's EXIF orientation has it turned 90° anticlockwise for display: it was "
                               "measured so, as a viewer shows it"]
    Image.fromarray(stored.astype(np.uint8)).save(tmp_path / "turned.tif", tiffinfo={0x0112: 6})
    with pytest.raises(InputError, match=re.escape("turned.tif: a TIFF picture whose Orientation tag (6) has it turned "
                                                   "90° clockwise for display, which ITK applies only in part")):
        open_axial(tmp_path / "turned.tif", pixel_mm=0.7)
    Image.fromarray(stored.astype(np.uint8)).save(tmp_path / "upright.tif", tiffinfo={0x0112: 1})
    assert np.array_equal(open_axial(tmp_path / "upright.tif", pixel_mm=0.7).read_slice(0), stored)


def calls_of(monkeypatch, function: str) -> list[str]:
    """The file names dicom_series' one-argument function is called with from now on, in order."""
    calls = []
    called = getattr(dicom_series, function)
    monkeypatch.setattr(dicom_series, function, lambda name: calls.append(name) or called(name))
    return calls


def test_opening_a_dicom_series_reads_each_header_once_after_choosing_the_series(tmp_path, monkeypatch):
    read_header = dicom_series.header_reader
    image, _, geometry = phantom_arrays(n_slices=5)
    write_dicom_series(tmp_path, image, geometry, series=1)
    for path in tmp_path.glob("*.dcm"):
        without_tag(path)  # so that the series is also checked for the warning
    headers_read = calls_of(monkeypatch, "header_reader")
    for open_series in (open_axial, lambda folder: open_axial_blocks(folder)[0]):
        headers_read.clear()
        assert open_series(tmp_path).warnings[0].startswith("the DICOM files have no Image Orientation")
        reads = Counter(headers_read)
        assert [reads[name] for name in sorted(reads)] == [2, 1, 1, 1, 1]  # the first once more: it is axial, which
        # chooses the series
    # one header SimpleITK cannot read: the series is read as one stack, without warnings
    unreadable = str(sorted(tmp_path.glob("*.dcm"))[2])
    monkeypatch.setattr(dicom_series, "header_reader", lambda name: None if name == unreadable else read_header(name))
    headers_read = calls_of(monkeypatch, "header_reader")
    assert open_axial_blocks(tmp_path)[0].warnings == []
    reads = Counter(headers_read)
    assert [reads[name] for name in sorted(reads)] == [2, 1, 1, 1, 1]


def test_a_folder_without_a_dicom_series_fails_clearly(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    for open_folder in (open_axial, open_axial_blocks):
        with pytest.raises(InputError, match="no DICOM series in this folder or its subfolders$"):
            open_folder(tmp_path)
    (tmp_path / "scan.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match=re.escape(f"subfolders; it holds an image file: give it as the input "
                                                   f"({tmp_path / 'scan.nii.gz'})")):
        open_axial(tmp_path)
    for name in ("scan.nii.gz", "slice_2.png", "slice_1.png"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match=re.escape("subfolders; it holds 3 image files (scan.nii.gz, ...): give them "
                                                   "as inputs, each is measured on its own (e.g. "
                                                   f"{tmp_path / '*.nii.gz'})")):
        open_axial(tmp_path)


def test_a_study_folder_gives_its_axial_series_even_when_another_is_larger(tmp_path, monkeypatch):
    headers_read = calls_of(monkeypatch, "_slice_plane")
    image, _, geometry = phantom_arrays(n_slices=4)
    write_dicom_series(tmp_path, image, geometry, series=1)
    sagittal_image, _, sagittal_geometry = phantom_arrays(n_slices=9)
    sagittal_ijk_to_ras = np.array([[0.0, 0.0, 4.0, -16.0],  # columns run anterior→posterior, rows superior→
                                    [-0.8, 0.0, 0.0, 38.0],   # inferior, 9 slices 4 mm apart from left to right
                                    [0.0, -0.8, 0.0, 38.0],
                                    [0.0, 0.0, 0.0, 1.0]])
    write_dicom_series(tmp_path, sagittal_image, VolumeGeometry(sagittal_geometry.size_ijk, sagittal_ijk_to_ras),
                       series=2)
    volume = open_axial(tmp_path)
    sagittal_headers_read = [name for name in headers_read if "series2" in name]
    assert 1 <= len(sagittal_headers_read) <= 3  # a series is judged by its first, middle and last files only
    reference = AxialLayout.from_geometry(geometry)
    assert volume.n_slices == 4
    assert np.allclose(volume.layout.stack_index_to_ras(), reference.stack_index_to_ras(), atol=1e-3)
    assert np.array_equal(volume.stack(), reference.to_stack(image.astype(np.int16)).astype(np.float32))


def test_a_study_folder_gives_its_axial_series_even_when_its_first_file_is_a_localizer(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    write_dicom_series(tmp_path, image, geometry, series=1, first_instance=1)
    localizer = VolumeGeometry((96, 96, 1), geometry.ijk_to_ras[:, [0, 2, 1, 3]])
    write_dicom_series(tmp_path, image[:1], localizer, series=1)  # series1_slice000.dcm: the series' first file
    larger, _, larger_geometry = phantom_arrays(n_slices=5)
    write_dicom_series(tmp_path, larger, VolumeGeometry(larger_geometry.size_ijk,
                                                        larger_geometry.ijk_to_ras[:, [0, 2, 1, 3]]), series=2)
    [volume] = open_axial_blocks(tmp_path)
    assert volume.source_geometry.matches(geometry)
    assert volume.warnings == ["1 of the DICOM series' slices not axial (e.g. a localizer) left out"]


@pytest.mark.parametrize("t1, t2, chosen", [
    ((("0008|103e", "AX T1 TSE"), ("0018|0081", "12")), (("0008|103e", "t2_tse_tra"), ("0018|0081", "98")), 2),
    ((("0018|0081", "11.5"),), (("0018|0081", "102"),), 2),  # no description: the echo time tells T2
    ((("0008|103e", "AX T1"),), (("0008|103e", "AX T2* MEDIC"), ("0018|0081", "17")), 2),
    ((("0008|103e", "AX T1"),), (("0008|103e", "AX PD"),), 2),  # neither named T2: T1 last, then the most slices
    ((("0008|103e", "AX A"),), (("0008|103e", "AX B"),), 1),
    ((("0008|103e", "t2_dixon_tra_F"), ("0008|0008", "DERIVED\\PRIMARY\\DIXON\\FAT")),  # a Dixon's images as
     (("0008|103e", "t2_dixon_tra_W"), ("0008|0008", "DERIVED\\PRIMARY\\DIXON\\WATER")), 2)])  # series: water
def test_a_study_folder_with_several_axial_series_measures_a_t2_weighted_one_and_says_which(tmp_path, t1, t2,
                                                                                            chosen):
    image, _, geometry = phantom_arrays(n_slices=4)
    study, alone = tmp_path / "study", tmp_path / "alone"
    study.mkdir(), alone.mkdir()
    write_dicom_series(study, image, geometry, series=1, tags=(("0020|0011", "3"), *t1))
    write_dicom_series(study, image[:3] + 100, geometry, series=2, tags=(("0020|0011", "5"), *t2))
    for volume in (open_axial(study), *open_axial_blocks(study)):
        assert volume.n_slices == (4, 3)[chosen - 1]
        [warning] = volume.warnings
        number = ("3", "5")[chosen - 1]
        assert warning.startswith(f"the DICOM folder holds 2 axial series: measured series {number} (")
        assert ("the T2-weighted one" in warning) == (t2 != (("0008|103e", "AX PD"),) and chosen == 2)
        assert f"not measured: series {('5', '3')[chosen - 1]} (" in warning
        assert ("whose Image Type names a water, in-phase or magnitude image" in warning) == ("0008|0008" in dict(t2))
    write_dicom_series(alone, image, geometry, series=2, tags=t2)
    assert open_axial(alone).warnings == []
    for wanted, n_slices in (("3", 4), ("5", 3)):
        [volume] = open_axial_blocks(study, series=wanted)
        assert volume.n_slices == n_slices and volume.warnings == []
    if all("AX" in dict(tags).get("0008|103e", "") for tags in (t1, t2)):  # a word of both: chosen as without one
        [volume] = open_axial_blocks(study, series="ax")
        assert volume.n_slices == (4, 3)[chosen - 1]
        assert volume.warnings[0].startswith("2 axial series of the DICOM folder answer to 'ax': measured series ")
    with pytest.raises(InputError, match=r"no axial series is numbered 'sag' or has it in its description; the DICOM "
                                         r"folder holds 2 axial series: series 3 \(.*\), series 5 \("):
        open_axial(study, series="sag")
    with pytest.raises(InputError, match="a series is chosen in a DICOM folder; this is a file"):
        open_axial(next(alone.iterdir()), series="5")


def test_of_two_axial_t2_series_alike_the_last_acquired_is_measured_a_repeat(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    for number in (7, 4):  # the first written is listed first; series 7 repeats series 4 (the patient moved)
        write_dicom_series(tmp_path, image + number, geometry, series=number,
                           tags=(("0020|0011", str(number)), ("0008|103e", "AX T2")))
    volume = open_axial(tmp_path)
    np.testing.assert_array_equal(volume.stack(), image + 7)
    [warning] = volume.warnings
    assert warning.startswith('the DICOM folder holds 2 axial series: measured series 7 ("AX T2", 3 slices), the '
                              "T2-weighted one with the most slices, and of those alike the last acquired (the "
                              'highest Series Number: a repeat?); not measured: series 4 ("AX T2", 3 slices)')


@pytest.mark.parametrize("character_set, description", [(None, "AX T2 Pateø"), ("ISO_IR 101", "AX T2 Pateř")])
def test_a_series_description_not_in_utf_8_is_read_in_its_character_set(tmp_path, character_set, description):
    image, _, geometry = phantom_arrays(n_slices=3)
    tags = (("0008|0005", character_set),) if character_set else ()
    for number, name in ((3, "AX T2 Patex"), (4, "AX T1")):
        write_dicom_series(tmp_path, image, geometry, series=number,
                           tags=(("0020|0011", str(number)), ("0008|103e", name), *tags))
    for path in tmp_path.glob("series3_*.dcm"):  # byte 0xF8: ø in Latin-1 (no character set named), ř in Latin-2
        path.write_bytes(path.read_bytes().replace(b"Patex", b"Pate\xf8"))
    [warning] = open_axial(tmp_path).warnings  # SimpleITK gives the byte as a lone surrogate, "\udcf8"
    assert warning.startswith(f'the DICOM folder holds 2 axial series: measured series 3 ("{description}", 3 slices)')
    assert open_axial(tmp_path, series=description.split()[-1]).warnings == []  # --series finds it by that word


def test_a_folder_of_several_studies_measures_one_series_and_says_to_give_each_study_on_its_own(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=3)
    for patient in (1, 2):  # each patient's axial T2, in one folder
        (tmp_path / f"patient{patient}").mkdir()
        write_dicom_series(tmp_path / f"patient{patient}", image, geometry, series=patient, tags=(
            ("0020|000d", f"1.2.826.0.1.3680043.2.1125.9.{patient}"), ("0008|103e", "AX T2")))
    [warning] = open_axial(tmp_path).warnings
    assert warning.startswith('the DICOM folder holds 2 axial series: measured a series ("AX T2", 3 slices) in ')
    assert warning.endswith("; they belong to 2 studies (patients or visits): to measure each, give each study's "
                            "folder as an input of its own")
    assert open_axial(tmp_path / "patient1").warnings == []


def test_a_study_whose_series_lie_in_subfolders_is_read_as_a_study_folder(tmp_path, capfd):
    image, _, geometry = phantom_arrays(n_slices=3)
    study = tmp_path / "CD"
    (study / "DICOM" / "ST0" / "SE3").mkdir(parents=True)
    (study / "DICOM" / "ST0" / "SE5").mkdir()
    (study / "DICOMDIR").write_bytes(b"not read")
    write_dicom_series(study / "DICOM" / "ST0" / "SE5", image, geometry, series=5,
                       tags=(("0020|0011", "5"), ("0008|103e", "AX T2")))
    for given in (study, study / "DICOMDIR"):  # its index stands for the CD's folder
        [volume] = open_axial_blocks(given)
        assert volume.warnings == [] and volume.source_geometry.matches(geometry)
    assert "No Series were found" not in capfd.readouterr().err  # ITK's, of the folders above the series'
    assert sitk.ProcessObject.GetGlobalWarningDisplay()  # for what else reads images in the process
    assert input_name(study / "DICOMDIR") == "CD"
    write_dicom_series(study / "DICOM" / "ST0" / "SE3", image + 100, geometry, series=3,
                       tags=(("0020|0011", "3"), ("0008|103e", "AX T1")))
    volume = open_axial(study)
    assert np.array_equal(volume.source_voxels(), image.astype(np.float32))
    [warning] = volume.warnings
    assert 'measured series 5 ("AX T2", 3 slices) in DICOM/ST0/SE5, the T2-weighted one' in warning
    assert 'not measured: series 3 ("AX T1", 3 slices) in DICOM/ST0/SE3' in warning


def test_a_series_whose_files_a_cd_parts_over_folders_is_read_whole(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=6)
    parts = [tmp_path / "DICOM" / "0000", tmp_path / "DICOM" / "0001"]
    for part in parts:
        part.mkdir(parents=True)
    write_dicom_series(parts[0], image, geometry, series=1)
    for path in sorted(parts[0].glob("*.dcm"))[3:]:  # its last three images in the next folder
        path.rename(parts[1] / path.name)
    volume = open_axial(tmp_path)
    assert volume.warnings == [] and volume.image_numbers == [str(k) for k in range(1, 7)]
    assert np.array_equal(volume.source_voxels(), image) and volume.source_geometry.matches(geometry)
    copy = tmp_path / "DICOM" / "copy"  # the whole series copied once more: each image read once
    shutil.copytree(parts[1], copy)
    for path in parts[0].glob("*.dcm"):
        shutil.copy(path, copy)
    volume = open_axial(tmp_path)
    assert np.array_equal(volume.source_voxels(), image)
    assert volume.warnings == ["6 of the DICOM series' files repeat the image of another (the same SOP Instance UID, "
                               "place and number: a file copied twice?): each image is read once"]


def test_an_input_is_named_without_its_image_suffix(tmp_path):
    (tmp_path / "study.2024").mkdir()
    assert input_name(tmp_path / "study.2024") == "study.2024"  # a DICOM folder keeps its whole name
    assert input_name(tmp_path / "patient.1.nii.gz") == "patient.1"
    assert input_name(tmp_path / "patient.1.NRRD") == "patient.1"
    assert input_name(tmp_path / "slice.png") == "slice"
    assert input_name(tmp_path / "IM0001") == "IM0001"


def test_streamed_reading_equals_reading_whole(tmp_path):
    image, labels, geometry = phantom_arrays(n_slices=5)
    write_image(tmp_path / "big.mha", image, geometry)
    whole = open_axial(tmp_path / "big.mha")
    streamed = open_axial(tmp_path / "big.mha", max_voxels_in_memory=1000)
    assert np.array_equal(streamed.stack(), whole.stack())
    measured_whole = measure_with_labels(whole, labels).measurements
    measured_streamed = measure_with_labels(streamed, labels).measurements
    assert [m.values for m in measured_whole] == [m.values for m in measured_streamed]


def test_voxels_that_hold_no_number_are_read_as_zero_with_one_warning_however_the_volume_is_read(tmp_path):
    image, labels, geometry = phantom_arrays(n_slices=5)
    broken = image.astype(np.float32)
    broken[:, :3, :] = np.nan  # rows a resampling tool filled beyond the imaged area
    broken[2, 20, 20], broken[3, 21, 21] = np.inf, -np.inf
    write_image(tmp_path / "nan.mha", broken, geometry)  # (ITK's NIfTI reader reads NaN as 0 itself, silently)
    expected = np.where(np.isfinite(broken), broken, 0.0)
    isotropic = VolumeGeometry(geometry.size_ijk, geometry.ijk_to_ras @ np.diag([1.0, 1.0, 0.2, 1.0]))
    ways = {"file": open_axial(tmp_path / "nan.mha"),
            "streamed": open_axial(tmp_path / "nan.mha", max_voxels_in_memory=1000),
            "array": axial_from_array(broken, geometry), "resliced": axial_from_array(broken, tilted(isotropic, 40.0))}
    assert ways["resliced"].layout.geometry != ways["resliced"].source_geometry
    for way, volume in ways.items():
        stack = volume.stack()
        assert np.isfinite(stack).all(), way
        assert volume.warnings == [NON_FINITE_WARNING], way  # once, however many slices hold such voxels
        assert np.array_equal(volume.source_voxels(), expected), way
    assert np.array_equal(ways["file"].stack(), ways["array"].stack())
    assert np.array_equal(ways["streamed"].stack(), ways["file"].stack())
    as_is = measure_with_labels(axial_from_array(expected, geometry), labels).measurements
    assert [m.values for m in measure_with_labels(ways["file"], labels).measurements] == [m.values for m in as_is]
    assert axial_from_array(image, geometry).warnings == []


def test_a_negative_padding_value_is_read_as_zero_with_one_warning_but_a_ct_or_a_z_scored_image_keeps_its_values(
        tmp_path):
    image, labels, geometry = phantom_arrays(n_slices=5)
    padded = image.astype(np.float32)
    padded[:, :12, :] = -32768.0  # rows an export padded beyond the imaged area with the type's lowest value
    padded[0] = -32768.0  # and a slice beyond it (a streamed volume is read slice by slice)
    write_image(tmp_path / "padded.mha", padded, geometry)
    expected = np.where(padded < 0, 0.0, padded)
    isotropic = VolumeGeometry(geometry.size_ijk, geometry.ijk_to_ras @ np.diag([1.0, 1.0, 0.2, 1.0]))
    ways = {"file": open_axial(tmp_path / "padded.mha"),
            "streamed": open_axial(tmp_path / "padded.mha", max_voxels_in_memory=1000),
            "array": axial_from_array(padded, geometry), "resliced": axial_from_array(padded, tilted(isotropic, 40.0))}
    assert ways["resliced"].layout.geometry != ways["resliced"].source_geometry
    assert ways["resliced"].stack().min() == 0.0  # the padding read as 0 before resampling: none blended in
    assert np.array_equal(ways["resliced"].source_voxels(), expected)
    for way, volume in ways.items():
        assert way == "resliced" or np.array_equal(volume.stack(), axial_from_array(expected, geometry).stack()), way
        assert volume.warnings == ["the image is padded with -32768 beyond the imaged area (its lowest value, held by "
                                   "whole regions of voxels, as a reslice or an export may fill them): they were "
                                   "measured as 0"], way  # once, however many slices hold it
    as_is = measure_with_labels(axial_from_array(expected, geometry), labels).measurements
    assert [m.values for m in measure_with_labels(ways["file"], labels).measurements] == [m.values for m in as_is]
    rng = np.random.default_rng(5)
    zero_padded = np.where(padded < 0, 0.0, padded + np.abs(rng.normal(0.0, 20.0, padded.shape)))
    z_scored = (zero_padded - zero_padded.mean()) / zero_padded.std()  # padded with 0, then z-scored
    clipped_ct = np.where(padded < 0, -1000.0, rng.normal(-100.0, 30.0, padded.shape))  # air clipped at -1000, fat
    for kept in (z_scored, clipped_ct):
        volume = axial_from_array(kept, geometry)
        assert np.array_equal(volume.source_voxels(), kept.astype(np.float32)) and volume.warnings == []


def test_signed_bytes_below_0_are_read_as_the_unsigned_bytes_they_wrapped_from_not_refused_as_a_ct(tmp_path):
    image, _, geometry = phantom_arrays(n_slices=5)
    noisy = image + np.random.default_rng(8).normal(0.0, 40.0, image.shape)
    unsigned = np.round(np.clip(noisy * 0.12 + 120.0, 0, 255)).astype(np.uint8)  # the background about 132
    signed = unsigned.view(np.int8)  # 8-bit data written as signed: its brighter half wraps below 0
    assert (signed < -50).mean() > 0.3
    itk = sitk.GetImageFromArray(signed)
    geometry.apply_to_sitk(itk)
    sitk.WriteImage(itk, str(tmp_path / "wrapped.nii.gz"))
    ways = {"file": open_axial(tmp_path / "wrapped.nii.gz"),
            "streamed": open_axial(tmp_path / "wrapped.nii.gz", max_voxels_in_memory=1000),
            "array": axial_from_array(signed, geometry)}
    for way, volume in ways.items():
        assert np.array_equal(volume.stack(), axial_from_array(unsigned, geometry).stack()), way
        assert volume.warnings == [WRAPPED_BYTES_WARNING], way  # once, however many slices hold it
        checked_mr_image(volume, way)  # not "... at -50 or below, as fat and air are in a CT's Hounsfield units"
    for kept in (signed.clip(0, None), unsigned, signed.astype(np.int16)):  # none below 0, or not 8 bits
        volume = axial_from_array(kept, geometry)
        assert np.array_equal(volume.source_voxels(), kept.astype(np.float32)) and volume.warnings == []


def test_a_4d_file_of_one_volume_is_read_as_that_volume_and_one_of_several_is_refused(tmp_path):
    image, labels, geometry = phantom_arrays(n_slices=5)
    geometry = tilted(geometry, 12.0, (3.0, -40.0, 25.0))  # its direction and origin kept
    write_image(tmp_path / "image.nrrd", image, geometry)
    write_image(tmp_path / "labels.nrrd", labels, geometry)
    for name in ("image", "labels"):  # as some tools save a 3-D volume: a fourth axis one long
        volume = sitk.ReadImage(str(tmp_path / f"{name}.nrrd"))
        sitk.WriteImage(sitk.JoinSeries(volume), str(tmp_path / f"{name}4.nrrd"))
    three, four = open_axial(tmp_path / "image.nrrd"), open_axial(tmp_path / "image4.nrrd")
    assert np.array_equal(four.stack(), three.stack())
    assert four.layout.geometry.matches(three.layout.geometry)
    assert np.array_equal(read_labels(tmp_path / "labels4.nrrd", four.source_geometry), labels)
    several = sitk.JoinSeries([sitk.ReadImage(str(tmp_path / "image.nrrd"))] * 2)
    sitk.WriteImage(several, str(tmp_path / "echoes.nrrd"))
    with pytest.raises(InputError, match="a 4-D image of 2 volumes"):
        open_axial(tmp_path / "echoes.nrrd")


def test_a_5d_image_and_labels_that_are_not_whole_numbers_are_refused(tmp_path):
    sitk.WriteImage(sitk.Image([8, 8, 3, 2, 2], sitk.sitkFloat32), str(tmp_path / "five.nrrd"))
    with pytest.raises(InputError, match="5-D image; a 3-D axial stack is needed"):
        open_axial(tmp_path / "five.nrrd")
    image, labels, geometry = phantom_arrays(n_slices=3)
    write_image(tmp_path / "image.nrrd", image, geometry)
    volume = open_axial(tmp_path / "image.nrrd")
    for name, odd in (("half", 0.5), ("nan", np.nan)):  # a probability map or a resampled mask, not labels
        values = labels.astype(np.float32)
        values[1, 5, 5] = odd
        write_image(tmp_path / f"{name}.nrrd", values, geometry)
        with pytest.raises(InputError, match="label values must be whole numbers 0-3"):
            read_labels(tmp_path / f"{name}.nrrd", volume.source_geometry)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_axial(tmp_path / "nope.nii.gz")


def test_centroid_of_a_mask_is_the_mean_of_its_pixels_in_ras():
    from shapes import axial_grid

    grid = axial_grid(pixel_mm=(0.5, 0.8), shape=(40, 50), rotation_deg=30.0, tilt_deg=20.0)
    mask = np.random.default_rng(0).random(grid.shape) > 0.7
    assert np.allclose(grid.centroid_ras(mask), grid.to_ras(*np.nonzero(mask)).mean(axis=0), atol=1e-9)


def test_each_structures_segment_is_found_by_id_else_by_name_in_any_case():
    segments = [("Disc", "Disc"), ("Segment_1", "spinal canal"), ("RightNeuralForamen", "Right neural foramen"),
                ("Segment_4", "SPINAL CANAL"), ("leftneuralforamen", "my left foramen")]
    assert structure_segments(segments) == {1: 1, 2: 4, 3: 2}  # IDs before names, the first name, the values in order
    assert structure_segments([("SpinalCanal", "Canal"), ("Segment_1", "Spinal canal")]) == {1: 0}
    assert structure_segments([("Disc", "Disc")]) == {}


def test_an_array_that_does_not_fit_its_geometry_is_refused_with_the_order_it_needs():
    geometry = VolumeGeometry((32, 64, 3), np.diag([0.7, 0.7, 4.0, 1.0]))  # size (i, j, k)
    assert axial_from_array(np.zeros((3, 64, 32)), geometry).layout is not None
    assert axial_from_array(np.zeros((3, 64, 32, 3)), geometry).layout is not None  # colour
    for voxels in (np.zeros((32, 64, 3)), np.zeros((64, 32)), np.zeros((1, 3, 64, 32, 3))):
        with pytest.raises(InputError, match=r"an array of shape .* for a geometry of 32x64x3 voxels \(i, j, k\); "
                                              r"the array must be \[k, j, i\]"):
            axial_from_array(voxels, geometry)


def test_a_complex_volume_as_two_channels_or_as_complex_numbers_is_refused_saying_to_give_its_magnitude():
    geometry = VolumeGeometry((32, 64, 3), np.diag([0.7, 0.7, 4.0, 1.0]))
    assert axial_from_array(np.zeros((3, 64, 32, 1)), geometry).colour_channels == {}  # grey in one channel
    with pytest.raises(InputError, match=r"2-component image; .* \(a complex image's real and imaginary parts\? give "
                                         r"its magnitude\)"):
        axial_from_array(np.zeros((3, 64, 32, 2)), geometry)
    with pytest.raises(InputError, match=r"volume: complex numbers; a grey-scale \(or RGB\) MR image is needed: give "
                                         r"their magnitude \(numpy.abs\)"):  # not their real part, silently
        axial_from_array(np.full((3, 64, 32), 1j, np.complex64), geometry)


def test_the_outer_ring_is_every_pixel_on_the_grid_border_once():
    grid = PlaneGrid(np.zeros(3), np.array([0.0, -0.5, 0.0]), np.array([-0.7, 0.0, 0.0]), (6, 9))
    rows, columns = grid.outer_ring()
    border = {(r, c) for r in range(6) for c in range(9) if r in (0, 5) or c in (0, 8)}
    assert sorted(zip(rows.tolist(), columns.tolist())) == sorted(border)


def test_the_edge_of_a_field_of_view_is_the_grids_border_and_the_shown_pixels_beside_its_padding():
    grid = PlaneGrid(np.zeros(3), np.array([0.0, -0.5, 0.0]), np.array([-0.7, 0.0, 0.0]), (6, 9))
    padding = np.zeros(grid.shape, bool)
    padding[:, 6:] = True  # the image ends after its column 5
    padding[4:, 4:] = True  # and after its row 3 from column 4 on
    border = {(r, c) for r in range(6) for c in range(9) if r in (0, 5) or c in (0, 8)}
    beside = {(r, 5) for r in range(4)} | {(3, 4), (4, 3), (5, 3)}
    rows, columns = FieldOfView(grid, padding).edge()
    assert set(zip(rows.tolist(), columns.tolist())) == border | beside
    assert sorted(zip(*FieldOfView(grid).edge())) == sorted(zip(*grid.outer_ring()))
    rows, columns = FieldOfView(grid, padding).edge(2)  # two pixels deep: the next ring, and two steps from padding
    inner_ring = {(r, c) for r in range(1, 5) for c in range(1, 8) if r in (1, 4) or c in (1, 7)}
    two_steps = {(r, 4) for r in range(3)} | {(3, 3), (4, 2), (5, 2)}
    assert set(zip(rows.tolist(), columns.tolist())) == border | inner_ring | beside | two_steps


def test_the_outer_rings_of_a_grid_go_as_deep_as_asked_and_no_deeper_than_its_middle():
    for shape in ((5, 4), (3, 6), (7, 5)):
        grid = PlaneGrid(np.zeros(3), np.array([0.0, -0.5, 0.0]), np.array([-0.7, 0.0, 0.0]), shape)
        height, width = shape
        for depth in (1, 2, 3, 4):
            rows, columns = grid.outer_ring(depth)
            ring = {(r, c) for r in range(height) for c in range(width)
                    if min(r, height - 1 - r, c, width - 1 - c) < depth}
            assert sorted(zip(rows.tolist(), columns.tolist())) == sorted(ring)  # every pixel once
