"""Measurement results as MRML nodes (segmentation, rulers, table, region box), Re-measure and export.

Qt-free: works inside Slicer and with PyPI's ``slicer-core``. The scene and the segmentations logic are passed in.
Output nodes are found again by their ``SpinalStenosis.inputVolume`` node reference and ``SpinalStenosis.role``
attribute, so a second Measure updates them instead of adding more. The input volume is only read. Results are
computed in the volume's own (local) RAS, so every spatial output is placed under the volume's parent transform, if
it has one (a registration, or the acquisition transform Slicer adds to an irregular DICOM series), and overlays the
image.
"""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from . import __version__, scene_table
from .dicom_series import (GEOMETRY_VALUES, RESCALE_TAGS, SHOWN_INVERTED_WARNING, positive_value, rescale_value_fault,
                           value_fault)
from .findings import Finding, worst_findings, worst_findings_by_level
from .geometry import VolumeGeometry, stack_layout
from .grading import REGION_TAGS, region_named
from .image_files import displayed_turn
from .level_names import NamedImage
from .markups_json import RULER_COLOURS, line_markup, markups_document, ruler_name
from .measurement import Ruler, SliceMeasurement, masks_from_labels, measure_slice
from .number_text import sides_text
from .outputs import exported_files, staged_files, write_levels_csv
from .pipeline import (MeasurementRun, ProgressCallback, Segmenter, channel_volume, checked_mr_image, input_warnings,
                       measure_with_segmenter, slice_field_of_view)
from .report import write_report
from .scene_table import ATTRIBUTE
from .volume_io import (PICTURE_SUFFIXES, SEGMENT_IDS_AND_NAMES, AxialVolume, axial_from_array, stored_file_findings,
                        structure_segments, with_image_numbers)

DicomValue = Callable[[str, str], str]  # (SOP instance UID, tag "gggg,eeee") → the header value, "" without one
SLICE_THICKNESS_TAG = "0018,0050"
PHOTOMETRIC_TAG = "0028,0004"  # Photometric Interpretation
GEOMETRY_TAGS = tuple(tag.replace("|", ",") for tag in GEOMETRY_VALUES)  # Pixel Spacing, Image Position, Orientation
RESCALE_DICOM_TAGS = tuple(f"{group:04X},{element:04X}" for group, element in RESCALE_TAGS)
INSTANCE_NUMBER_TAG = "0020,0013"

# the node reference from each output node to its input volume: MRML renumbers it with the volume when a scene is
# imported into one that holds other nodes (a second .mrb), where an ID kept as text would name another volume
INPUT_VOLUME_REFERENCE = ATTRIBUTE + "inputVolume"
LEVELS_ATTRIBUTE = ATTRIBUTE + "levels"  # of an input volume: JSON, slice index → vertebral level (the demo's has it)
SEGMENTS = tuple(  # label value, segment id, name, colour, local type code, modifier
    (value, *SEGMENT_IDS_AND_NAMES[value], colour, type_code, modifier) for value, colour, type_code, modifier in (
        (1, (0.98, 0.82, 0.1), "SPINAL_CANAL", ""),
        (2, (0.2, 0.8, 1.0), "NEURAL_FORAMEN", "SCT^7771000^Left"),
        (3, (0.3, 1.0, 0.4), "NEURAL_FORAMEN", "SCT^24028007^Right")))


# Every watched ruler and table node → (observer tags, callbacks), shared by all StenosisScenes, so that a node has
# one watch whoever published it last, and each callback stays reachable from Python: otherwise the garbage
# collector may clear a dropped StenosisScene's callback that VTK still calls on every edit.
_HAND_EDIT_WATCHES: dict[object, tuple[tuple[int, ...], tuple[Callable, ...]]] = {}
# The rulers being dragged in a view: their row is updated once, when the drag ends, not on every mouse move.
_RULERS_DRAGGED: set = set()
@contextmanager
def _nodes_changing(scene):
    """While this code adds, removes and moves many nodes (a long stack's hundreds of rulers): the scene is batch
    processing, so Slicer's views and data tree update once, at the end, rather than on each node."""
    scene.StartState(scene.BatchProcessState)
    try:
        yield
    finally:
        scene.EndState(scene.BatchProcessState)


def terminology_entry(type_code: str, modifier: str) -> str:
    """Slicer terminology entry: SNOMED category 'Anatomical Structure', project-local type codes (no verified
    SNOMED code for the thecal sac / neural foramen was at hand), SNOMED left/right modifiers."""
    meaning = type_code.replace("_", " ").capitalize()
    return ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
            f"~99SPST^{type_code}^{meaning}~{modifier or '^^'}~Anatomic codes - DICOM master list~^^~^^")


@dataclass
class SceneOutputs:
    segmentation: object
    table: object
    rulers: dict[tuple[int, str], object] = field(default_factory=dict)
    region: object | None = None
    chart: object | None = None  # the canal AP along the stack, a plot chart (Slicer's Plots)

    def spatial_nodes(self) -> list:
        """The nodes placed in space: segmentation, region box and rulers (the table is not)."""
        return [self.segmentation, *([self.region] if self.region is not None else []), *self.rulers.values()]


def geometry_of(volume_node) -> VolumeGeometry:
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    dims = volume_node.GetImageData().GetDimensions()
    return VolumeGeometry(tuple(int(d) for d in dims), np.array([[matrix.GetElement(r, c) for c in range(4)]
                                                                 for r in range(4)]))


def axial_volume_of(volume_node, dicom_value: DicomValue | None = None) -> AxialVolume:
    """The input volume node as an axial stack (a copy: the node is never modified); with dicom_value, the slice
    thickness a volume loaded from DICOM has in its header (see header_values), and each slice's image number (the
    Instance Number of the instance the node's DICOM.instanceUIDs lists for it, in the order of its slices); a
    ValueError where that header's Pixel Spacing, Image Position or Orientation is malformed
    (dicom_series.value_fault) or its Rescale Slope or Intercept is not a number (rescale_value_fault), or where the
    file the node was loaded from (NIfTI, MetaImage, NRRD, a picture) is cut short or damaged
    (volume_io.stored_file_findings), with the warnings measure gives of that file's header (no orientation, a qform
    and sform that disagree, a NIfTI sform's other voxel size, a negative voxel size) while the volume lies as the
    file gives it, and of a picture's EXIF orientation, which Slicer does not apply. An image stored MONOCHROME1,
    which ITK reads below 0, is taken from its lowest value up, as measure takes it."""
    import slicer.util

    if volume_node.GetImageData() is None:
        raise ValueError(f"the volume {volume_node.GetName()!r} holds no image: load one into it, or choose another")
    voxels = np.array(slicer.util.arrayFromVolume(volume_node))  # a copy, signed bytes kept (axial_from_array)
    [thickness, photometric, *geometry, slope, intercept] = (header_values(volume_node, dicom_value, (
        SLICE_THICKNESS_TAG, PHOTOMETRIC_TAG, *GEOMETRY_TAGS, *RESCALE_DICOM_TAGS)) if dicom_value is not None else
        None) or [""] * (4 + len(GEOMETRY_TAGS))
    if fault := next((fault for tag, value in zip(GEOMETRY_TAGS, geometry) if value
                      if (fault := value_fault(tag, value))), ""):
        raise ValueError(fault)
    if fault := next((fault for tag, value in zip(RESCALE_TAGS, (slope, intercept)) if value
                      if (fault := rescale_value_fault(tag, value, f"{volume_node.GetName()}'s DICOM files"))), ""):
        raise ValueError(fault)
    shown_inverted = photometric.strip() == "MONOCHROME1" and voxels.max() < 0  # as ITK reads it: all below 0
    if shown_inverted:
        voxels = voxels.astype(np.float32) - voxels.min()
    volume = axial_from_array(voxels, geometry_of(volume_node), volume_node.GetName())
    volume.warnings += [SHOWN_INVERTED_WARNING] if shown_inverted else []
    if dicom_value is not None:
        volume.slice_thickness_mm = positive_value(thickness)
        uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
        if len(uids) == volume.n_slices:  # a file a slice (a multi-frame file lists one)
            with_image_numbers(volume, [(dicom_value(uid, INSTANCE_NUMBER_TAG) or "").strip() for uid in uids])
    storage = volume_node.GetStorageNode()
    file_name = Path(storage.GetFileName() or "") if storage is not None else Path()
    fault, file_warnings = stored_file_findings(file_name, volume)
    if fault:
        raise ValueError(f"the volume was loaded from {file_name.name}: {fault}; load a whole copy of it")
    volume.warnings += file_warnings
    if file_name.suffix.lower() in PICTURE_SUFFIXES:
        pixel_mm = sides_text(volume.layout.slice_grid(0).pixel_size_mm)
        volume.warnings.append(f"the volume was loaded from a picture file ({file_name.name}), which holds no pixel "
                               f"size: it was measured with {pixel_mm} mm pixels; if those are not the scan's, set "
                               "the Image Spacing (Volumes module) and measure again")
        if turn := displayed_turn(file_name):
            volume.warnings.append(f"the picture's EXIF orientation has it {turn} for display, which 3D Slicer does "
                                   "not apply: it was measured as loaded, not as a viewer shows it (spinal-stenosis "
                                   "measure --pixel-mm turns it)")
    return volume


class StenosisScene:
    """Creates and updates the SpinalStenosis output nodes for one scene.

    >>> outputs = StenosisScene(scene, segmentationsLogic).publish(volumeNode, run)   # doctest: +SKIP
    """

    def __init__(self, scene, segmentations_logic, region: str = "lumbar", dicom_value: DicomValue | None = None):
        self.scene, self.segmentations_logic, self.region = scene, segmentations_logic, region
        self.dicom_value = dicom_value  # reads the input volume's DICOM header, if any (see axial_volume_of)

    # ---- finding and creating nodes -------------------------------------------------------------------------
    def _find(self, volume_node, role: str, class_name: str) -> list:
        nodes = self.scene.GetNodesByClass(class_name)
        found = []
        for n in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(n)
            if (node.GetNodeReferenceID(INPUT_VOLUME_REFERENCE) == volume_node.GetID()
                    and node.GetAttribute(ATTRIBUTE + "role") == role):
                found.append(node)
        return found

    def _node(self, volume_node, role: str, class_name: str, name: str):
        existing = self._find(volume_node, role, class_name)
        if existing:
            return existing[0]
        node = self.scene.AddNewNodeByClass(class_name, name)
        node.SetNodeReferenceID(INPUT_VOLUME_REFERENCE, volume_node.GetID())
        node.SetAttribute(ATTRIBUTE + "role", role)
        return node

    def find_outputs(self, volume_node) -> SceneOutputs | None:
        """The volume's outputs; None if it was not measured, or its table lacks a column of this version's (a scene
        saved by an earlier one): Measure makes them again."""
        segmentation = self._find(volume_node, "segmentation", "vtkMRMLSegmentationNode")
        table = self._find(volume_node, "table", "vtkMRMLTableNode")
        if not segmentation or not table or not scene_table.has_columns(table[0]):
            return None
        region = self._find(volume_node, "region", "vtkMRMLMarkupsROINode")
        chart = self._find(volume_node, "chart", "vtkMRMLPlotChartNode")
        return SceneOutputs(segmentation[0], table[0], self._rulers_of(volume_node), region[0] if region else None,
                            chart[0] if chart else None)

    def _rulers_of(self, volume_node) -> dict[tuple[int, str], object]:
        """The volume's ruler nodes keyed by (slice index, measurement)."""
        return {(int(r.GetAttribute(ATTRIBUTE + "sliceIndex")), r.GetAttribute(ATTRIBUTE + "measurement")): r
                for r in self._find(volume_node, "ruler", "vtkMRMLMarkupsLineNode")}

    # ---- Measure ---------------------------------------------------------------------------------------------
    def publish(self, volume_node, run: MeasurementRun, provenance: dict | None = None) -> SceneOutputs:
        """Create or update the output nodes from a measurement run on volume_node; rulers moved by hand then
        update their table rows, and values typed into the table regrade it. The segmentation and table carry the
        run's provenance and warnings (MeasurementRun.warnings) as SpinalStenosis.* attributes."""
        with _nodes_changing(self.scene):
            outputs = self._publish_nodes(volume_node, run, provenance)
        self.watch_hand_edits(outputs)
        return outputs

    def _publish_nodes(self, volume_node, run: MeasurementRun, provenance: dict | None) -> SceneOutputs:
        """The output nodes of run on volume_node, made or updated (what publish does, in one batch)."""
        name = volume_node.GetName()
        provenance = {"engineVersion": __version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                      **run.provenance, **(provenance or {})}
        segmentation = self._node(volume_node, "segmentation", "vtkMRMLSegmentationNode",
                                  f"{name} stenosis segmentation")
        _follow(segmentation, volume_node)
        self._write_segments(segmentation, volume_node, run.volume.to_source_grid(run.stack_labels))
        hashes = json.dumps(_slice_hashes(run.stack_labels))
        segmentation.SetAttribute(ATTRIBUTE + "sliceHashes", hashes)  # as last measured (Re-measure updates them)
        segmentation.SetAttribute(ATTRIBUTE + "drawnHashes", hashes)  # as the networks drew them
        measured_on = geometry_of(volume_node)  # what Re-measure checks the volume against
        segmentation.SetAttribute(ATTRIBUTE + "volumeGeometry", json.dumps(
            {"size_ijk": list(measured_on.size_ijk), "ijk_to_ras": measured_on.ijk_to_ras.tolist()}))
        # what Re-measure needs to judge the warnings again as Measure did
        segmentation.SetAttribute(ATTRIBUTE + "readWarnings", json.dumps(run.volume.warnings))
        segmentation.SetAttribute(ATTRIBUTE + "colourChannel", run.colour_channel or "")
        table = self._node(volume_node, "table", "vtkMRMLTableNode", f"{name} stenosis measurements")
        outputs = SceneOutputs(segmentation, table)
        with scene_table.writing(table):
            scene_table.fill_table(table, run.measurements, self._levels_named(volume_node, table), self.region)
            outputs.rulers = self._sync_rulers(volume_node, run.measurements, {})
            _record_rulers(outputs)
            outputs.region = self._sync_region(volume_node, run)
            for node in (segmentation, table):
                for key, value in provenance.items():
                    node.SetAttribute(ATTRIBUTE + key, value if isinstance(value, str) else json.dumps(value))
            scene_table.store_warnings((segmentation, table), run.warnings)
            shown = run.shown_region
            table.SetAttribute(ATTRIBUTE + "shownRegion", shown.region if shown else "")
            table.SetAttribute(ATTRIBUTE + "shownBy", shown.evidence if shown else "")
            outputs.chart = self._sync_chart(volume_node, table)
            self._organise(volume_node, outputs)
        return outputs

    def _write_segments(self, segmentation, volume_node, labels_source: np.ndarray) -> None:
        import slicer.util
        from vtkmodules.vtkCommonCore import vtkStringArray

        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        segmentation.SetNodeReferenceID(segmentation.GetReferenceImageGeometryReferenceRole(), volume_node.GetID())
        if segmentation.GetDisplayNode() is None:
            segmentation.CreateDefaultDisplayNodes()
        contents = segmentation.GetSegmentation()
        found = _segment_ids(contents)
        ids = vtkStringArray()
        for value, segment_id, segment_name, colour, type_code, modifier in SEGMENTS:
            segment_id = found.get(value) or contents.AddEmptySegment(segment_id, segment_name, colour)
            segment = contents.GetSegment(segment_id)  # the tag that SetTerminology, which older Slicers lack, sets
            segment.SetTag(segment.GetTerminologyEntryTagName(), terminology_entry(type_code, modifier))
            ids.InsertNextValue(segment_id)
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        try:
            slicer.util.updateVolumeFromArray(labelmap, labels_source.astype(np.uint8))
            labelmap.CopyOrientation(volume_node)
            _follow(labelmap, volume_node)  # else the import maps the labels through the volume's transform
            if not self.segmentations_logic.ImportLabelmapToSegmentationNode(labelmap, segmentation, ids):
                raise RuntimeError("importing the labels into the segmentation failed")
        finally:
            self.scene.RemoveNode(labelmap)

    def labels_of(self, segmentation, volume_node) -> np.ndarray:
        """Segments back as a label array on the input grid [k, j, i] (1 canal, 2 left, 3 right foramen; a later one
        over an earlier where they overlap); a structure whose segment the user deleted is absent."""
        import slicer.util
        from vtkmodules.vtkCommonCore import vtkStringArray

        labels = np.zeros(slicer.util.arrayFromVolume(volume_node).shape[:3], np.uint8)
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        try:
            for value, segment_id in _segment_ids(segmentation.GetSegmentation()).items():
                ids = vtkStringArray()
                ids.InsertNextValue(segment_id)
                if not self.segmentations_logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap,
                                                                             volume_node):
                    raise RuntimeError(f"exporting the segment {segment_id} failed")
                labels[slicer.util.arrayFromVolume(labelmap) > 0] = value
            return labels
        finally:
            self.scene.RemoveNode(labelmap)

    # ---- table -----------------------------------------------------------------------------------------------
    def _levels_named(self, volume_node, table) -> dict[int, str]:
        """The levels named before a Measure, by slice index: in the volume's LEVELS_ATTRIBUTE, then, over those,
        typed into its table."""
        named = {int(s): level for s, level in json.loads(volume_node.GetAttribute(LEVELS_ATTRIBUTE) or "{}").items()}
        if scene_table.has_columns(table):
            named.update({m.slice_index: m.level for m in scene_table.measurements_of(table) if m.level})
        return named

    def regrade(self, table, changed_row: int | None = None, region: str | None = None) -> None:
        """Grade the table with region's cut-offs (by default self.region; scene_table.grade_rows): after a row
        changed, or the region did, whose chart's cut-off lines then follow it."""
        region = region or self.region
        region_changed = scene_table.graded_with(table) != region
        scene_table.grade_rows(table, region, changed_row)
        volume_node = table.GetNodeReference(INPUT_VOLUME_REFERENCE)
        if region_changed and volume_node is not None:
            for cutoffs in self._find(volume_node, "cutoffs", "vtkMRMLTableNode"):
                scene_table.fill_cutoffs(cutoffs, table)

    def _region_of(self, table) -> str:
        """The region the table is graded with, else (not yet graded) self.region."""
        return scene_table.graded_with(table) or self.region

    # ---- chart -----------------------------------------------------------------------------------------------
    def _sync_chart(self, volume_node, table):
        """The canal AP along the stack as a plot chart (Slicer's Plots module): a dot per slice from the table, so
        that it follows Re-measure and rulers moved by hand, and the AP cut-offs of its region as lines (from a
        small table of their own, hidden from the data tree)."""
        import slicer

        name = volume_node.GetName()
        cutoffs = self._node(volume_node, "cutoffs", "vtkMRMLTableNode", f"{name} canal AP cut-offs")
        cutoffs.SetHideFromEditors(True)
        scene_table.fill_cutoffs(cutoffs, table)
        chart = self._node(volume_node, "chart", "vtkMRMLPlotChartNode", f"{name} canal AP along the stack")
        chart.SetTitle(f"{name}: canal AP along the stack")
        chart.SetXAxisTitle("slice")
        chart.SetYAxisTitle("canal AP (mm)")
        for role, source, column, label, colour in (
                ("profile", table, "canal_ap_mm", "canal AP", SEGMENTS[0][3]),
                ("absoluteCutoff", cutoffs, "absolute", "absolute stenosis below", (1.0, 0.3, 0.3)),
                ("relativeCutoff", cutoffs, "relative", "relative stenosis below", (1.0, 0.67, 0.2))):
            series = self._node(volume_node, role, "vtkMRMLPlotSeriesNode", f"{name} {label}")
            series.SetAndObserveTableNodeID(source.GetID())
            series.SetXColumnName("slice_index")
            series.SetYColumnName(column)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle if role == "profile"
                                  else slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
            series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleSolid if role == "profile"
                                else slicer.vtkMRMLPlotSeriesNode.LineStyleDash)
            series.SetColor(*colour)
            if not chart.HasPlotSeriesNodeID(series.GetID()):
                chart.AddAndObservePlotSeriesNodeID(series.GetID())
        return chart

    def graded_region(self, volume_node) -> str | None:
        """The region the volume's table was last graded with (graded_with); None where it was not measured."""
        outputs = self.find_outputs(volume_node)
        return scene_table.graded_with(outputs.table) if outputs is not None else None

    def follow_region(self, table) -> bool:
        """Regrade the table if it was graded with another region's cut-offs than self.region's; whether it was."""
        if scene_table.graded_with(table) == self.region:
            return False
        self.regrade(table)
        return True

    def worst_findings(self, table) -> dict[str, Finding]:
        """The study's worst findings (findings.worst_findings) as the table now holds and grades them."""
        return worst_findings(scene_table.measurements_of(table), self._region_of(table))

    def name_levels(self, table, levels: Mapping[int | str | NamedImage, str]) -> None:
        """Write levels into the table's Level column (scene_table.write_levels) and regrade it: a level may name
        another region's cut-offs."""
        with scene_table.writing(table):
            scene_table.write_levels(table, levels)
            self.regrade(table)

    def worst_findings_by_level(self, table) -> dict[str, dict[str, Finding]]:
        """The worst findings of each level named in the table's Level column (findings.worst_findings_by_level)."""
        return worst_findings_by_level(scene_table.measurements_of(table), self._region_of(table))

    # ---- rulers ----------------------------------------------------------------------------------------------
    def _sync_rulers(self, volume_node, measurements: list[SliceMeasurement], existing: dict) -> dict:
        wanted = {(m.slice_index, name): ruler for m in measurements for name, ruler in m.rulers.items()}
        existing = existing or self._rulers_of(volume_node)
        slices = {m.slice_index for m in measurements}
        for key, node in list(existing.items()):
            if key[0] in slices and key not in wanted:
                self._remove(node)
                del existing[key]
        for key, ruler in wanted.items():
            node = self._in_scene(existing.get(key))  # not one the user deleted since
            if node is None:
                node = self._node_for_ruler(volume_node, *key)
                existing[key] = node
            _follow(node, volume_node)
            self._place(node, ruler)
        return existing

    def _node_for_ruler(self, volume_node, slice_index: int, measurement: str):
        node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", ruler_name(measurement, slice_index))
        node.SetNodeReferenceID(INPUT_VOLUME_REFERENCE, volume_node.GetID())
        for key, value in (("role", "ruler"), ("sliceIndex", str(slice_index)), ("measurement", measurement)):
            node.SetAttribute(ATTRIBUTE + key, value)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetSelectedColor(*RULER_COLOURS[measurement])
        display.SetColor(*RULER_COLOURS[measurement])
        display.SetVisibility3D(False)  # read on its slice: in the 3D view a stack's hundreds of rulers would overlap
        return node

    def _place(self, node, ruler: Ruler) -> None:
        self._forget(node)  # our own move must not count as a hand edit
        node.RemoveAllControlPoints()
        node.AddControlPoint(*[float(v) for v in ruler.start_ras])
        node.AddControlPoint(*[float(v) for v in ruler.end_ras])

    def _restore_ruler(self, volume_node, outputs: SceneOutputs, key: tuple[int, str], ruler: Ruler) -> None:
        """Place a ruler again: in its node, if it is still in the scene (a point deleted), else in a new one."""
        node = self._in_scene(outputs.rulers.get(key)) or self._node_for_ruler(volume_node, *key)
        _follow(node, volume_node)
        self._place(node, ruler)
        outputs.rulers[key] = node

    def _in_scene(self, node):
        """The node, if it is in this scene still (not removed since it was found); else None."""
        return node if node is not None and node.GetScene() is self.scene else None

    def watch_hand_edits(self, outputs: SceneOutputs) -> None:
        """Moving a ruler's endpoint by hand updates its table row, and typing into the table regrades it, with the
        cut-offs the table was graded with (another volume's region may be self.region by then); a node another
        StenosisScene watched (one made in the Python console, say) is watched by this one instead. Measure and
        Re-measure start it; outputs found again in a scene opened from file (find_outputs) are watched once this is
        called."""
        def drag_started(node, event) -> None:
            _RULERS_DRAGGED.add(node)

        def moved(node, event) -> None:
            if node not in _RULERS_DRAGGED:  # moved from the Python console, say
                self._ruler_moved(node, outputs)

        def drag_ended(node, event) -> None:
            _RULERS_DRAGGED.discard(node)
            self._ruler_moved(node, outputs)

        accepted = scene_table.measurements_of(outputs.table)  # the table as last accepted, this code's writes included

        def edited(table, event) -> None:
            scene_table.take_typed_values(table, accepted, self._region_of(table))
            now = scene_table.measurements_of(table)
            _show_rulers_of_held_values(outputs.rulers, accepted, now)
            accepted[:] = now

        for node in outputs.rulers.values():
            self._watch(node, ((node.PointStartInteractionEvent, drag_started), (node.PointModifiedEvent, moved),
                               (node.PointEndInteractionEvent, drag_ended)))
        self._watch(outputs.table, (("ModifiedEvent", edited),))

    def _watch(self, node, observers: tuple[tuple[int | str, Callable], ...]) -> None:
        """Observe node (event, callback) for hand edits, instead of any earlier watch."""
        self._forget(node)
        tags = tuple(node.AddObserver(event, callback) for event, callback in observers)
        _HAND_EDIT_WATCHES[node] = (tags, tuple(callback for _, callback in observers))

    @staticmethod
    def _forget(node) -> None:
        _RULERS_DRAGGED.discard(node)
        tags, _ = _HAND_EDIT_WATCHES.pop(node, ((), ()))
        for tag in tags:
            node.RemoveObserver(tag)

    def _remove(self, node) -> None:
        """Remove an output node and its subject-hierarchy item: the item first, as a scene without Slicer's
        subject-hierarchy plugins (slicer-core) keeps the item of a removed node, which later lookups report."""
        self._forget(node)
        hierarchy = self.scene.GetSubjectHierarchyNode()
        item = hierarchy.GetItemByDataNode(node) if hierarchy is not None else 0
        if item:
            hierarchy.RemoveItem(item, False, False)  # the item only: not its data node, not its children
        self.scene.RemoveNode(node)

    def stop_watching(self) -> None:
        """Hand edits of this scene's rulers and tables no longer touch the table (until the next publish or
        remeasure)."""
        for node in [node for node in _HAND_EDIT_WATCHES if node.GetScene() in (self.scene, None)]:
            self._forget(node)

    def _ruler_moved(self, node, outputs: SceneOutputs) -> None:
        if not _whole(node):
            return
        row = scene_table.row_of(outputs.table, int(node.GetAttribute(ATTRIBUTE + "sliceIndex")))
        column = outputs.table.GetTable().GetColumnByName(node.GetAttribute(ATTRIBUTE + "measurement"))
        with scene_table.writing(outputs.table):
            column.SetValue(row, node.GetLineLengthWorld())
            self.regrade(outputs.table, row, self._region_of(outputs.table))

    # ---- navigation -----------------------------------------------------------------------------------------
    def narrowest_row(self, table) -> int | None:
        """The row of the narrowest canal AP among the study's worst findings; None when no canal was measured."""
        narrowest = self.worst_findings(table).get("canal_ap_mm")
        return None if narrowest is None else scene_table.row_of(table, narrowest.slice_index)

    def show_row(self, volume_node, outputs: SceneOutputs, row: int) -> np.ndarray:
        """Centre every slice view on a table row's slice: on the middle of its canal AP ruler, or of the slice
        when it has none (no canal found there: what the user wants to check). Returns that point, world RAS."""
        slice_index = int(outputs.table.GetTable().GetColumnByName("slice_index").GetValue(row))
        ruler = outputs.rulers.get((slice_index, "canal_ap_mm"))
        if _whole(ruler):
            point_world = np.mean([ruler.GetNthControlPointPositionWorld(i) for i in range(2)], axis=0)
        else:
            grid = stack_layout(geometry_of(volume_node)).slice_grid(slice_index)
            point_world = _to_world(volume_node, grid.centre_ras)
        views = self.scene.GetNodesByClass("vtkMRMLSliceNode")
        for n in range(views.GetNumberOfItems()):
            views.GetItemAsObject(n).JumpSliceByCentering(*[float(v) for v in point_world])
        return point_world

    # ---- region box ------------------------------------------------------------------------------------------
    def _sync_region(self, volume_node, run: MeasurementRun):
        existing = self._find(volume_node, "region", "vtkMRMLMarkupsROINode")
        if not run.roi_boxes:
            for node in existing:
                self._remove(node)
            return None
        corners = np.concatenate([run.region_of_interest_ras(s) for s in run.roi_boxes])
        node = self._node(volume_node, "region", "vtkMRMLMarkupsROINode", f"{volume_node.GetName()} stenosis region")
        _follow(node, volume_node)
        low, high = corners.min(axis=0), corners.max(axis=0)
        node.SetCenter(*((low + high) / 2))
        node.SetSize(*np.maximum(high - low, 1.0))
        node.SetLocked(True)  # where the networks looked: moving it would change nothing measured
        return node

    # ---- subject hierarchy -----------------------------------------------------------------------------------
    def _organise(self, volume_node, outputs: SceneOutputs) -> None:
        hierarchy = self.scene.GetSubjectHierarchyNode()
        if hierarchy is None:
            return
        volume_item = hierarchy.GetItemByDataNode(volume_node)
        parent = hierarchy.GetItemParent(volume_item) if volume_item else hierarchy.GetSceneItemID()
        folder_name = f"{volume_node.GetName()} stenosis rulers"
        folder = hierarchy.GetItemChildWithName(parent, folder_name)
        if not folder:
            folder = hierarchy.CreateFolderItem(parent, folder_name)
        for node in (outputs.segmentation, outputs.table, outputs.region, outputs.chart):
            if node is not None:
                _place_in_hierarchy(hierarchy, node, parent)
        for node in outputs.rulers.values():
            _place_in_hierarchy(hierarchy, node, folder)

    # ---- Re-measure ------------------------------------------------------------------------------------------
    def missing_rulers(self, outputs: SceneOutputs) -> list[tuple[int, str]]:
        """The rulers Measure or Re-measure placed that have since been deleted or lost a point, by (slice index,
        measurement), but for those whose value was typed into the table as absent: what Re-measure places again."""
        held = _held(scene_table.measurements_of(outputs.table))
        return [key for key in _placed_rulers(outputs)
                if key in held and not _whole(self._in_scene(outputs.rulers.get(key)))]

    def edited_slices(self, volume_node) -> list[int]:
        """The slices whose segments differ from those Measure drew (edited by hand, re-measured or not): what
        measuring again would replace. Empty where the volume was not measured, or its voxel grid changed since."""
        outputs = self.find_outputs(volume_node)
        if outputs is None or _grid_changed(volume_node, outputs):
            return []
        stack = axial_volume_of(volume_node, self.dicom_value).from_source_grid(
            self.labels_of(outputs.segmentation, volume_node))
        return _differing(_slice_hashes(stack), outputs.segmentation.GetAttribute(ATTRIBUTE + "drawnHashes"))

    def remeasure(self, volume_node, outputs: SceneOutputs) -> list[int]:
        """Re-measure the slices whose segments changed since the last Measure/Re-measure; returns their indices.
        On the other slices, a ruler Measure or Re-measure placed that has since been deleted (or lost a point) is
        placed again as the segments give it; its row keeps what it holds. The outputs first go under the volume's
        parent transform, should it have changed since: they belong to it. Rulers moved by hand, new ones too, then
        update their table rows. A ValueError when the volume's voxel grid changed since Measure."""
        _check_grid(volume_node, outputs)
        for node in outputs.spatial_nodes():
            _follow(node, volume_node)
        volume = axial_volume_of(volume_node, self.dicom_value)
        read_warnings = json.loads(outputs.segmentation.GetAttribute(ATTRIBUTE + "readWarnings") or "[]")
        channel = outputs.segmentation.GetAttribute(ATTRIBUTE + "colourChannel")
        volume = (channel_volume(volume, channel, read_warnings) if channel in volume.colour_channels
                  else replace(volume, warnings=read_warnings))  # the volume measured, as Measure read it
        if not volume.image_numbers:  # as Measure numbered its slices (e.g. a scene the command line wrote)
            numbered = {m.slice_index: m.image_number for m in scene_table.measurements_of(outputs.table)}
            with_image_numbers(volume, [numbered.get(s, "") for s in range(volume.n_slices)])
        stack = volume.from_source_grid(self.labels_of(outputs.segmentation, volume_node))
        hashes = _slice_hashes(stack)
        changed = _differing(hashes, outputs.segmentation.GetAttribute(ATTRIBUTE + "sliceHashes"))

        def measured(s: int) -> SliceMeasurement:
            return measure_slice(masks_from_labels(stack[s]), volume.layout.slice_grid(s), s,
                                 volume.layout.slice_position_mm(s), field_of_view=slice_field_of_view(volume, s),
                                 image_number=volume.image_number(s))

        measurements = [measured(s) for s in changed]
        lost = [key for key in self.missing_rulers(outputs) if key[0] not in changed]
        with _nodes_changing(self.scene), scene_table.writing(outputs.table):
            for m in measurements:
                scene_table.write_row(outputs.table, scene_table.row_of(outputs.table, m.slice_index), m)
            outputs.rulers = self._sync_rulers(volume_node, measurements, outputs.rulers)
            for s in sorted({s for s, _ in lost}):
                rulers = measured(s).rulers
                for key in [key for key in lost if key[0] == s and key[1] in rulers]:
                    self._restore_ruler(volume_node, outputs, key, rulers[key[1]])
            _record_rulers(outputs)
            self.regrade(outputs.table)
            outputs.segmentation.SetAttribute(ATTRIBUTE + "sliceHashes", json.dumps(hashes))
            # judged again: the edited masks may tilt the canal otherwise
            scene_table.store_warnings((outputs.segmentation, outputs.table), input_warnings(volume, stack))
            self._organise(volume_node, outputs)
        self.watch_hand_edits(outputs)
        return changed

    # ---- export ----------------------------------------------------------------------------------------------
    def export(self, outputs: SceneOutputs, folder: Path | str, base_name: str) -> dict[str, Path]:
        """Write the files outputs.exported_files names into folder, all or none: the segmentation (.seg.nrrd) and the
        rulers (.mrk.json) in the input volume's own coordinates (as Slicer stores nodes under a transform), so they
        overlay the volume's file, the table as CSV and, as the command writes them, the levels' CSV
        (outputs.write_levels_csv) and the report, of what the table, the segments and the rulers now hold. A
        ValueError when the volume's voxel grid changed since Measure."""
        _check_grid(outputs.table.GetNodeReference(INPUT_VOLUME_REFERENCE), outputs)
        paths = exported_files(folder, base_name)
        with staged_files(paths) as staged:
            storage = outputs.segmentation.CreateDefaultStorageNode()
            storage.SetFileName(str(staged["segmentation"]))
            if not storage.WriteData(outputs.segmentation):
                raise OSError(f"could not write {paths['segmentation']}")
            measurements = scene_table.measurements_of(outputs.table)
            held = _held(measurements)
            rulers = {key: Ruler(*(np.array(node.GetNthControlPointPosition(i)) for i in range(2)))  # volume's RAS
                      for key, node in sorted(outputs.rulers.items())
                      if _whole(node) and key in held}  # not one whose point the user deleted, or typed as absent
            lines = [line_markup(outputs.rulers[key].GetName(), ruler, key[1]) for key, ruler in rulers.items()]
            staged["rulers"].write_text(json.dumps(markups_document(lines), indent=1), encoding="utf-8")
            scene_table.write_csv(outputs.table, staged["table"])
            for m in measurements:
                m.rulers = {name: ruler for (index, name), ruler in rulers.items() if index == m.slice_index}
            write_levels_csv(staged["levels"], measurements, self._region_of(outputs.table))
            self._write_report(outputs, measurements, staged["report"])
        return paths

    def _write_report(self, outputs: SceneOutputs, measurements: list[SliceMeasurement], path: Path) -> None:
        """The report (report.write_report) of the table's measurements (with the rulers as they are) and the
        segments."""
        volume_node = outputs.table.GetNodeReference(INPUT_VOLUME_REFERENCE)
        volume = axial_volume_of(volume_node, self.dicom_value)
        stack = volume.from_source_grid(self.labels_of(outputs.segmentation, volume_node))
        region = self._region_of(outputs.table)
        write_report(path, measurements, volume.read_slice, lambda s: stack[s], volume.layout.slice_grid, region,
                     f"Spinal stenosis: {volume_node.GetName()} ({region})", scene_table.warnings_of(outputs.table))


def _follow(node, volume_node) -> None:
    """Put an output node under the input volume's parent transform (or under none, like the volume)."""
    node.SetAndObserveTransformNodeID(volume_node.GetTransformNodeID())


def _to_world(node, point_ras: np.ndarray) -> np.ndarray:
    """A point in a transformable node's own RAS, in world RAS (through its parent transforms)."""
    transform = node.GetParentTransformNode()
    if transform is None:
        return np.asarray(point_ras, float)
    from vtkmodules.vtkCommonTransforms import vtkGeneralTransform

    to_world = vtkGeneralTransform()
    transform.GetTransformToWorld(to_world)
    return np.array(to_world.TransformPoint(*[float(v) for v in point_ras]))


def _place_in_hierarchy(hierarchy, node, parent) -> None:
    item = hierarchy.GetItemByDataNode(node)
    if item:
        hierarchy.SetItemParent(item, parent)
    else:
        hierarchy.CreateItem(parent, node)


def _grid_changed(volume_node, outputs: SceneOutputs) -> bool:
    """Whether the volume's voxel grid is not the one recorded at Measure (SpinalStenosis.volumeGeometry)."""
    recorded = json.loads(outputs.segmentation.GetAttribute(ATTRIBUTE + "volumeGeometry") or "null")
    return recorded is None or not geometry_of(volume_node).matches(
        VolumeGeometry(tuple(recorded["size_ijk"]), np.array(recorded["ijk_to_ras"])))


def _check_grid(volume_node, outputs: SceneOutputs) -> None:
    """A ValueError when the volume's voxel grid changed since Measure (_grid_changed): its segments, rulers and
    numbers belong to the grid before."""
    if _grid_changed(volume_node, outputs):
        raise ValueError(f"{volume_node.GetName()}: its voxel grid (pixel size, origin or orientation) changed since "
                         "it was measured, and its results belong to the grid before; Measure it again")


def _segment_ids(contents) -> dict[int, str]:
    """Label value → the ID of its segment in a vtkSegmentation (volume_io.structure_segments: by ID, else by name);
    a value whose segment is gone is left out."""
    ids = [contents.GetNthSegmentID(n) for n in range(contents.GetNumberOfSegments())]
    found = structure_segments([(segment_id, contents.GetSegment(segment_id).GetName()) for segment_id in ids])
    return {value: ids[position] for value, position in found.items()}


def _record_rulers(outputs: SceneOutputs) -> None:
    """The rulers this code placed, by (slice index, measurement): what Re-measure places again if deleted."""
    outputs.segmentation.SetAttribute(ATTRIBUTE + "rulers", json.dumps(sorted(outputs.rulers)))


def _placed_rulers(outputs: SceneOutputs) -> list[tuple[int, str]]:
    """The rulers _record_rulers recorded (none for a scene saved by a version that did not record them)."""
    return [(int(s), name) for s, name in json.loads(outputs.segmentation.GetAttribute(ATTRIBUTE + "rulers") or "[]")]


def _whole(ruler_node) -> bool:
    """Whether there is a ruler node, with both its points."""
    return ruler_node is not None and ruler_node.GetNumberOfControlPoints() == 2


def _held(measurements: list[SliceMeasurement]) -> set[tuple[int, str]]:
    """The (slice index, measurement) of each value the table's rows hold: not absent (typed as 0, or none found)."""
    return {(m.slice_index, name) for m in measurements for name, value in m.values.items() if not np.isnan(value)}


def _show_rulers_of_held_values(rulers: dict, before: list[SliceMeasurement], after: list[SliceMeasurement]) -> None:
    """Hide the ruler of a value typed into the table as absent (0), and show it again once a value is typed back:
    a ruler in view measures what the table holds. Only those whose value came or went, so that a ruler the user hid
    stays hidden."""
    held = _held(after)
    for key in _held(before) ^ held:
        node = rulers.get(key)
        if node is not None and node.GetScene() is not None and node.GetDisplayNode() is not None:
            node.GetDisplayNode().SetVisibility(key in held)


def _differing(hashes: list[str], recorded: str | None) -> list[int]:
    """The slices whose hash differs from the one recorded (a JSON list; a slice beyond its end differs)."""
    before = json.loads(recorded or "[]")
    return [s for s, hashed in enumerate(hashes) if s >= len(before) or before[s] != hashed]


def _slice_hashes(stack_labels: np.ndarray) -> list[str]:
    return [hashlib.sha1(np.ascontiguousarray(s).tobytes()).hexdigest()[:16] for s in stack_labels]


def header_values(volume_node, dicom_value: DicomValue, tags: tuple[str, ...]) -> list[str] | None:
    """The values of tags in the DICOM header of a volume's first instance ("" where it has none); None for a volume
    not loaded from DICOM. dicom_value reads a header value, e.g. from Slicer's DICOM database
    (slicer.dicomDatabase.instanceValue)."""
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    return [dicom_value(uids[0], tag) or "" for tag in tags] if uids else None


def named_region_of_node(volume_node, dicom_value: DicomValue) -> str | None:
    """The spine region a volume loaded from DICOM names in its header (see :func:`grading.region_named`); None
    for other volumes."""
    values = header_values(volume_node, dicom_value, REGION_TAGS)
    if values is None:
        return None
    body_part, *descriptions = values
    return region_named(body_part, descriptions)


def measure_volume_node(stenosis_scene: StenosisScene, volume_node, segmenter: Segmenter,
                        progress: ProgressCallback | None = None, should_cancel=None) -> SceneOutputs:
    """Measure: segment and measure every slice, then create/update the output nodes. Nothing is added to the
    scene before the run is complete, so a cancelled run (``Cancelled``) leaves no half-made nodes."""
    volume = checked_mr_image(axial_volume_of(volume_node, stenosis_scene.dicom_value), volume_node.GetName())
    run = measure_with_segmenter(volume, segmenter, progress, should_cancel)
    return stenosis_scene.publish(volume_node, run)
