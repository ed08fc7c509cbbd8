"""Scene logic against real MRML (PyPI slicer-core): nodes, rulers, table, Re-measure, export, .mrb."""
import csv
import gc
import json
import math
import re
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import (BrightnessSegmenter, ThresholdSegmenter, canal_arrays, move_end_halfway, other_contrast,
                      phantom_arrays, tilted, with_foramina_swapped)
from shapes import two_lobes

slicer = pytest.importorskip("slicer", reason="slicer-core is part of the test requirements")

from SpinalStenosisLib.geometry import VolumeGeometry  # noqa: E402
from SpinalStenosisLib.level_names import parse_levels  # noqa: E402
from SpinalStenosisLib.measurement import MAX_AREA_TO_CHORDS, bilinear  # noqa: E402
from SpinalStenosisLib.pipeline import Cancelled  # noqa: E402
from SpinalStenosisLib.scene import (LEVELS_ATTRIBUTE, SEGMENTS, StenosisScene, axial_volume_of,  # noqa: E402
                                     geometry_of, measure_volume_node, named_region_of_node)
from SpinalStenosisLib.scene_table import (LOCKED_COLUMNS, TABLE_COLUMNS, graded_with, has_columns,  # noqa: E402
                                           measurements_of, region_notes, row_of, row_values, to_check, warnings_of)
from SpinalStenosisLib.scene_bundle import add_volume, new_scene, write_scene_bundle  # noqa: E402
from SpinalStenosisLib.volume_io import (NON_FINITE_WARNING, WRAPPED_BYTES_WARNING, open_axial,  # noqa: E402
                                         write_image)


def oblique_anisotropic(geometry: VolumeGeometry) -> VolumeGeometry:
    return VolumeGeometry(geometry.size_ijk, tilted(geometry, 15.0).ijk_to_ras @ np.diag([1.0, 0.8, 1.0, 1.0]))


@pytest.fixture
def context(tmp_path):
    return new_scene(cache_folder=tmp_path / "cache")


@pytest.fixture
def volume(context):
    image, _, geometry = phantom_arrays()
    return add_volume(context.scene, image, oblique_anisotropic(geometry).ijk_to_ras, "patient T2")


def measure(context, volume, segmenter=None):
    logic = StenosisScene(context.scene, context.segmentations_logic)
    return logic, measure_volume_node(logic, volume, segmenter or ThresholdSegmenter())


def count(scene, class_name):
    return scene.GetNodesByClass(class_name).GetNumberOfItems()


def measurement_tables(scene) -> int:
    """The measurement tables (not the charts' cut-off tables)."""
    nodes = scene.GetNodesByClass("vtkMRMLTableNode")
    return sum(nodes.GetItemAsObject(n).GetAttribute("SpinalStenosis.role") == "table"
               for n in range(nodes.GetNumberOfItems()))


def charts_whole(scene) -> int:
    """The charts whose three series each read a table that is in the scene (as after reloading a bundle)."""
    charts = scene.GetNodesByClass("vtkMRMLPlotChartNode")
    return sum(all(chart.GetNthPlotSeriesNode(k).GetTableNode() is not None for k in range(3))
               and chart.GetNumberOfPlotSeriesNodes() == 3
               for chart in (charts.GetItemAsObject(n) for n in range(charts.GetNumberOfItems())))


def items_without_node(scene) -> list[int]:
    """Subject-hierarchy items other than folders whose data node is gone (a removed node's leftover item)."""
    from vtkmodules.vtkCommonCore import vtkIdList

    hierarchy, items = scene.GetSubjectHierarchyNode(), vtkIdList()
    hierarchy.GetItemChildren(hierarchy.GetSceneItemID(), items, True)
    folder = slicer.vtkMRMLSubjectHierarchyConstants.GetSubjectHierarchyLevelFolder()
    return [item for item in (items.GetId(n) for n in range(items.GetNumberOfIds()))
            if hierarchy.GetItemDataNode(item) is None and hierarchy.GetItemLevel(item) != folder]


def add_segment_of_its_own(context, volume, name: str, mask: np.ndarray):
    """A segment on volume's grid with a labelmap of its own (a layer of its own, as overlapping segments get)."""
    labelmap = context.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    slicer.util.updateVolumeFromArray(labelmap, mask.astype(np.uint8))
    labelmap.CopyOrientation(volume)
    segment = slicer.vtkSegment()
    segment.SetName(name)
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName(),
                              slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(labelmap))
    context.scene.RemoveNode(labelmap)
    return segment


def test_measure_creates_named_nodes_with_the_input_geometry(context, volume):
    logic, outputs = measure(context, volume)
    segmentation = outputs.segmentation
    assert segmentation.IsA("vtkMRMLSegmentationNode") and segmentation.GetName() == "patient T2 stenosis segmentation"
    names = [segmentation.GetSegmentation().GetNthSegment(i).GetName()
             for i in range(segmentation.GetSegmentation().GetNumberOfSegments())]
    assert names == ["Spinal canal", "Left neural foramen", "Right neural foramen"]
    tag = segmentation.GetSegmentation().GetSegment("LeftNeuralForamen").GetTerminology()
    assert "SCT^123037004^Anatomical Structure" in tag and "SCT^7771000^Left" in tag
    assert segmentation.GetNodeReferenceID(segmentation.GetReferenceImageGeometryReferenceRole()) == volume.GetID()
    labels = logic.labels_of(segmentation, volume)
    image = slicer.util.arrayFromVolume(volume)
    assert np.array_equal(labels == 1, image > 700)
    assert outputs.table.IsA("vtkMRMLTableNode") and outputs.table.GetTable().GetNumberOfRows() == 3
    assert outputs.table.GetUseColumnTitleAsColumnHeader()
    assert outputs.table.GetColumnTitle("canal_area_mm2") == "Dural-sac area (mm²)"
    assert outputs.table.GetColumnUnitLabel("canal_ap_mm") == "mm" and outputs.table.GetColumnDescription("check")
    assert outputs.region is not None and outputs.region.IsA("vtkMRMLMarkupsROINode")
    assert outputs.region.GetLocked()  # where the networks looked, not a box to drag
    assert segmentation.GetAttribute("SpinalStenosis.engineVersion")
    assert json.loads(segmentation.GetAttribute("SpinalStenosis.models"))["test"]["sha256"] == "none"
    assert warnings_of(outputs.table) == []
    ruler = outputs.rulers[(1, "canal_ap_mm")]
    assert ruler.IsA("vtkMRMLMarkupsLineNode") and ruler.GetName() == "Canal AP slice 1"
    display = ruler.GetDisplayNode()
    assert display.GetVisibility2D() and not display.GetVisibility3D()  # read on its slice, not in a 3D pile-up
    hierarchy = context.scene.GetSubjectHierarchyNode()
    folder = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(ruler))
    assert hierarchy.GetItemName(folder) == "patient T2 stenosis rulers"


def assert_rulers_on_mask_boundaries(logic, outputs, volume, world_to_volume_ras=np.eye(4)):
    """Each ruler's world endpoints, mapped to the volume's voxels, lie on its slice at the edge of its mask, and its
    world length is the table's value."""
    labels = logic.labels_of(outputs.segmentation, volume)
    world_to_ijk = np.linalg.inv(geometry_of(volume).ijk_to_ras) @ world_to_volume_ras
    structure = {"canal_ap_mm": 1, "canal_transverse_mm": 1, "left_foramen_width_mm": 2, "right_foramen_width_mm": 3}
    assert outputs.rulers
    for (slice_index, measurement), node in outputs.rulers.items():
        row = row_of(outputs.table, slice_index)
        assert node.GetLineLengthWorld() == pytest.approx(row_values(outputs.table, row)[measurement])
        mask = (labels[slice_index] == structure[measurement]).astype(float)
        for n in range(2):
            i, j, k, _ = world_to_ijk @ np.append(node.GetNthControlPointPositionWorld(n), 1.0)
            assert k == pytest.approx(slice_index, abs=1e-6)
            ring = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            values = bilinear(mask, j + 0.75 * np.cos(ring), i + 0.75 * np.sin(ring))
            assert values.max() >= 0.5 > values.min()



def test_a_warning_of_thick_slices_through_a_tilted_spine_is_kept_with_the_results_and_follows_edits(context):
    labels, geometry = canal_arrays(-2.0 * np.arange(8), [6.0] * 8, 7.7)
    volume = add_volume(context.scene, labels * 800.0 + 100.0, geometry.ijk_to_ras, "abdomen")
    logic, outputs = measure(context, volume)
    [warning] = warnings_of(outputs.table)
    assert warning.startswith("slices 7.7 mm apart through a spine tilted about 15°")
    assert json.loads(outputs.segmentation.GetAttribute("SpinalStenosis.warnings")) == [warning]
    untilted, _ = canal_arrays(np.zeros(8), [6.0] * 8, 7.7)  # the canals outlined again by hand, in line
    logic._write_segments(outputs.segmentation, volume, untilted)
    assert len(logic.remeasure(volume, outputs)) == 7 and warnings_of(outputs.table) == []


def test_a_colour_volume_is_measured_as_the_command_line_measures_a_colour_image(context):
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    image, labels, geometry = phantom_arrays()
    ijk_to_ras = vtkMatrix4x4()
    add_volume(context.scene, image, geometry.ijk_to_ras, "grey").GetIJKToRASMatrix(ijk_to_ras)
    for name, channels, chosen in (("composite", (other_contrast(labels), image, image), "green"),
                                   ("grey in colour", (image, image, image), None)):
        volume = context.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", name)  # e.g. a PNG loaded in Slicer
        slicer.util.updateVolumeFromArray(volume, np.stack(channels, axis=-1).astype(np.float32))
        volume.SetIJKToRASMatrix(ijk_to_ras)
        logic, outputs = measure(context, volume, BrightnessSegmenter())
        warnings = warnings_of(outputs.table)
        if chosen:
            [warning] = warnings
            assert f"measured on its {chosen} channel" in warning and "red 0.81" in warning
        else:
            assert warnings == []
        aps = [row_values(outputs.table, row)["canal_ap_mm"] for row in range(3)]
        assert aps == pytest.approx([12.0] * 3, abs=1.0)
        assert logic.remeasure(volume, outputs) == []  # nothing edited
        assert warnings_of(outputs.table) == warnings  # judged again on the channel measured, as Measure did


def test_a_volume_loaded_from_a_picture_file_is_measured_with_a_warning_about_its_pixel_size(context, volume,
                                                                                              tmp_path):
    storage = context.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName("/exports/slice 7.png")
    volume.SetAndObserveStorageNodeID(storage.GetID())
    logic, outputs = measure(context, volume)
    [warning] = warnings_of(outputs.table)
    assert warning.startswith("the volume was loaded from a picture file (slice 7.png), which holds no pixel size: it "
                              "was measured with 0.64 × 0.80 mm pixels; if those are not the scan's, set the Image")
    storage.SetFileName("/scans/patient.nrrd")
    assert warnings_of(measure(context, volume)[1].table) == []
    from PIL import Image

    picture = Image.fromarray(np.zeros((8, 8), np.uint8))
    exif = picture.getexif()
    exif[0x0112] = 3  # to be turned 180° for display, which 3D Slicer's reader does not do
    picture.save(tmp_path / "turned.png", exif=exif)
    storage.SetFileName(str(tmp_path / "turned.png"))
    assert warnings_of(measure(context, volume)[1].table)[1] == (
        "the picture's EXIF orientation has it turned 180° for display, which 3D Slicer does not apply: it was "
        "measured as loaded, not as a viewer shows it (spinal-stenosis measure --pixel-mm turns it)")


def test_a_volume_loaded_from_a_damaged_nifti_metaimage_or_nrrd_file_is_refused_as_measure_refuses_it(
        context, volume, tmp_path, monkeypatch):
    from SpinalStenosisLib import image_files

    write_image(tmp_path / "scan.nii", slicer.util.arrayFromVolume(volume), geometry_of(volume))
    whole = (tmp_path / "scan.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(whole[:len(whole) // 2])  # 3D Slicer's ITK reader reads it without a word
    storage = context.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "cut.nii"))
    volume.SetAndObserveStorageNodeID(storage.GetID())
    with pytest.raises(ValueError, match=re.escape("the volume was loaded from cut.nii: the NIfTI file is cut short (a "
                                                   "copy or download interrupted?): it holds ")):
        axial_volume_of(volume)
    storage.SetFileName(str(tmp_path / "scan.nii"))
    assert axial_volume_of(volume).n_slices == volume.GetImageData().GetDimensions()[2]
    voxels = slicer.util.arrayFromVolume(volume)
    noisy = voxels + np.random.default_rng(0).uniform(0, 50, voxels.shape)
    write_image(tmp_path / "scan.mha", noisy, geometry_of(volume))  # compressed: noise makes its stream long
    damaged = bytearray((tmp_path / "scan.mha").read_bytes())
    damaged[-2000:-1900] = bytes(100)  # the ITK reader reads it without a word
    (tmp_path / "damaged.mha").write_bytes(bytes(damaged))
    storage.SetFileName(str(tmp_path / "damaged.mha"))
    inflated = []
    inflate = image_files._inflated_bytes
    monkeypatch.setattr(image_files, "_inflated_bytes", lambda *args: inflated.append(args) or inflate(*args))
    for _ in range(2):  # Measure, then Re-measure: the file, unchanged, is decompressed once
        with pytest.raises(ValueError, match=re.escape("the volume was loaded from damaged.mha: the MetaImage file's "
                                                       "data are damaged (the compressed voxels do not decompress")):
            axial_volume_of(volume)
    assert len(inflated) == 1
    (tmp_path / "damaged.mha").write_bytes((tmp_path / "scan.mha").read_bytes())  # copied again, whole
    assert axial_volume_of(volume).n_slices == volume.GetImageData().GetDimensions()[2] and len(inflated) == 2
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "scan.mha")), str(tmp_path / "scan.nrrd"), True)  # gzip encoded
    damaged = bytearray((tmp_path / "scan.nrrd").read_bytes())
    damaged[-2000:-1900] = bytes(100)
    (tmp_path / "damaged.nrrd").write_bytes(bytes(damaged))
    storage.SetFileName(str(tmp_path / "damaged.nrrd"))
    with pytest.raises(ValueError, match=re.escape("the volume was loaded from damaged.nrrd: the NRRD file's data are "
                                                   "damaged (the compressed voxels do not decompress")):
        axial_volume_of(volume)


def test_a_volume_loaded_from_a_nifti_file_without_orientation_or_mirrored_is_warned_of_as_measure_warns(context,
                                                                                                          tmp_path):
    image, _, geometry = phantom_arrays(n_slices=2)
    write_image(tmp_path / "scan.nii", image, geometry)
    header = bytearray((tmp_path / "scan.nii").read_bytes())
    header[252:256] = struct.pack("<hh", 0, 0)  # qform_code, sform_code: NIFTI_XFORM_UNKNOWN
    (tmp_path / "unknown.nii").write_bytes(bytes(header))
    as_read = VolumeGeometry.from_sitk(sitk.ReadImage(str(tmp_path / "unknown.nii")))  # as Slicer's ITK reader loads it
    volume = add_volume(context.scene, image, as_read.ijk_to_ras, "unknown")
    storage = context.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "unknown.nii"))
    volume.SetAndObserveStorageNodeID(storage.GetID())
    [warning] = open_axial(tmp_path / "unknown.nii").warnings
    assert warning.startswith("the NIfTI header gives no orientation (its qform and sform codes are 0)")
    assert axial_volume_of(volume).warnings == [warning]
    logic, outputs = measure(context, volume)
    assert warnings_of(outputs.table) == [warning]
    volume.SetSpacing(0.5, 0.5, 4.0)  # given the scan's pixel size by hand since: the file no longer says how it lies
    assert axial_volume_of(volume).warnings == []
    header = bytearray((tmp_path / "scan.nii").read_bytes())
    header[80:84] = struct.pack("<f", -0.8)  # pixdim[1], which must be positive
    (tmp_path / "negative.nii").write_bytes(bytes(header))
    storage.SetFileName(str(tmp_path / "negative.nii"))
    mirrored = VolumeGeometry.from_sitk(sitk.ReadImage(str(tmp_path / "negative.nii")))  # as ITK reads it
    for ijk_to_ras, warned in ((mirrored.ijk_to_ras, True), (geometry.ijk_to_ras, False)):
        loaded = add_volume(context.scene, image, ijk_to_ras, "negative")
        loaded.SetAndObserveStorageNodeID(storage.GetID())
        assert axial_volume_of(loaded).warnings == ([
            "the volume was loaded from negative.nii, whose header gives a negative voxel size (-0.8 × 0.8 × 4 mm), "
            "which ITK, so SimpleITK and 3D Slicer, reads as that axis mirrored against the header's orientation: "
            "the left and right sides may be swapped; correct the header, or check which foramen is left and which "
            "is right"] if warned else [])  # loaded mirrored, as ITK reads it; or as its orientation has it


def test_a_volume_with_voxels_that_hold_no_number_is_measured_with_a_warning_and_left_as_it_is(context):
    image, _, geometry = phantom_arrays()
    image = image.astype(np.float32)
    image[:, :2, :] = np.nan  # what a resampling tool filled beyond the imaged area
    volume = add_volume(context.scene, image, geometry.ijk_to_ras, "resampled T2")
    logic, outputs = measure(context, volume)
    assert warnings_of(outputs.table) == [NON_FINITE_WARNING]
    assert not np.isnan(measurements_of(outputs.table)[0].values["canal_ap_mm"])
    logic.remeasure(volume, outputs)
    assert warnings_of(outputs.table) == [NON_FINITE_WARNING]
    assert np.array_equal(slicer.util.arrayFromVolume(volume), image, equal_nan=True)


def test_the_slice_thickness_of_a_volume_loaded_from_dicom_judges_the_blur(context):
    labels, geometry = canal_arrays(-2.0 * np.arange(8), [6.0] * 8, 7.7)
    volume = add_volume(context.scene, labels * 800.0 + 100.0, geometry.ijk_to_ras, "abdomen")
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.3")
    thickness = {"value": "5.0"}

    def dicom_value(uid, tag):
        return thickness["value"] if (uid, tag) == ("1.2.3", "0018,0050") else ""

    assert axial_volume_of(volume, dicom_value).slice_thickness_mm == 5.0
    assert axial_volume_of(volume).slice_thickness_mm is None  # no header to read
    logic = StenosisScene(context.scene, context.segmentations_logic, dicom_value=dicom_value)
    outputs = measure_volume_node(logic, volume, ThresholdSegmenter())
    assert warnings_of(outputs.table) == []  # 5 mm slices 7.7 mm apart blur the tilted sac 1.3 mm
    thickness["value"] = "9.0"  # a header read again at Re-measure
    logic._write_segments(outputs.segmentation, volume, labels)
    logic.remeasure(volume, outputs)
    [warning] = warnings_of(outputs.table)
    assert warning.startswith("slices 9.0 mm thick, 7.7 mm apart, through a spine tilted about 15°")

def test_a_volume_loaded_from_dicom_with_a_malformed_spacing_position_or_rescale_is_refused_with_the_tag_s_value(
        context):
    labels, geometry = canal_arrays(np.zeros(3), [6.0] * 3, 4.0)
    volume = add_volume(context.scene, labels * 800.0 + 100.0, geometry.ijk_to_ras, "series")
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.3")
    header = {"0028,0030": "0,8\\0,8"}  # a decimal comma, which DICOM readers read as 1 mm or worse

    def dicom_value(uid, tag):
        return header.get(tag, "") if uid == "1.2.3" else ""

    with pytest.raises(ValueError, match=re.escape('pixel size (0028,0030) is "0,8\\0,8", not one or two sizes in mm '
                                                   "(a decimal comma?)")):
        axial_volume_of(volume, dicom_value)
    header.update({"0028,0030": "0.8\\0.8", "0020,0032": "-38,25\\-38,5\\0,75"})
    with pytest.raises(ValueError, match=re.escape('Image Position (Patient) (0020,0032) is "-38,25\\-38,5\\0,75", not '
                                                   "3 numbers")):
        axial_volume_of(volume, dicom_value)
    header.update({"0020,0032": "-38.25\\-38.5\\0.75", "0020,0037": "1\\0\\0\\1\\0\\0"})
    with pytest.raises(ValueError, match="not two directions at right angles"):
        axial_volume_of(volume, dicom_value)
    header["0020,0037"] = "1\\0\\0\\0\\1\\0"
    assert axial_volume_of(volume, dicom_value).n_slices == 3
    header.update({"0028,1053": "abc", "0028,1052": "0"})  # which ITK's GDCM reader reads as a number of no meaning
    with pytest.raises(ValueError, match=re.escape('the Rescale Slope (0028,1053) of series\'s DICOM files is "abc", '
                                                   "not a number")):
        axial_volume_of(volume, dicom_value)
    header["0028,1053"] = "1,5"  # read as 1 (the image scaled otherwise, as the networks may see any)
    assert axial_volume_of(volume, dicom_value).n_slices == 3


def test_a_volume_loaded_from_dicom_stored_monochrome1_is_measured_as_shown_as_measure_does(context):
    labels, geometry = canal_arrays(np.zeros(3), [6.0] * 3, 4.0)
    shown = labels * 800.0 + 100.0
    read = shown - shown.max() - 1  # as ITK reads it stored MONOCHROME1 (each stored value v as -v - 1)
    volume = add_volume(context.scene, read, geometry.ijk_to_ras, "series")
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.3")
    header = {"0028,0004": "MONOCHROME1"}

    def dicom_value(uid, tag):
        return header.get(tag, "") if uid == "1.2.3" else ""

    taken = axial_volume_of(volume, dicom_value)
    np.testing.assert_allclose(taken.stack(), shown - shown.min())
    assert taken.warnings[0].startswith("the DICOM images are stored MONOCHROME1 (their lowest values shown white)")
    logic = StenosisScene(context.scene, context.segmentations_logic, dicom_value=dicom_value)
    outputs = measure_volume_node(logic, volume, ThresholdSegmenter())
    assert warnings_of(outputs.table)[0].startswith("the DICOM images are stored MONOCHROME1")
    assert np.isfinite(row_values(outputs.table, 1)["canal_ap_mm"])
    header["0028,0004"] = "MONOCHROME2"  # values below 0 of another image are its own (refused as inverted)
    np.testing.assert_allclose(axial_volume_of(volume, dicom_value).stack(), read)


def test_a_volume_of_signed_bytes_below_0_is_measured_unsigned_as_measure_reads_its_file(context):
    labels, geometry = canal_arrays(np.zeros(3), [6.0] * 3, 4.0)
    noise = np.random.default_rng(3).normal(0.0, 4.0, labels.shape)
    unsigned = np.round(labels * 225 + 12 + noise).astype(np.uint8)  # written as signed, its canal wraps below 0
    volume = add_volume(context.scene, unsigned.view(np.int8), geometry.ijk_to_ras, "bytes")
    taken = axial_volume_of(volume)
    np.testing.assert_array_equal(taken.source_voxels(), unsigned)
    assert taken.warnings == [WRAPPED_BYTES_WARNING]
    assert slicer.util.arrayFromVolume(volume).min() < 0  # the node as it was

    class FourTimesBrighter(ThresholdSegmenter):  # its thresholds are for 12-bit data
        def segment(self, images, grids):
            return super().segment([4.0 * image for image in images], grids)

    outputs = measure_volume_node(StenosisScene(context.scene, context.segmentations_logic), volume,
                                  FourTimesBrighter())
    assert warnings_of(outputs.table) == [WRAPPED_BYTES_WARNING]
    assert np.isfinite(row_values(outputs.table, 1)["canal_ap_mm"])


def test_a_volume_loaded_from_dicom_numbers_each_slice_as_its_image_in_the_table(context):
    labels, geometry = canal_arrays(np.zeros(4), [6.0] * 4, 4.0)
    volume = add_volume(context.scene, labels * 800.0 + 100.0, geometry.ijk_to_ras, "series")
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.7 1.2.8 1.2.9 1.2.10")  # the slices' instances, in their order

    def dicom_value(uid, tag):
        return uid.rsplit(".", 1)[1] if tag == "0020,0013" else ""  # Instance Number 7, 8, ...

    logic = StenosisScene(context.scene, context.segmentations_logic, dicom_value=dicom_value)
    outputs = measure_volume_node(logic, volume, ThresholdSegmenter())
    assert [m.image_number for m in measurements_of(outputs.table)] == ["7", "8", "9", "10"]
    assert "image_number" in LOCKED_COLUMNS  # what the image is, not the user's to type over
    edited = labels.copy()
    edited[2][edited[2] == 1] = 0
    logic._write_segments(outputs.segmentation, volume, edited)
    logic.remeasure(volume, outputs)  # the edited slice measured again keeps its image
    remeasured = measurements_of(outputs.table)
    assert np.isnan(remeasured[2].values["canal_ap_mm"])  # its canal erased
    assert [m.image_number for m in remeasured] == ["7", "8", "9", "10"]
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.7")  # one instance (a multi-frame file): no slice is one image
    assert axial_volume_of(volume, dicom_value).image_numbers == []
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.7 1.2.8 1.2.9 1.2.10")
    logic.dicom_value = lambda uid, tag: ""  # the DICOM database closed since Measure
    logic._write_segments(outputs.segmentation, volume, labels)
    logic.remeasure(volume, outputs)  # without the DICOM database (or a scene the command line wrote): as Measure did
    assert [m.image_number for m in measurements_of(outputs.table)] == ["7", "8", "9", "10"]
    logic.name_levels(outputs.table, parse_levels("image 8-9=L4-L5"))  # as Name levels takes them
    assert [m.level for m in measurements_of(outputs.table)] == ["", "L4-L5", "L4-L5", ""]
    with pytest.raises(ValueError, match="levels name image 11, but the slices are images 7 to 10"):
        logic.name_levels(outputs.table, parse_levels("image 11=L5-S1"))


def test_rulers_sit_on_the_mask_boundary_and_match_the_table(context, volume):
    logic, outputs = measure(context, volume)
    assert_rulers_on_mask_boundaries(logic, outputs, volume)


def rigid_transform_node(scene, degrees: float, shift_ras: tuple[float, float, float]):
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    t = np.radians(degrees)
    to_world = np.eye(4)
    to_world[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    to_world[:3, 3] = shift_ras
    matrix = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, to_world[r, c])
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetMatrixTransformToParent(matrix)
    return node, to_world


def test_outputs_follow_the_volumes_parent_transform(context, volume, tmp_path):
    moved, to_world = rigid_transform_node(context.scene, 20.0, (30.0, -12.0, 5.0))
    volume.SetAndObserveTransformNodeID(moved.GetID())
    logic, outputs = measure(context, volume)
    spatial = [outputs.segmentation, outputs.region, *outputs.rulers.values()]
    assert all(node.GetTransformNodeID() == moved.GetID() for node in spatial)
    labels = logic.labels_of(outputs.segmentation, volume)
    assert np.array_equal(labels == 1, slicer.util.arrayFromVolume(volume) > 700)  # not shifted by the transform
    assert_rulers_on_mask_boundaries(logic, outputs, volume, np.linalg.inv(to_world))
    assert logic.remeasure(volume, outputs) == []  # the segments read back under the transform are unchanged
    paths = logic.export(outputs, tmp_path / "export", "patient")
    other = new_scene()  # the files, loaded with the volume's own file (no transform), overlay it
    plain = add_volume(other.scene, slicer.util.arrayFromVolume(volume), geometry_of(volume).ijk_to_ras, "plain")
    reloaded = other.segmentations_logic.LoadSegmentationFromFile(str(paths["segmentation"]), False, "reloaded")
    reloaded_labels = StenosisScene(other.scene, other.segmentations_logic).labels_of(reloaded, plain)
    assert np.array_equal(reloaded_labels == 1, slicer.util.arrayFromVolume(plain) > 700)
    exported = json.loads(paths["rulers"].read_text(encoding="utf-8"))
    by_name = {node.GetName(): node for node in outputs.rulers.values()}
    for markup in exported["markups"]:  # in the volume file's coordinates (LPS in the file), like the .seg.nrrd
        world = np.append(by_name[markup["name"]].GetNthControlPointPositionWorld(0), 1.0)
        volume_lps = (np.linalg.inv(to_world) @ world)[:3] * [-1.0, -1.0, 1.0]
        assert markup["controlPoints"][0]["position"] == pytest.approx(list(volume_lps))
    volume.SetAndObserveTransformNodeID(None)  # the user hardens or removes the transform, then measures again
    logic, outputs = measure(context, volume)
    assert count(context.scene, "vtkMRMLSegmentationNode") == 1
    assert all(node.GetTransformNodeID() is None for node in [outputs.segmentation, outputs.region,
                                                              *outputs.rulers.values()])
    assert_rulers_on_mask_boundaries(logic, outputs, volume)


def test_remeasure_brings_the_outputs_under_the_volumes_new_transform(context, volume):
    first, _ = rigid_transform_node(context.scene, 20.0, (30.0, -12.0, 5.0))
    volume.SetAndObserveTransformNodeID(first.GetID())
    logic, outputs = measure(context, volume)
    table_before = [row_values(outputs.table, r) for r in range(3)]
    second, to_world = rigid_transform_node(context.scene, -35.0, (-8.0, 40.0, -3.0))
    volume.SetAndObserveTransformNodeID(second.GetID())  # e.g. the user registers the volume after measuring
    assert logic.remeasure(volume, outputs) == []  # nothing was edited, so nothing is re-measured
    assert all(node.GetTransformNodeID() == second.GetID()
               for node in [outputs.segmentation, outputs.region, *outputs.rulers.values()])
    assert [row_values(outputs.table, r) for r in range(3)] == table_before
    assert np.array_equal(logic.labels_of(outputs.segmentation, volume) == 1, slicer.util.arrayFromVolume(volume) > 700)
    assert_rulers_on_mask_boundaries(logic, outputs, volume, np.linalg.inv(to_world))


def test_a_table_of_an_earlier_version_is_measured_again_not_updated(context, volume):
    logic, outputs = measure(context, volume)
    outputs.table.GetTable().RemoveColumnByName("check")  # a scene saved before the check column
    assert logic.find_outputs(volume) is None  # so Re-measure asks for Measure, and a region change leaves it
    again = measure_volume_node(logic, volume, ThresholdSegmenter())
    assert again.table is outputs.table and again.table.GetTable().GetColumnByName("check") is not None
    assert logic.find_outputs(volume) is not None


def test_measure_twice_leaves_one_set_of_nodes(context, volume):
    measure(context, volume)
    before = {c: count(context.scene, c) for c in ("vtkMRMLSegmentationNode", "vtkMRMLTableNode",
                                                   "vtkMRMLMarkupsLineNode", "vtkMRMLMarkupsROINode",
                                                   "vtkMRMLPlotChartNode", "vtkMRMLPlotSeriesNode")}
    logic, outputs = measure(context, volume)
    after = {c: count(context.scene, c) for c in before}
    assert after == before and before["vtkMRMLSegmentationNode"] == 1
    assert outputs.chart.GetNumberOfPlotSeriesNodes() == 3


def test_a_volume_measured_again_where_nothing_is_found_keeps_no_box_or_ruler_of_the_first_run(context, volume):
    from SpinalStenosisLib.pipeline import SliceSegmentation

    class FindsNothing(ThresholdSegmenter):
        def segment(self, images, grids):
            return [SliceSegmentation.empty(grid) for grid in grids]

    measure(context, volume)
    assert count(context.scene, "vtkMRMLMarkupsROINode") == 1 and count(context.scene, "vtkMRMLMarkupsLineNode")
    logic, outputs = measure(context, volume, FindsNothing())
    assert outputs.region is None and not outputs.rulers
    assert count(context.scene, "vtkMRMLMarkupsROINode") == 0 and count(context.scene, "vtkMRMLMarkupsLineNode") == 0
    assert not logic.labels_of(outputs.segmentation, volume).any()
    assert outputs.table.GetTable().GetNumberOfRows() == 3  # a row per slice, nothing measured on it


def test_input_volume_is_never_modified(context, volume):
    voxels = slicer.util.arrayFromVolume(volume).copy()
    matrix = geometry_of(volume).ijk_to_ras.copy()
    logic, outputs = measure(context, volume)
    logic.remeasure(volume, outputs)
    assert np.array_equal(slicer.util.arrayFromVolume(volume), voxels)
    assert np.array_equal(geometry_of(volume).ijk_to_ras, matrix)


def test_cancelled_run_leaves_no_nodes(context, volume):
    before = context.scene.GetNumberOfNodes()
    logic = StenosisScene(context.scene, context.segmentations_logic)
    with pytest.raises(Cancelled):
        measure_volume_node(logic, volume, ThresholdSegmenter(), should_cancel=lambda: True)
    assert context.scene.GetNumberOfNodes() == before


def test_a_label_volume_is_refused_and_leaves_no_nodes(context):
    from SpinalStenosisLib.volume_io import InputError

    _, labels, geometry = phantom_arrays()
    label_volume = add_volume(context.scene, labels.astype(np.float32), geometry.ijk_to_ras, "segmentation as volume")
    before = context.scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="only the values 0, 1, 2, 3: a label image"):
        measure(context, label_volume)
    assert context.scene.GetNumberOfNodes() == before


def test_remeasure_changes_exactly_the_edited_rows(context, volume):
    logic, outputs = measure(context, volume)
    table = outputs.table
    rows_before = [row_values(table, r) for r in range(3)]
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[1][labels[1] == 2] = 0  # the user erases the left foramen on slice 1
    labels[1][labels[1] == 1] = 0
    ys, xs = np.nonzero(slicer.util.arrayFromVolume(volume)[1] > 700)
    labels[1][ys.min() + 3:ys.max() - 2, xs.min():xs.max() + 1][
        slicer.util.arrayFromVolume(volume)[1][ys.min() + 3:ys.max() - 2, xs.min():xs.max() + 1] > 700] = 1
    logic._write_segments(outputs.segmentation, volume, labels)
    changed = logic.remeasure(volume, outputs)
    assert changed == [1]
    rows_after = [row_values(table, r) for r in range(3)]
    assert rows_after[0] == rows_before[0] and rows_after[2] == rows_before[2]
    assert np.isnan(rows_after[1]["left_foramen_width_mm"])
    assert rows_after[1]["canal_ap_mm"] < rows_before[1]["canal_ap_mm"] - 3.0
    assert (1, "left_foramen_width_mm") not in outputs.rulers
    assert count(context.scene, "vtkMRMLMarkupsLineNode") == len(outputs.rulers)
    assert items_without_node(context.scene) == []  # the dropped ruler's item went with it
    assert outputs.rulers[(1, "canal_ap_mm")].GetLineLengthWorld() == pytest.approx(rows_after[1]["canal_ap_mm"])
    assert logic.remeasure(volume, outputs) == []


def test_foramina_redrawn_on_each_other_s_sides_are_measured_as_named_with_a_warning_until_drawn_back(context,
                                                                                                       volume):
    logic, outputs = measure(context, volume)
    labels = logic.labels_of(outputs.segmentation, volume)
    swapped = with_foramina_swapped(labels)
    swapped[0] = labels[0]  # slice 0 left as measured
    logic._write_segments(outputs.segmentation, volume, swapped)
    assert logic.remeasure(volume, outputs) == [1, 2]
    [warning] = warnings_of(outputs.table)
    assert warning.startswith("the left foramen lies on the patient's right of the right foramen on 2 of the 3 slices")
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.remeasure(volume, outputs) == [1, 2] and warnings_of(outputs.table) == []


def test_remeasure_places_a_deleted_ruler_again_and_leaves_its_row_alone(context, volume):
    logic, outputs = measure(context, volume)
    table, placed = outputs.table, dict(outputs.rulers)
    ends = {key: [node.GetNthControlPointPositionWorld(n) for n in range(2)] for key, node in placed.items()}
    logic._remove(placed[(0, "canal_ap_mm")])  # deleted in the data tree
    placed[(2, "canal_transverse_mm")].RemoveNthControlPoint(1)  # one point deleted in a slice view
    assert table.SetCellText(row_of(table, 0), TABLE_COLUMNS.index("canal_ap_mm"), "6.5")  # a value typed
    rows_before = [row_values(table, r) for r in range(3)]
    lines_before = count(context.scene, "vtkMRMLMarkupsLineNode")
    assert logic.remeasure(volume, outputs) == []  # no segment changed: no row is measured again
    assert [row_values(table, r) for r in range(3)] == rows_before
    assert count(context.scene, "vtkMRMLMarkupsLineNode") == lines_before + 1
    assert outputs.rulers[(2, "canal_transverse_mm")] is placed[(2, "canal_transverse_mm")]  # the same node
    for key, node in logic.find_outputs(volume).rulers.items():  # every ruler back where Measure placed it
        assert [node.GetNthControlPointPositionWorld(n) for n in range(2)] == [pytest.approx(p) for p in ends[key]]
    assert logic.find_outputs(volume).rulers.keys() == placed.keys() and items_without_node(context.scene) == []
    moved = move_end_halfway(outputs.rulers[(0, "canal_ap_mm")])  # and the new node is watched
    assert row_values(table, row_of(table, 0))["canal_ap_mm"] == pytest.approx(moved)


def test_measure_and_remeasure_change_their_nodes_in_one_batch_so_slicer_updates_its_views_once(context, volume):
    scene, changes, batches = context.scene, [], []
    for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent):
        scene.AddObserver(event, lambda caller, event: changes.append(scene.IsBatchProcessing()))
    scene.AddObserver(scene.EndBatchProcessEvent, lambda caller, event: batches.append(event))
    logic, outputs = measure(context, volume)
    assert len(batches) == 1 and len(changes) > len(outputs.rulers) and all(changes)
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[labels == 2] = 0  # every left foramen erased: a ruler removed on each slice
    logic._write_segments(outputs.segmentation, volume, labels)
    changes.clear()
    assert logic.remeasure(volume, outputs) == [0, 1, 2]
    assert len(batches) == 2 and not any(name == "left_foramen_width_mm" for _, name in outputs.rulers)
    assert changes.count(True) == 3  # the three rulers removed (the other changes: labelmaps read and dropped)


def test_the_slices_edited_by_hand_are_known_until_measured_again(context, volume):
    logic, outputs = measure(context, volume)
    assert logic.edited_slices(volume) == []
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[1][labels[1] == 2] = 0  # the left foramen erased on slice 1
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.edited_slices(volume) == [1]
    assert logic.remeasure(volume, outputs) == [1] and logic.edited_slices(volume) == [1]  # measured, still the user's
    measure(context, volume)  # the networks' masks again: the edits are gone
    assert logic.edited_slices(volume) == []
    volume.SetSpacing(0.5, 0.5, 4.0)
    assert logic.edited_slices(volume) == []  # results of another grid: nothing of the user's to keep
    assert logic.edited_slices(add_volume(context.scene, np.zeros((2, 8, 8)), np.eye(4), "not measured")) == []


def test_remeasure_and_export_refuse_a_volume_whose_grid_changed_since_measure(context, volume, tmp_path):
    logic, outputs = measure(context, volume)
    before = [row_values(outputs.table, row) for row in range(3)]
    volume.SetSpacing(0.5, 0.5, 4.0)  # e.g. the pixel size of a picture set in the Volumes module
    with pytest.raises(ValueError, match="its voxel grid .* changed since it was measured.*Measure it again"):
        logic.remeasure(volume, outputs)
    with pytest.raises(ValueError, match="its voxel grid .* changed since it was measured"):
        logic.export(outputs, tmp_path / "export", "patient")
    assert not (tmp_path / "export").exists()
    assert [row_values(outputs.table, row) for row in range(3)] == before
    outputs = measure_volume_node(logic, volume, ThresholdSegmenter())
    assert row_values(outputs.table, 0)["canal_ap_mm"] < before[0]["canal_ap_mm"] - 1.5  # the smaller pixels
    assert logic.remeasure(volume, outputs) == []


def test_a_segment_deleted_in_the_segment_editor_is_an_absent_structure_and_one_drawn_again_is_found_by_name(
        context, volume, tmp_path):
    logic, outputs = measure(context, volume)
    before = logic.labels_of(outputs.segmentation, volume)
    contents = outputs.segmentation.GetSegmentation()
    contents.RemoveSegment("LeftNeuralForamen")
    assert logic.remeasure(volume, outputs) == [0, 1, 2]
    assert all(math.isnan(row_values(outputs.table, row)["left_foramen_width_mm"]) for row in range(3))
    assert not any(name == "left_foramen_width_mm" for _, name in outputs.rulers)
    assert logic.export(outputs, tmp_path / "export", "patient")["report"].exists()
    contents.RemoveSegment("SpinalCanal")  # drawn again as a new segment of that name, typed in lower case
    contents.AddSegment(add_segment_of_its_own(context, volume, "spinal canal", before == 1), "Segment_1")
    assert np.array_equal(logic.labels_of(outputs.segmentation, volume), np.where(before == 2, 0, before))
    assert logic.remeasure(volume, outputs) == []  # the same masks as before
    measure(context, volume)  # measured again: the segment drawn again is the canal's, the left foramen's is back
    names = sorted(contents.GetNthSegment(n).GetName() for n in range(contents.GetNumberOfSegments()))
    assert names == sorted(["spinal canal", *(name for _, _, name, *_ in SEGMENTS[1:])])  # the user's name kept
    assert np.array_equal(logic.labels_of(outputs.segmentation, volume), before)


def test_a_level_typed_into_the_table_stays_through_remeasure_and_measure_and_is_named_and_exported(
        context, volume, tmp_path):
    logic, outputs = measure(context, volume)
    levels = outputs.table.GetTable().GetColumnByName("level")
    assert [levels.GetValue(r) for r in range(3)] == [""] * 3
    narrowest = logic.worst_findings(outputs.table)["canal_ap_mm"].slice_index
    levels.SetValue(row_of(outputs.table, narrowest), " L4-L5 ")  # what the user types into the cell
    assert logic.worst_findings(outputs.table)["canal_ap_mm"].level == "L4-L5"
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[narrowest][labels[narrowest] == 2] = 0  # the user erases that slice's left foramen
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.remeasure(volume, outputs) == [narrowest]
    again = measure_volume_node(logic, volume, ThresholdSegmenter())
    assert again.table is outputs.table
    named = [outputs.table.GetTable().GetColumnByName("level").GetValue(r) for r in range(3)]
    assert named == ["L4-L5" if r == narrowest else "" for r in range(3)]
    assert logic.worst_findings(outputs.table)["canal_ap_mm"].level == "L4-L5"
    exported = logic.export(outputs, tmp_path, "patient")
    with open(exported["table"], newline="") as handle:
        assert [row["level"] for row in csv.DictReader(handle)] == named
    with open(exported["levels"], newline="") as handle:
        assert [(row["level"], row["slices"]) for row in csv.DictReader(handle)] == [("L4-L5", str(narrowest))]


def test_levels_named_in_one_line_fill_the_level_column_and_group_the_findings(context, volume):
    from SpinalStenosisLib.level_names import parse_levels

    logic, outputs = measure(context, volume)
    logic.name_levels(outputs.table, parse_levels("0-1=L4-L5, 2=L5-S1"))
    column = outputs.table.GetTable().GetColumnByName("level")
    assert [column.GetValue(r) for r in range(3)] == ["L4-L5", "L4-L5", "L5-S1"]
    assert list(logic.worst_findings_by_level(outputs.table)) == ["L4-L5", "L5-S1"]
    for wrong, why in (("3=S1", "levels name slice 3, but the table's slices are 0 to 2"),
                       ("block-1=L4-L5", "each angled block of a DICOM series is a volume of its own")):
        with pytest.raises(ValueError, match=why):
            logic.name_levels(outputs.table, parse_levels(wrong))
    assert [column.GetValue(r) for r in range(3)] == ["L4-L5", "L4-L5", "L5-S1"]  # a refused line changes nothing
    assert region_notes(outputs.table) == []
    measure_volume_node(logic, volume, ThresholdSegmenter())
    column = outputs.table.GetTable().GetColumnByName("level")  # the table is filled again
    assert [column.GetValue(r) for r in range(3)] == ["L4-L5", "L4-L5", "L5-S1"]  # kept through Measure again
    logic.name_levels(outputs.table, parse_levels("2=C5-C6"))
    assert region_notes(outputs.table) == ["level C5-C6 is cervical, in a study graded as lumbar: graded with the "
                                           "cervical cut-offs; check the level's name"]
    column = outputs.table.GetTable().GetColumnByName("level")
    column.SetValue(1, "L9")  # typed into the table's cell
    assert region_notes(outputs.table)[0] == "level L9 names L9, which no spine has"


def test_levels_the_volume_names_fill_the_table_and_a_typed_one_wins(context, volume):
    volume.SetAttribute(LEVELS_ATTRIBUTE, json.dumps({"0": "L3-L4", "2": "L4-L5"}))
    logic, outputs = measure(context, volume)

    def levels():
        return [outputs.table.GetTable().GetColumnByName("level").GetValue(r) for r in range(3)]

    assert levels() == ["L3-L4", "", "L4-L5"]
    outputs.table.GetTable().GetColumnByName("level").SetValue(row_of(outputs.table, 2), "L5-S1")
    measure_volume_node(logic, volume, ThresholdSegmenter())
    assert levels() == ["L3-L4", "", "L5-S1"]
    by_level = logic.worst_findings_by_level(outputs.table)
    assert {level: {f.slice_index for f in findings.values()} for level, findings in by_level.items()} == {
        "L3-L4": {0}, "L5-S1": {2}}
    outputs.table.GetTable().GetColumnByName("level").SetValue(1, "L3-L4")  # a range of slices named one level
    ap_mm = [outputs.table.GetTable().GetColumnByName("canal_ap_mm").GetValue(r) for r in range(2)]
    assert logic.worst_findings_by_level(outputs.table)["L3-L4"]["canal_ap_mm"].value == min(ap_mm)


def test_an_unsure_canal_is_flagged_for_a_check_until_the_user_edits_it(context, volume, tmp_path):
    logic, outputs = measure(context, volume, ThresholdSegmenter(canal_probability=0.9))
    table = outputs.table.GetTable()

    def column(name):
        return [table.GetColumnByName(name).GetValue(r) for r in range(3)]

    assert column("canal_confidence") == pytest.approx([0.9] * 3) and column("left_foramen_confidence") == [1.0] * 3
    assert column("check") == ["canal"] * 3 and to_check(outputs.table) == {0: "canal", 1: "canal", 2: "canal"}
    assert logic.narrowest_row(outputs.table) == int(np.argmin(column("canal_ap_mm")))  # all doubted: the narrowest
    assert logic.worst_findings(outputs.table)["canal_ap_mm"].to_check
    labels = logic.labels_of(outputs.segmentation, volume)
    rows, columns = np.nonzero(labels[1] == 1)  # the user looks at slice 1 and draws its canal 3 rows deeper
    labels[1][rows.min() - 3:rows.min(), columns.min():columns.max() + 1] = 1
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.remeasure(volume, outputs) == [1]
    assert column("canal_confidence") == pytest.approx([0.9, 1.0, 0.9])
    assert column("check") == ["canal", "", "canal"] and to_check(outputs.table) == {0: "canal", 2: "canal"}
    aps = column("canal_ap_mm")
    assert aps[1] > max(aps[0], aps[2]) and logic.narrowest_row(outputs.table) == 1  # the narrowest trusted canal
    narrowest = logic.worst_findings(outputs.table)["canal_ap_mm"]
    assert (narrowest.slice_index, narrowest.value, narrowest.to_check) == (1, pytest.approx(aps[1]), False)
    with open(logic.export(outputs, tmp_path, "patient")["table"], newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert [row["check"] for row in exported] == ["canal", "", "canal"]


@pytest.mark.parametrize("column_name, value", [("canal_edge_to_noise", 1.2), ("canal_off_axis_mm", 26.0)])
def test_a_canal_the_image_barely_shows_or_off_the_spine_s_axis_is_flagged_for_a_check_until_the_user_edits_it(
        context, volume, tmp_path, column_name, value):
    logic, outputs = measure(context, volume, ThresholdSegmenter(**{column_name: value}))
    table = outputs.table.GetTable()

    def column(name):
        return [table.GetColumnByName(name).GetValue(r) for r in range(3)]

    assert column("canal_confidence") == [1.0] * 3 and column(column_name) == pytest.approx([value] * 3)
    assert column("check") == ["canal"] * 3
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[1][labels[1] == 2] = 0  # the user looks at slice 1 and erases its left foramen
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.remeasure(volume, outputs) == [1]
    assert math.isnan(column(column_name)[1]) and column("check") == ["canal", "", "canal"]
    with open(logic.export(outputs, tmp_path, "patient")["table"], newline="") as handle:
        assert [row[column_name] for row in csv.DictReader(handle)] == [f"{value:.4f}", "nan", f"{value:.4f}"]


def test_a_canal_edited_into_two_lobes_stays_to_check(context, volume, tmp_path):
    logic, outputs = measure(context, volume)
    table = outputs.table.GetTable()

    def column(name):
        return [table.GetColumnByName(name).GetValue(r) for r in range(3)]

    assert all(0.9 < fill < 1.2 for fill in column("canal_area_to_chords")) and column("check") == ["", "", ""]
    labels = logic.labels_of(outputs.segmentation, volume)
    lobes = two_lobes(labels[1].shape, *np.argwhere(labels[1] == 1).mean(axis=0))  # about the canal's centre
    labels[1][labels[1] == 1] = 0
    labels[1][lobes & (labels[1] == 0)] = 1  # the user draws the canal as two lobes (say, a cyst beside the sac)
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.remeasure(volume, outputs) == [1]
    assert column("canal_area_to_chords")[1] >= MAX_AREA_TO_CHORDS and column("check") == ["", "canal", ""]
    with open(logic.export(outputs, tmp_path, "patient")["table"], newline="") as handle:
        assert [row["check"] for row in csv.DictReader(handle)] == ["", "canal", ""]


class RightForamenUnfound(ThresholdSegmenter):
    """ThresholdSegmenter that finds no right foramen, and the left one with a confidence below 1."""

    def segment(self, images, grids):
        results = super().segment(images, grids)
        for result in results:
            result.masks["right_foramen"] = np.zeros_like(result.masks["right_foramen"])
            result.masks["left_foramen"] = result.masks["left_foramen"] * 0.97
            result.native_labels[result.native_labels == 3] = 0
        return results


def test_a_foramen_found_on_no_slice_where_the_other_side_s_was_is_a_worst_finding_without_a_value(context, volume):
    logic, outputs = measure(context, volume, RightForamenUnfound())
    table = outputs.table.GetTable()
    assert [table.GetColumnByName("check").GetValue(r) for r in range(3)] == ["right foramen"] * 3
    unfound = logic.worst_findings(outputs.table)["right_foramen_width_mm"]
    assert (unfound.found, unfound.slice_index, unfound.grade, unfound.to_check) == (False, 0, "", True)
    assert "right foramen" in table.GetColumnByName("worst_findings").GetValue(0)
    drawn = logic.labels_of(outputs.segmentation, volume)
    drawn[0][drawn[0] == 2] = 0  # the user erases slice 0's left foramen: slices 1 and 2 stay as found
    logic._write_segments(outputs.segmentation, volume, drawn)
    assert logic.remeasure(volume, outputs) == [0]
    assert logic.worst_findings(outputs.table)["right_foramen_width_mm"].slice_index == 1


class NoForamina(ThresholdSegmenter):
    """ThresholdSegmenter that finds no foramen on either side."""

    def segment(self, images, grids):
        results = super().segment(images, grids)
        for result in results:
            for side in ("left_foramen", "right_foramen"):
                result.masks[side] = np.zeros_like(result.masks[side])
            result.native_labels[result.native_labels >= 2] = 0
        return results


def test_a_disc_level_where_neither_foramen_was_found_on_any_slice_names_both_not_found_on_its_first(context, volume):
    logic, outputs = measure(context, volume, NoForamina(canal_probability=0.97))
    table = outputs.table.GetTable()
    assert [table.GetColumnByName("check").GetValue(r) for r in range(3)] == [""] * 3  # as at a pedicle
    assert not any(name.endswith("foramen_width_mm") for name in logic.worst_findings(outputs.table))
    logic.name_levels(outputs.table, parse_levels("0-2=L4-L5"))
    level = logic.worst_findings_by_level(outputs.table)["L4-L5"]
    assert [(f.found, f.slice_index, f.to_check) for name, f in level.items() if name.endswith("foramen_width_mm")
            ] == [(False, 0, True)] * 2
    assert "right foramen, left foramen" in table.GetColumnByName("worst_findings").GetValue(0)
    drawn = logic.labels_of(outputs.segmentation, volume)
    drawn[0][tuple(np.argwhere(drawn[0] == 1)[0])] = 0  # an edit of slice 0: its absent foramina, the user's call
    logic._write_segments(outputs.segmentation, volume, drawn)
    assert logic.remeasure(volume, outputs) == [0]
    assert logic.worst_findings_by_level(outputs.table)["L4-L5"]["left_foramen_width_mm"].slice_index == 1
    logic.name_levels(outputs.table, parse_levels("0-2=L4"))  # a vertebra: no disc whose foramina to look for
    assert not any(name.endswith("foramen_width_mm") for name in logic.worst_findings(outputs.table))


@pytest.mark.parametrize("image_ends", ["with the array", "in padding zeros"])
def test_a_foramen_the_edge_of_the_image_cuts_is_flagged_for_a_check_until_the_user_edits_it_off_the_edge(
        context, tmp_path, image_ends):
    image, _, geometry = phantom_arrays()
    columns = 78  # the image ends in the left foramina (columns run patient right → left)
    if image_ends == "with the array":
        volume = add_volume(context.scene, np.ascontiguousarray(image[:, :, :columns]),
                            VolumeGeometry((columns, *geometry.size_ijk[1:]), geometry.ijk_to_ras).ijk_to_ras,
                            "cut off")
    else:  # as a reslice or a scanner leaves beyond the imaged area
        image[:, :, columns:] = 0.0
        volume = add_volume(context.scene, image, geometry.ijk_to_ras, "cut off")
    logic, outputs = measure(context, volume)
    table = outputs.table.GetTable()

    def column(name):
        return [table.GetColumnByName(name).GetValue(r) for r in range(3)]

    assert column("cut_by_field_of_view") == ["left foramen"] * 3 and column("check") == ["left foramen"] * 3
    assert all(width > 0 for width in column("left_foramen_width_mm"))  # the part in view is measured
    assert [m.cut_by_field_of_view for m in measurements_of(outputs.table)] == [{"left_foramen"}] * 3
    assert logic.worst_findings(outputs.table)["left_foramen_width_mm"].to_check
    labels = logic.labels_of(outputs.segmentation, volume)
    edge = labels[1][:, columns - 3:columns]
    edge[edge == 2] = 0  # the user erases slice 1's foramen at the edge
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.remeasure(volume, outputs) == [1]
    assert column("cut_by_field_of_view") == ["left foramen", "", "left foramen"]
    assert column("check") == ["left foramen", "", "left foramen"]
    with open(logic.export(outputs, tmp_path, "cut off")["table"], newline="") as handle:
        assert [row["cut_by_field_of_view"] for row in csv.DictReader(handle)] == column("cut_by_field_of_view")


def test_show_row_centres_the_slice_views_on_its_canal_or_on_its_slice(context, volume):
    moved, to_world = rigid_transform_node(context.scene, 20.0, (30.0, -12.0, 5.0))
    volume.SetAndObserveTransformNodeID(moved.GetID())
    logic, outputs = measure(context, volume)
    views = [context.scene.AddNewNodeByClass("vtkMRMLSliceNode") for _ in range(2)]

    def view_centres():
        return [np.array([view.GetSliceToRAS().GetElement(r, 3) for r in range(3)]) for view in views]

    aps = [row_values(outputs.table, row)["canal_ap_mm"] for row in range(3)]
    assert logic.narrowest_row(outputs.table) == int(np.argmin(aps))
    ruler = outputs.rulers[(1, "canal_ap_mm")]
    middle = np.mean([ruler.GetNthControlPointPositionWorld(i) for i in range(2)], axis=0)
    assert logic.show_row(volume, outputs, row_of(outputs.table, 1)) == pytest.approx(middle)
    assert all(centre == pytest.approx(middle) for centre in view_centres())
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[2][labels[2] == 1] = 0  # the user erases the canal of slice 2
    logic._write_segments(outputs.segmentation, volume, labels)
    logic.remeasure(volume, outputs)
    size = volume.GetImageData().GetDimensions()
    slice_middle = to_world @ geometry_of(volume).ijk_to_ras @ [(size[0] - 1) / 2, (size[1] - 1) / 2, 2.0, 1.0]
    assert logic.show_row(volume, outputs, row_of(outputs.table, 2)) == pytest.approx(slice_middle[:3])
    assert all(centre == pytest.approx(slice_middle[:3]) for centre in view_centres())


def test_a_volume_loaded_from_dicom_names_its_region_from_its_header(volume):
    headers = {("1.2.3", "0018,0015"): "SPINE", ("1.2.3", "0008,103E"): "t2_tse_tra C-SPINE",
               ("1.2.4", "0018,0015"): "LSPINE"}

    def dicom_value(uid, tag):
        return headers.get((uid, tag), "")

    assert named_region_of_node(volume, dicom_value) is None  # not loaded from DICOM
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.3 1.2.4")  # as Slicer's DICOM reader sets it
    assert named_region_of_node(volume, dicom_value) == "cervical"  # the first instance's header


def grades(table, column="canal_ap_grade"):
    return [table.GetTable().GetColumnByName(column).GetValue(row) for row in range(table.GetTable().GetNumberOfRows())]


def cutoff_lines(scene, chart) -> dict[str, float]:
    """The height of each horizontal line the chart draws from its cut-off table, by column."""
    lines = {}
    for n in range(chart.GetNumberOfPlotSeriesNodes()):
        series = chart.GetNthPlotSeriesNode(n)
        column = series.GetTableNode().GetTable().GetColumnByName(series.GetYColumnName())
        if series.GetTableNode().GetAttribute("SpinalStenosis.role") == "cutoffs":
            [lines[series.GetYColumnName()]] = {column.GetValue(row) for row in range(column.GetNumberOfValues())}
    return lines


def test_the_chart_plots_the_canal_ap_of_every_row_and_follows_a_ruler_moved_by_hand(context, volume):
    logic, outputs = measure(context, volume)
    [profile] = [outputs.chart.GetNthPlotSeriesNode(n) for n in range(outputs.chart.GetNumberOfPlotSeriesNodes())
                 if outputs.chart.GetNthPlotSeriesNode(n).GetTableNode() is outputs.table]
    assert (profile.GetXColumnName(), profile.GetYColumnName()) == ("slice_index", "canal_ap_mm")
    cutoffs = next(outputs.chart.GetNthPlotSeriesNode(n).GetTableNode() for n in range(3)
                   if outputs.chart.GetNthPlotSeriesNode(n) is not profile)
    rows = outputs.table.GetTable().GetNumberOfRows()
    slices = cutoffs.GetTable().GetColumnByName("slice_index")
    assert [slices.GetValue(0), slices.GetValue(1)] == [0, rows - 1]  # the lines span the stack
    assert cutoffs.GetHideFromEditors() and logic.find_outputs(volume).chart is outputs.chart
    key = next(k for k in outputs.rulers if k[1] == "canal_ap_mm")
    length = move_end_halfway(outputs.rulers[key])
    plotted = outputs.table.GetTable().GetColumnByName(profile.GetYColumnName()).GetValue(row_of(
        outputs.table, key[0]))
    assert plotted == pytest.approx(length, abs=0.01)  # the series reads the table the ruler updated


def test_changing_the_region_regrades_every_row_and_remeasure_keeps_them_alike(context):
    from SpinalStenosisLib.grading import grade

    image, _, geometry = phantom_arrays()
    volume = add_volume(context.scene, image, geometry.ijk_to_ras, "upright")
    logic, outputs = measure(context, volume)
    rows = range(outputs.table.GetTable().GetNumberOfRows())
    aps = [row_values(outputs.table, row)["canal_ap_mm"] for row in rows]
    assert all(10.0 <= ap < 12.0 for ap in aps)  # relative stenosis in the lumbar spine, normal in the neck
    assert grades(outputs.table) == ["relative stenosis"] * len(aps)
    assert not logic.follow_region(outputs.table)  # graded with the region it has
    assert cutoff_lines(context.scene, outputs.chart) == {"absolute": 10.0, "relative": 12.0}
    logic.region = "cervical"
    assert logic.follow_region(outputs.table)
    assert grades(outputs.table) == ["normal"] * len(aps)
    assert cutoff_lines(context.scene, outputs.chart) == {"absolute": 10.0, "relative": 10.0}  # no relative band
    assert outputs.table.GetAttribute("SpinalStenosis.region") == "cervical"
    logic.region = "thoracic"
    assert logic.follow_region(outputs.table) and grades(outputs.table) == [""] * len(aps)
    assert grades(outputs.table, "left_foramen_grade") != [""] * len(aps)  # the foramina are graded still
    cutoffs = next(outputs.chart.GetNthPlotSeriesNode(n).GetTableNode() for n in range(3)
                   if outputs.chart.GetNthPlotSeriesNode(n).GetTableNode() is not outputs.table).GetTable()
    assert all(math.isnan(cutoffs.GetColumnByName(line).GetValue(row)) for line in ("absolute", "relative")
               for row in range(2))  # no cut-off line is drawn
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[1][labels[1] == 2] = 0  # the left foramen of slice 1 erased: an edit of that slice only
    logic._write_segments(outputs.segmentation, volume, labels)
    logic.region = "lumbar"
    assert logic.remeasure(volume, outputs) == [1]
    expected = [grade(row_values(outputs.table, row), "lumbar")["canal_ap_grade"] for row in rows]
    assert grades(outputs.table) == expected == ["relative stenosis"] * len(aps)  # the unedited rows too


def test_a_whole_neck_graded_as_lumbar_is_noted_until_the_region_is_cervical(context):
    from test_body_region import body_slice

    from SpinalStenosisLib.synth.dataset import slice_geometry

    image, canal, grid = body_slice(130.0, 110.0, 200.0)
    neck = np.where(canal, 900.0, np.where(image > 100.0, 250.0, 5.0))  # canal, tissue, air for ThresholdSegmenter
    volume = add_volume(context.scene, np.stack([neck] * 3), slice_geometry(grid, 4.0, 3).ijk_to_ras, "neck")
    logic, outputs = measure(context, volume)
    notes = region_notes(outputs.table)
    assert len(notes) == 1 and notes[0].startswith("the image shows a whole neck, and the table is graded with the "
                                                   "lumbar cut-offs: choose the cervical Region")
    logic.region = "thoracic"
    assert logic.follow_region(outputs.table) and region_notes(outputs.table)[0].startswith(
        "the image shows a whole neck, and the table is graded as thoracic, its canal not graded: choose the cervical")
    logic.region = "cervical"
    assert logic.follow_region(outputs.table) and region_notes(outputs.table) == []
    cropped = add_volume(context.scene, np.stack([neck[60:190, 60:190]] * 3), slice_geometry(grid, 4.0, 3).ijk_to_ras,
                         "cropped neck")  # the body cut by the field of view: nothing to note
    _, other_outputs = measure(context, cropped)
    assert region_notes(other_outputs.table) == []


class SacWithWhatItHolds(ThresholdSegmenter):
    """ThresholdSegmenter whose canal is the bright sac with what it encloses (the cord)."""

    def segment(self, images, grids):
        from scipy import ndimage

        results = super().segment(images, grids)
        for result in results:
            sac = ndimage.binary_fill_holes(result.native_labels == 1)
            result.native_labels[sac] = 1
            result.masks["canal"] = sac * 1.0
        return results


def test_a_sac_holding_the_cord_graded_as_lumbar_is_noted(context):
    from test_body_region import cord, sac_slice

    from SpinalStenosisLib.synth.dataset import slice_geometry

    image, sac, grid = sac_slice(cord, dark=100.0)  # a field cropped to the spine: no neck to tell
    image = np.where(image > 700.0, 900.0, np.where(sac, 100.0, 250.0))  # CSF, cord, tissue for ThresholdSegmenter
    volume = add_volume(context.scene, np.stack([image] * 3), slice_geometry(grid, 4.0, 3).ijk_to_ras, "neck")
    logic, outputs = measure(context, volume, SacWithWhatItHolds())
    assert region_notes(outputs.table) == [
        "the image shows the spinal cord inside the sac, and the table is graded with the lumbar cut-offs: choose the "
        "cervical Region to grade it as the command line does"]
    logic.region = "cervical"
    assert logic.follow_region(outputs.table) and region_notes(outputs.table) == []


def test_moving_a_ruler_by_hand_updates_its_row(context, volume):
    logic, outputs = measure(context, volume)
    length = move_end_halfway(outputs.rulers[(2, "right_foramen_width_mm")])
    row = row_of(outputs.table, 2)
    assert row_values(outputs.table, row)["right_foramen_width_mm"] == pytest.approx(length)
    assert outputs.table.GetTable().GetColumnByName("right_foramen_grade").GetValue(row) == "stenosis"


def test_a_ruler_dragged_in_a_slice_view_updates_its_row_once_when_the_drag_ends(context, volume):
    logic, outputs = measure(context, volume)
    ruler, row = outputs.rulers[(2, "canal_ap_mm")], row_of(outputs.table, 2)
    before, table_modified = row_values(outputs.table, row)["canal_ap_mm"], []
    outputs.table.AddObserver("ModifiedEvent", lambda node, event: table_modified.append(event))
    ruler.InvokeEvent(ruler.PointStartInteractionEvent)  # what Slicer's markups widget fires as a drag starts
    for _ in range(3):  # mouse moves, each a PointModifiedEvent
        length = move_end_halfway(ruler)
    assert row_values(outputs.table, row)["canal_ap_mm"] == before and not table_modified
    ruler.InvokeEvent(ruler.PointEndInteractionEvent)  # the mouse button released
    assert row_values(outputs.table, row)["canal_ap_mm"] == pytest.approx(length) and len(table_modified) == 1
    length = move_end_halfway(ruler)  # then from the Python console: at once
    assert row_values(outputs.table, row)["canal_ap_mm"] == pytest.approx(length)


def test_a_ruler_moved_while_another_volume_is_graded_keeps_its_own_tables_region(context):
    image, _, geometry = phantom_arrays()
    lumbar = add_volume(context.scene, image, geometry.ijk_to_ras, "lumbar series")
    cervical = add_volume(context.scene, image, geometry.ijk_to_ras, "cervical series")
    logic, outputs = measure(context, lumbar)
    assert grades(outputs.table) == ["relative stenosis"] * 3  # lumbar cut-offs
    logic.region = "cervical"  # the module now shows the other volume, graded as cervical
    measure_volume_node(logic, cervical, ThresholdSegmenter())
    assert logic.graded_region(cervical) == "cervical" and logic.graded_region(lumbar) == "lumbar"
    length = move_end_halfway(outputs.rulers[(2, "canal_ap_mm")])  # the lumbar series' ruler, in a slice view
    assert row_values(outputs.table, row_of(outputs.table, 2))["canal_ap_mm"] == pytest.approx(length)
    assert grades(outputs.table) == ["relative stenosis"] * 2 + ["absolute stenosis"]  # still the lumbar cut-offs
    assert logic.graded_region(lumbar) == "lumbar"
    assert logic.worst_findings(outputs.table)["canal_ap_mm"].slice_index == 2
    logic.region = "lumbar"
    assert not logic.follow_region(outputs.table)  # nothing to regrade when the module shows it again
    assert logic.graded_region(add_volume(context.scene, image, geometry.ijk_to_ras, "not measured")) is None


def test_a_ruler_placed_again_by_remeasure_still_updates_its_row_when_moved(context, volume):
    logic, outputs = measure(context, volume)
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[1][:, :labels.shape[2] // 2][labels[1][:, :labels.shape[2] // 2] == 1] = 0  # half the canal erased
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.remeasure(volume, outputs) == [1]
    row = row_of(outputs.table, 1)
    length = move_end_halfway(outputs.rulers[(1, "canal_ap_mm")])
    assert row_values(outputs.table, row)["canal_ap_mm"] == pytest.approx(length)


def test_a_ruler_measured_again_by_another_logic_is_watched_once_even_after_the_first_is_gone(context, volume, capfd):
    measure(context, volume)  # e.g. a logic made in the Python console, then dropped
    gc.collect()
    logic, outputs = measure(context, volume)
    gc.collect()
    capfd.readouterr()
    length = move_end_halfway(outputs.rulers[(2, "right_foramen_width_mm")])
    row = row_of(outputs.table, 2)
    assert row_values(outputs.table, row)["right_foramen_width_mm"] == pytest.approx(length)
    assert "Error" not in capfd.readouterr().err  # no callback of the dropped logic's was called


def test_after_stop_watching_a_ruler_moved_by_hand_leaves_its_row_alone(context, volume):
    logic, outputs = measure(context, volume)
    row = row_of(outputs.table, 2)
    before = row_values(outputs.table, row)["right_foramen_width_mm"]
    logic.stop_watching()
    move_end_halfway(outputs.rulers[(2, "right_foramen_width_mm")])
    assert row_values(outputs.table, row)["right_foramen_width_mm"] == before


def test_a_value_typed_into_the_table_is_graded_again_and_an_observer_sees_only_whole_tables(context, volume):
    logic, outputs = measure(context, volume)
    table, seen = outputs.table, []

    def observe(node, event):  # what the module's findings line does on each change of the table
        seen.append((has_columns(node), len(logic.worst_findings(node))))

    table.AddObserver("ModifiedEvent", observe)
    narrowest = logic.worst_findings(table)["canal_ap_mm"]
    other = next(s for s in range(3) if s != narrowest.slice_index)
    row, column = row_of(table, other), TABLE_COLUMNS.index("canal_ap_mm")
    ruler_before = outputs.rulers[(other, "canal_ap_mm")].GetLineLengthWorld()
    assert table.SetCellText(row, column, "6.5")  # what the table view does with a typed value
    assert grades(table)[row] == "absolute stenosis"
    assert logic.worst_findings(table)["canal_ap_mm"].slice_index == other
    assert "canal AP" in table.GetTable().GetColumnByName("worst_findings").GetValue(row)
    assert outputs.rulers[(other, "canal_ap_mm")].GetLineLengthWorld() == ruler_before  # the ruler stays
    assert table.SetCellText(row, TABLE_COLUMNS.index("level"), "L4-L5")
    assert logic.worst_findings_by_level(table)["L4-L5"]["canal_ap_mm"].value == 6.5
    table.SetCellText(row, column, "absent")  # text that is no number: the table keeps the cell's value
    assert row_values(table, row)["canal_ap_mm"] == 6.5
    for no_length in ("0", "-2"):  # no canal AP: the canal is absent there, as a NaN, never 0
        assert table.SetCellText(row, column, "6.5") and table.SetCellText(row, column, no_length)
        assert math.isnan(row_values(table, row)["canal_ap_mm"]) and grades(table)[row] == ""
        assert logic.worst_findings(table)["canal_ap_mm"].slice_index == narrowest.slice_index
    assert table.SetCellText(row, column, "6.5")
    events = len(seen)
    measure_volume_node(logic, volume, ThresholdSegmenter())  # measured again: the table is rebuilt
    assert len(seen) == events + 1  # one change, seen when the table is whole
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[other][labels[other] == 3] = 0
    logic._write_segments(outputs.segmentation, volume, labels)
    logic.remeasure(volume, outputs)
    logic.name_levels(table, {0: "L3-L4"})
    move_end_halfway(outputs.rulers[(narrowest.slice_index, "canal_ap_mm")])
    assert len(seen) == events + 4 and all(whole and found == 4 for whole, found in seen)


def test_a_ruler_typed_as_absent_is_hidden_and_left_out_of_the_export_until_a_value_comes_back(context, volume,
                                                                                                   tmp_path):
    logic, outputs = measure(context, volume)
    table, key = outputs.table, (1, "right_foramen_width_mm")
    ruler, hidden_by_user = outputs.rulers[key], outputs.rulers[(2, "canal_ap_mm")]
    hidden_by_user.GetDisplayNode().SetVisibility(False)
    row, column = row_of(table, 1), TABLE_COLUMNS.index("right_foramen_width_mm")

    def exported() -> set[str]:
        written = logic.export(outputs, tmp_path / "export", "patient")["rulers"].read_text(encoding="utf-8")
        return {line["name"] for line in json.loads(written)["markups"]}

    assert table.SetCellText(row, column, "0")  # no foramen there, says the user
    assert not ruler.GetDisplayNode().GetVisibility() and not hidden_by_user.GetDisplayNode().GetVisibility()
    assert exported() == {node.GetName() for node in outputs.rulers.values() if node is not ruler}
    assert table.SetCellText(row, TABLE_COLUMNS.index("canal_ap_mm"), "6.5")  # another cell: the ruler stays hidden
    assert not ruler.GetDisplayNode().GetVisibility()
    assert table.SetCellText(row, column, "3.5")  # a value typed back
    assert ruler.GetDisplayNode().GetVisibility() and not hidden_by_user.GetDisplayNode().GetVisibility()
    assert ruler.GetName() in exported()
    assert table.SetCellText(row, column, "0")
    logic.scene.RemoveNode(ruler)  # deleted too: Re-measure does not place it again, its value being absent
    assert logic.missing_rulers(outputs) == [] and logic.remeasure(volume, outputs) == []
    assert outputs.rulers[key].GetScene() is None
    labels = logic.labels_of(outputs.segmentation, volume)
    canal_row, canal_column = np.argwhere(labels[1] == 1)[0]
    labels[1][canal_row, canal_column] = 0  # slice 1 edited
    logic._write_segments(outputs.segmentation, volume, labels)
    assert logic.remeasure(volume, outputs) == [1]  # measured again: its ruler and value are the masks'
    assert outputs.rulers[key].GetDisplayNode().GetVisibility() and row_values(table, row)["right_foramen_width_mm"] > 0
    assert outputs.rulers[key].GetName() in exported()


def test_what_the_measurement_found_cannot_be_typed_over(context, volume):
    logic, outputs = measure(context, volume)
    table = outputs.table

    def locked():
        return [[table.GetCellText(row, TABLE_COLUMNS.index(column)) for column in LOCKED_COLUMNS] for row in range(3)]

    before = locked()
    for column in LOCKED_COLUMNS:  # a stray keystroke in the Slice cell would name another slice in the findings
        assert table.SetCellText(1, TABLE_COLUMNS.index(column), "7")
    assert locked() == before
    assert table.SetCellText(1, TABLE_COLUMNS.index("canal_ap_mm"), "6.5")  # a measurement is the user's to type
    assert row_values(table, 1)["canal_ap_mm"] == 6.5 and locked() == before
    length = move_end_halfway(outputs.rulers[(1, "canal_ap_mm")])  # the row still answers to its slice
    assert row_values(table, 1)["canal_ap_mm"] == pytest.approx(length)


def test_rows_added_or_deleted_and_columns_deleted_in_the_table_view_are_undone(context, volume, capfd):
    logic, outputs = measure(context, volume)
    table = outputs.table
    assert table.SetCellText(0, TABLE_COLUMNS.index("canal_ap_mm"), "6.5")  # typed: the user's, kept
    accepted = [row_values(table, row) for row in range(3)]
    table.RemoveRow(1)  # the table view's Delete row
    assert [row_values(table, row) for row in range(3)] == accepted
    table.AddEmptyRow()  # its Insert row
    assert table.GetNumberOfRows() == 3 and [row_values(table, row) for row in range(3)] == accepted
    table.RemoveColumn(TABLE_COLUMNS.index("canal_area_mm2"))  # its Delete column
    assert logic.find_outputs(volume) is not None and [row_values(table, row) for row in range(3)] == accepted
    assert grades(table)[0] == "absolute stenosis" and graded_with(table) == "lumbar"
    length = move_end_halfway(outputs.rulers[(1, "canal_ap_mm")])  # the row came back, and answers to its slice
    assert row_values(table, 1)["canal_ap_mm"] == pytest.approx(length)
    assert "Traceback" not in capfd.readouterr().err


def test_a_slice_named_at_a_thoracic_level_is_not_graded_with_the_lumbar_cut_offs(context, volume):
    logic, outputs = measure(context, volume)
    table = outputs.table
    narrowest = logic.worst_findings(table)["canal_ap_mm"].slice_index
    row = row_of(table, narrowest)
    logic.name_levels(table, {narrowest: "T12-L1"})
    assert grades(table)[row] == grades(table, "canal_area_grade")[row] == ""
    assert logic.worst_findings(table)["canal_ap_mm"].slice_index != narrowest
    assert "canal AP" not in table.GetTable().GetColumnByName("worst_findings").GetValue(row)
    assert table.SetCellText(row, TABLE_COLUMNS.index("level"), "L1-L2")  # typed over: graded again
    assert grades(table)[row] != "" and logic.worst_findings(table)["canal_ap_mm"].slice_index == narrowest


def test_export_names_its_files_after_the_volume_as_any_system_allows(context, volume, tmp_path):
    logic, outputs = measure(context, volume)
    paths = logic.export(outputs, tmp_path / "export", "3: T2 AX L4/5")  # Slicer's name for a DICOM series
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == sorted(
        f"3_T2_AX_L4_5{suffix}" for suffix in (".seg.nrrd", "_rulers.mrk.json", "_measurements.csv", "_levels.csv",
                                               "_report.png"))
    assert all(path.parent == tmp_path / "export" for path in paths.values())


def test_export_round_trips(context, volume, tmp_path):
    from PIL import Image

    from SpinalStenosisLib.report import MARGIN_PX, VIEW_PX

    logic, outputs = measure(context, volume)
    paths = logic.export(outputs, tmp_path / "export", "patient")
    assert Image.open(paths["report"]).width == 3 * (VIEW_PX + 2 * MARGIN_PX)  # a panel per slice of the table
    other = new_scene()
    loaded = other.segmentations_logic.LoadSegmentationFromFile(str(paths["segmentation"]), False, "reloaded")
    names = {loaded.GetSegmentation().GetNthSegment(i).GetName() for i in range(3)}
    assert names == {name for _, _, name, *_ in SEGMENTS}
    other.markups_logic.LoadMarkups(str(paths["rulers"]), "rulers")
    lines = other.scene.GetNodesByClass("vtkMRMLMarkupsLineNode")
    lengths = {lines.GetItemAsObject(i).GetName(): lines.GetItemAsObject(i).GetLineLengthWorld()
               for i in range(lines.GetNumberOfItems())}
    assert lengths.keys() == {node.GetName() for node in outputs.rulers.values()}
    for node in outputs.rulers.values():
        assert lengths[node.GetName()] == pytest.approx(node.GetLineLengthWorld(), abs=1e-4)
    rows = list(csv.DictReader(open(paths["table"], encoding="utf-8")))
    assert len(rows) == 3
    flagged = [label for r in rows for label in r["worst_findings"].split(", ") if label]
    assert sorted(flagged) == ["canal AP", "dural-sac area", "left foramen", "right foramen"]  # each on one row
    assert "left foramen" in rows[0]["worst_findings"]  # the phantom's left foramen is narrowest on slice 0
    move_end_halfway(outputs.rulers[(2, "right_foramen_width_mm")])  # as the user may before exporting
    moved = logic.export(outputs, tmp_path / "moved", "patient")["report"]
    assert not np.array_equal(np.asarray(Image.open(moved)), np.asarray(Image.open(paths["report"])))
    half_deleted = outputs.rulers[(2, "right_foramen_width_mm")]
    half_deleted.RemoveNthControlPoint(1)  # the user deleted one of its points
    written = json.loads(logic.export(outputs, tmp_path / "half", "patient")["rulers"].read_text(encoding="utf-8"))
    assert {line["name"] for line in written["markups"]} == {node.GetName() for node in outputs.rulers.values()
                                                            if node is not half_deleted}


def test_export_writes_all_its_files_or_none(context, volume, tmp_path, monkeypatch):
    from SpinalStenosisLib.outputs import OutputError

    logic, outputs = measure(context, volume)
    folder = tmp_path / "export"
    (folder / "mine.txt").parent.mkdir()
    (folder / "mine.txt").write_text("the user's")
    paths = logic.export(outputs, folder, "patient")
    earlier = {path: path.read_bytes() for path in paths.values()}
    move_end_halfway(outputs.rulers[(2, "right_foramen_width_mm")])  # the export would differ now

    def failing_report(*args):
        raise MemoryError("no memory for the report")

    monkeypatch.setattr(logic, "_write_report", failing_report)  # the last file written
    with pytest.raises(MemoryError):
        logic.export(outputs, folder, "patient")
    assert {path: path.read_bytes() for path in paths.values()} == earlier  # not one of them replaced
    assert sorted(p.name for p in folder.iterdir()) == sorted(["mine.txt", *(p.name for p in paths.values())])
    with pytest.raises(OutputError, match=r"mine.txt: cannot be written \(File exists\)"):
        logic.export(outputs, folder / "mine.txt", "patient")  # a file where the folder must be


def test_a_segmentation_file_edited_in_slicer_gives_the_masks_by_segment_id_or_name(context, volume, tmp_path):
    from SpinalStenosisLib.volume_io import InputError, read_labels

    logic, outputs = measure(context, volume)
    expected = logic.labels_of(outputs.segmentation, volume)
    contents = outputs.segmentation.GetSegmentation()
    # the canal drawn again as a new segment of that name (another ID, a layer of its own), and a disc segment
    # overlapping everything in another layer, as the Segment Editor may leave them
    contents.RemoveSegment("SpinalCanal")
    contents.AddSegment(add_segment_of_its_own(context, volume, "Spinal canal", expected == 1), "Segment_1")
    contents.AddSegment(add_segment_of_its_own(context, volume, "Disc", expected >= 0), "Disc")
    assert contents.GetNumberOfLayers() == 3
    storage, path = outputs.segmentation.CreateDefaultStorageNode(), tmp_path / "edited.seg.nrrd"
    storage.SetFileName(str(path))
    assert storage.WriteData(outputs.segmentation)
    assert np.array_equal(read_labels(path, geometry_of(volume)), expected)  # what measure --masks reads
    for segment_id in ("Segment_1", "LeftNeuralForamen", "RightNeuralForamen"):
        contents.RemoveSegment(segment_id)
    assert storage.WriteData(outputs.segmentation)
    with pytest.raises(InputError, match=r"segments \(Disc\) is named Spinal canal, Left neural foramen or Right"):
        read_labels(path, geometry_of(volume))


def test_a_segmentation_file_saved_cropped_to_its_content_gives_the_masks_on_the_volume_s_grid(context, volume,
                                                                                               tmp_path):
    import SimpleITK as sitk

    from SpinalStenosisLib.volume_io import read_labels

    logic, outputs = measure(context, volume)
    expected = logic.labels_of(outputs.segmentation, volume)
    storage, path = outputs.segmentation.CreateDefaultStorageNode(), tmp_path / "cropped.seg.nrrd"
    storage.SetFileName(str(path))
    storage.SetCropToMinimumExtent(True)  # 3D Slicer's save option "Crop to minimum extent"
    assert storage.WriteData(outputs.segmentation)
    written = sitk.ReadImage(str(path))
    assert np.prod(written.GetSize()[:3]) < expected.size  # a box around the masks only
    assert np.array_equal(read_labels(path, geometry_of(volume)), expected)


def test_scene_bundle_reloads(context, tmp_path, phantom_files):
    from SpinalStenosisLib.pipeline import measure_with_segmenter
    from SpinalStenosisLib.volume_io import open_axial

    image_path, _ = phantom_files
    run = measure_with_segmenter(open_axial(image_path), ThresholdSegmenter())
    bundle = write_scene_bundle([run], image_path, tmp_path / "scene.mrb")
    other = new_scene(cache_folder=tmp_path / "cache2")
    assert other.scene.ReadFromMRB(str(bundle))
    assert count(other.scene, "vtkMRMLScalarVolumeNode") == 1
    assert count(other.scene, "vtkMRMLSegmentationNode") == 1
    assert measurement_tables(other.scene) == charts_whole(other.scene) == 1
    assert count(other.scene, "vtkMRMLMarkupsLineNode") == sum(len(m.rulers) for m in run.measurements)
    from SpinalStenosisLib.outputs import OutputError

    with pytest.raises(OutputError, match="scene.mrb: exists; pass --overwrite to replace it"):
        write_scene_bundle([run], image_path, bundle)
    assert write_scene_bundle([run], image_path, bundle, overwrite=True) == bundle
    with pytest.raises(OutputError, match="scene.zip: a scene bundle must end in .mrb"):
        write_scene_bundle([run], image_path, tmp_path / "scene.zip")
    with pytest.raises(OutputError, match=re.escape("scene\\xe4.mrb: the path holds bytes that are not UTF-8")):
        write_scene_bundle([run], image_path, tmp_path / "scene\udce4.mrb")  # as Python names the byte 0xE4


def volume_named(scene, name: str):
    volumes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    return next(node for node in (volumes.GetItemAsObject(n) for n in range(volumes.GetNumberOfItems()))
                if node.GetName() == name)


def test_bundles_opened_into_one_scene_keep_their_outputs_with_their_own_volumes(tmp_path, phantom_files):
    from SpinalStenosisLib.pipeline import measure_with_segmenter
    from SpinalStenosisLib.volume_io import open_axial

    image_path, _ = phantom_files
    run = measure_with_segmenter(open_axial(image_path), ThresholdSegmenter())
    bundles = [write_scene_bundle([run], tmp_path / f"patient {name}.nii.gz", tmp_path / f"{name}.mrb")
               for name in "AB"]
    other = new_scene(cache_folder=tmp_path / "cache2")
    assert other.scene.ReadFromMRB(str(bundles[0]))
    assert other.scene.ReadFromMRB(str(bundles[1]), False)  # into the scene that holds the first: IDs renumbered
    logic = StenosisScene(other.scene, other.segmentations_logic)
    first, second = volume_named(other.scene, "patient A"), volume_named(other.scene, "patient B")
    for volume, name in ((first, "patient A"), (second, "patient B")):
        outputs = logic.find_outputs(volume)
        assert outputs.table.GetName() == f"{name} stenosis measurements"
        assert outputs.segmentation.GetName() == f"{name} stenosis segmentation"
        assert len(outputs.rulers) == sum(len(m.rulers) for m in run.measurements)
    rulers_of_first = set(logic.find_outputs(first).rulers.values())
    assert rulers_of_first.isdisjoint(logic.find_outputs(second).rulers.values())
    measure_volume_node(logic, second, ThresholdSegmenter())  # measured again: its own nodes updated, no more added
    assert measurement_tables(other.scene) == 2 and charts_whole(other.scene) == 2
    assert set(logic.find_outputs(first).rulers.values()) == rulers_of_first
    assert count(other.scene, "vtkMRMLMarkupsLineNode") == 2 * len(rulers_of_first)


def test_the_rulers_and_table_of_a_reopened_scene_follow_hand_edits_once_watched(tmp_path, phantom_files):
    from SpinalStenosisLib.pipeline import measure_with_segmenter
    from SpinalStenosisLib.volume_io import open_axial

    image_path, _ = phantom_files
    run = measure_with_segmenter(open_axial(image_path), ThresholdSegmenter())
    bundle = write_scene_bundle([run], image_path, tmp_path / "scene.mrb", region="cervical")
    other = new_scene(cache_folder=tmp_path / "cache2")
    assert other.scene.ReadFromMRB(str(bundle))
    logic = StenosisScene(other.scene, other.segmentations_logic)  # lumbar, as the module's Region may be
    volume = volume_named(other.scene, "phantom")
    assert logic.graded_region(volume) == "cervical"  # the Region the module takes when it shows the volume
    outputs = logic.find_outputs(volume)
    logic.watch_hand_edits(outputs)  # what the module does when it shows the volume
    row = row_of(outputs.table, 2)
    length = move_end_halfway(outputs.rulers[(2, "right_foramen_width_mm")])
    assert row_values(outputs.table, row)["right_foramen_width_mm"] == pytest.approx(length)
    assert outputs.table.GetTable().GetColumnByName("right_foramen_grade").GetValue(row) == "stenosis"
    assert grades(outputs.table) == ["normal"] * 3 and logic.graded_region(volume) == "cervical"
    assert outputs.table.SetCellText(row, TABLE_COLUMNS.index("level"), "T12-L1")  # typed: graded again
    assert grades(outputs.table)[row] == ""
    labels = logic.labels_of(outputs.segmentation, volume)
    labels[0][labels[0] == 2] = 0  # the left foramen erased on slice 0
    logic._write_segments(outputs.segmentation, volume, labels)
    logic._remove(outputs.rulers[(1, "canal_ap_mm")])
    assert logic.remeasure(volume, outputs) == [0]  # the saved slice hashes: only the edited slice
    assert math.isnan(row_values(outputs.table, row_of(outputs.table, 0))["left_foramen_width_mm"])
    assert (1, "canal_ap_mm") in logic.find_outputs(volume).rulers  # the saved rulers: the deleted one placed again
    rows = list(csv.DictReader(open(logic.export(outputs, tmp_path / "export", "phantom")["table"], encoding="utf-8")))
    assert [row["canal_ap_grade"] for row in rows] == grades(outputs.table)  # as the reopened table grades them


def test_a_scene_bundle_of_an_angled_series_holds_each_block_on_its_own_grid(context, tmp_path):
    from conftest import write_dicom_series

    from SpinalStenosisLib.pipeline import measure_file

    image, _, geometry = phantom_arrays(n_slices=2)
    blocks = (geometry, tilted(geometry, 12.0, (0.0, 0.0, 25.0)))
    series = tmp_path / "series"
    series.mkdir()
    for k, block in enumerate(blocks):
        write_dicom_series(series, image, block, series=1, first_instance=2 * k)
    runs = measure_file(series, tmp_path / "out", segmenter=ThresholdSegmenter())
    bundle = write_scene_bundle(runs, series, tmp_path / "scene.mrb")
    other = new_scene(cache_folder=tmp_path / "cache2")
    assert other.scene.ReadFromMRB(str(bundle))
    volumes = other.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    assert sorted(volumes.GetItemAsObject(i).GetName() for i in range(2)) == ["series block-1", "series block-2"]
    for i in range(2):
        node = volumes.GetItemAsObject(i)
        block = blocks[int(node.GetName()[-1]) - 1]
        assert geometry_of(node).matches(block, tolerance_mm=1e-3)
        assert np.array_equal(slicer.util.arrayFromVolume(node), image)
    assert count(other.scene, "vtkMRMLSegmentationNode") == measurement_tables(other.scene) == 2
    assert charts_whole(other.scene) == 2
    assert count(other.scene, "vtkMRMLMarkupsLineNode") == sum(len(m.rulers) for r in runs for m in r.measurements)


def test_the_demo_series_is_made_once_with_its_plan_geometry(context):
    from SpinalStenosisLib.demo import add_demo_volume
    from SpinalStenosisLib.geometry import needs_reslice
    from SpinalStenosisLib.synth.dataset import SERIES_PLANS

    plan = SERIES_PLANS["cervical"]
    volume = add_demo_volume(context.scene, "cervical")
    assert volume.GetName() == "Synthetic cervical T2 (demo)"
    assert volume.GetImageData().GetDimensions() == (320, 320, len(plan.levels) * len(plan.slice_kinds))
    assert volume.GetSpacing() == pytest.approx((plan.pixel_mm, plan.pixel_mm, plan.spacing_mm))
    assert not needs_reslice(geometry_of(volume))  # an axial stack
    assert add_demo_volume(context.scene, "cervical") is volume
    assert count(context.scene, "vtkMRMLScalarVolumeNode") == 1
    assert json.loads(volume.GetAttribute(LEVELS_ATTRIBUTE)) == {  # its slices, named as the CLI demo's
        str(n * len(plan.slice_kinds) + k): level for n, level in enumerate(plan.levels)
        for k in range(len(plan.slice_kinds))}
    assert add_demo_volume(context.scene, "lumbar") is not volume
