"""A Slicer scene without the Slicer application (PyPI slicer-core), and ``--scene OUT.mrb`` bundles."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .outputs import OutputError, block_folder
from .pipeline import MeasurementRun
from .scene import StenosisScene
from .volume_io import InputError, input_name, not_utf8


@dataclass
class SceneContext:
    scene: object
    application_logic: object
    segmentations_logic: object
    markups_logic: object


def new_scene(cache_folder: Path | None = None) -> SceneContext:
    """An MRML scene with the logics the engine uses registered (as Slicer's application would)."""
    import slicer

    scene = slicer.vtkMRMLScene()
    application_logic = slicer.vtkSlicerApplicationLogic()
    application_logic.SetMRMLScene(scene)
    application_logic.GetColorLogic().SetMRMLScene(scene)
    application_logic.GetColorLogic().AddDefaultColorNodes()

    def register(logic, name):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(application_logic)
        application_logic.SetModuleLogic(name, logic)
        return logic

    register(slicer.vtkSlicerSubjectHierarchyModuleLogic(), "SubjectHierarchy")
    segmentations = register(slicer.vtkSlicerSegmentationsModuleLogic(), "Segmentations")
    register(slicer.vtkSlicerVolumesLogic(), "Volumes")
    markups = register(slicer.vtkSlicerMarkupsLogic(), "Markups")
    if cache_folder is not None:  # reading .mrb needs a cache folder
        cache = slicer.vtkCacheManager()
        cache.SetRemoteCacheDirectory(str(cache_folder))
        data_io = slicer.vtkDataIOManager()
        data_io.SetCacheManager(cache)
        scene.SetDataIOManager(data_io)
        scene.SetCacheManager(cache)
    return SceneContext(scene, application_logic, segmentations, markups)


def add_volume(scene, voxels: np.ndarray, ijk_to_ras: np.ndarray, name: str):
    """A scalar volume node holding voxels [k, j, i] with the given IJK→RAS matrix."""
    import slicer.util
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, voxels)
    matrix = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(ijk_to_ras[r, c]))
    node.SetIJKToRASMatrix(matrix)
    node.CreateDefaultDisplayNodes()
    return node


def write_scene_bundle(runs: list[MeasurementRun], input_path: Path, mrb_path: Path, region: str = "lumbar",
                       overwrite: bool = False) -> Path:
    """Volume, segmentation, rulers, table and region box of each run (one, or one per block of a DICOM
    series) as a Slicer .mrb."""
    mrb_path = Path(mrb_path).resolve()
    if mrb_path.suffix != ".mrb":
        raise OutputError(f"{mrb_path}: a scene bundle must end in .mrb")
    if shown := not_utf8(mrb_path):
        raise OutputError(f"{shown}: the path holds bytes that are not UTF-8, which 3D Slicer's scene cannot be "
                          "written to; name another")
    if mrb_path.exists() and not overwrite:
        raise OutputError(f"{mrb_path}: exists; pass --overwrite to replace it")
    try:
        import slicer  # noqa: F401
    except ImportError:
        raise InputError("--scene needs slicer-core: pip install 'spinal-stenosis[slicer]'") from None
    context = new_scene()
    name = input_name(input_path)
    for k, run in enumerate(runs, 1):
        volume = add_volume(context.scene, run.volume.source_voxels(), run.volume.source_geometry.ijk_to_ras,
                            f"{name} {block_folder(k)}" if len(runs) > 1 else name)
        StenosisScene(context.scene, context.segmentations_logic, region).publish(volume, run)
    mrb_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mrb-", dir=mrb_path.parent) as staging:
        partial = Path(staging) / mrb_path.name
        if not context.scene.WriteToMRB(str(partial)):
            raise OutputError(f"{mrb_path}: writing the scene bundle failed")
        os.replace(partial, mrb_path)
    return mrb_path
