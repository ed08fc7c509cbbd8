"""The scripted module's Logic, and the module's own self-test (SpinalStenosisTest, what Slicer runs), against real
MRML (PyPI slicer-core) and the shipped networks. What slicer-core lacks (Qt, the application's scripted-module base
classes, the parameter node wrapper, translation, ``slicer.mrmlScene`` and ``slicer.modules``) is stood in for by the
smallest thing that behaves alike; the widget is not run."""
import importlib.util
import io
import sys
import types
import unittest
from pathlib import Path

import numpy as np
import pytest
from conftest import ThresholdSegmenter, phantom_arrays

slicer = pytest.importorskip("slicer", reason="slicer-core is part of the test requirements")

from SpinalStenosisLib.scene_bundle import add_volume, new_scene  # noqa: E402

MODULE_FILE = Path(__file__).parents[2] / "SpinalStenosis" / "SpinalStenosis.py"


def parameter_node_wrapper(cls):
    """slicer.parameterNodeWrapper's behaviour the module relies on: typed fields with defaults, kept in the scene
    (here: kept per wrapped node), so every wrapper of the same node sees the same values."""
    defaults = {name: cls.__dict__.get(name) for name in cls.__annotations__}
    values_of_node: dict[str, dict] = {}

    class Wrapped:
        def __init__(self, node):
            object.__setattr__(self, "_values", values_of_node.setdefault(node.GetID(), dict(defaults)))

        def __getattr__(self, name):
            return self._values[name]

        def __setattr__(self, name, value):
            self._values[name] = value

    Wrapped.__name__ = cls.__name__
    return Wrapped


class ScriptedLoadableModuleLogic:
    def getParameterNode(self):
        """The module's singleton parameter node in slicer.mrmlScene, made on first use."""
        node = slicer.mrmlScene.GetSingletonNode("SpinalStenosis", "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag("SpinalStenosis")
            node = slicer.mrmlScene.AddNode(node)
        return node


class ScriptedLoadableModule:
    pass


class ScriptedLoadableModuleWidget:
    pass


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message):
        pass


@pytest.fixture
def module(monkeypatch, tmp_path):
    """SpinalStenosis.py imported with the stand-ins, slicer.mrmlScene a new slicer-core scene."""
    context = new_scene(cache_folder=tmp_path / "cache")
    base = types.ModuleType("slicer.ScriptedLoadableModule")
    for stand_in in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                     ScriptedLoadableModuleTest):
        setattr(base, stand_in.__name__, stand_in)
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper, wrapper.Choice = parameter_node_wrapper, lambda choices: choices
    translation = types.ModuleType("slicer.i18n")
    translation.tr = lambda text: text
    for name, stand_in in (("qt", types.ModuleType("qt")), ("slicer.ScriptedLoadableModule", base),
                           ("slicer.parameterNodeWrapper", wrapper), ("slicer.i18n", translation)):
        monkeypatch.setitem(sys.modules, name, stand_in)
    monkeypatch.setattr(slicer, "mrmlScene", context.scene, raising=False)
    monkeypatch.setattr(slicer, "dicomDatabase", None, raising=False)
    segmentations = types.SimpleNamespace(logic=lambda: context.segmentations_logic)
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(segmentations=segmentations), raising=False)
    spec = importlib.util.spec_from_file_location("SpinalStenosisModule", MODULE_FILE)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    yield loaded
    loaded.SpinalStenosisLogic().stopWatchingRulers()


def test_the_modules_own_self_test_passes(module):
    result = unittest.TextTestRunner(stream=io.StringIO()).run(module.SpinalStenosisTest("runTest"))
    assert result.wasSuccessful(), result.failures + result.errors


def test_a_measured_volume_brings_its_region_and_its_rulers_are_watched_again(module):
    image, _, geometry = phantom_arrays()
    logic = module.SpinalStenosisLogic(segmenter=ThresholdSegmenter())
    cervical = add_volume(slicer.mrmlScene, image, geometry.ijk_to_ras, "cervical series")
    outputs = logic.process(cervical, region="cervical")
    logic.stopWatchingRulers()  # as when the module closes, or a scene saved with the results is opened again
    parameterNode = logic.getParameterNode()
    parameterNode.region = "lumbar"  # the module's Region left at another volume's
    assert logic.regionOf(parameterNode) == "cervical"  # what the module sets when it shows the volume
    assert logic.followVolume(parameterNode) is outputs.table
    ruler = outputs.rulers[(2, "canal_ap_mm")]
    start, end = (np.array(ruler.GetNthControlPointPositionWorld(i)) for i in range(2))
    ruler.SetNthControlPointPositionWorld(1, *(start + (end - start) * 0.5))
    row = logic.stenosisScene("cervical").row_values(outputs.table, 2)
    assert row["canal_ap_mm"] == pytest.approx(ruler.GetLineLengthWorld())  # watched again by followVolume
    parameterNode.inputVolume = add_volume(slicer.mrmlScene, image, geometry.ijk_to_ras, "not measured")
    assert logic.regionOf(parameterNode) is None and logic.followVolume(parameterNode) is None
    with pytest.raises(ValueError, match="Measure this volume first"):
        logic.remeasure(parameterNode)
    parameterNode.inputVolume = cervical
    assert logic.editedSlices(parameterNode) == []  # what the module asks about before measuring again
    parameterNode.inputVolume = None
    assert logic.editedSlices(parameterNode) == []
    for call in (logic.remeasure, logic.toCheck, logic.warnings, logic.regionNote, logic.showNarrowest):
        with pytest.raises(ValueError, match="Select an axial MR volume first"):
            call(parameterNode)


def test_process_without_a_region_grades_as_the_command_line_does(module):
    from test_body_region import body_slice

    from SpinalStenosisLib.synth.dataset import slice_geometry

    image, canal, grid = body_slice(130.0, 110.0, 200.0)
    neck = np.where(canal, 900.0, np.where(image > 100.0, 250.0, 5.0))  # canal, tissue, air for ThresholdSegmenter
    volume = add_volume(slicer.mrmlScene, np.stack([neck] * 3), slice_geometry(grid, 4.0, 3).ijk_to_ras, "neck")
    logic = module.SpinalStenosisLogic(segmenter=ThresholdSegmenter())
    outputs = logic.process(volume)
    assert logic.getParameterNode().region == "cervical"  # the image shows a whole neck, as `measure` grades it
    assert outputs.table.GetAttribute("SpinalStenosis.region") == "cervical"
    assert logic.regionNote(logic.getParameterNode()) == ""
    logic.process(volume, region="lumbar")  # a region given wins
    assert outputs.table.GetAttribute("SpinalStenosis.region") == "lumbar"
