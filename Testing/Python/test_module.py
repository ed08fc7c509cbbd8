"""The scripted module's Logic, and the module's own self-test (SpinalStenosisTest, what Slicer runs), against real
MRML (PyPI slicer-core) and the shipped networks; what slicer-core lacks is stood in for by ``slicer_module``."""
import io
import unittest

import numpy as np
import pytest
from conftest import ThresholdSegmenter, move_end_halfway, nothing_installed, phantom_arrays, region_looks

slicer = pytest.importorskip("slicer", reason="slicer-core is part of the test requirements")

from SpinalStenosisLib.scene_bundle import add_volume  # noqa: E402
from SpinalStenosisLib.scene_table import row_values  # noqa: E402


def test_the_modules_own_self_test_passes_unattended_installing_what_is_missing_without_asking(
        module, application, monkeypatch):
    installed = nothing_installed(module, monkeypatch)  # neither PyTorch nor Pillow yet
    application.answer_ok = False  # a question would go unanswered (CTest, Reload and Test left running)
    result = unittest.TextTestRunner(stream=io.StringIO()).run(module.SpinalStenosisTest("runTest"))
    assert result.wasSuccessful(), result.failures + result.errors
    assert application.questions == [] and installed == ["torch>=2.0", "Pillow>=10.1"]


def test_pytorch_is_installed_by_the_pytorch_extension_where_slicer_has_it_and_the_rest_by_pip(module, monkeypatch):
    import importlib.machinery
    import sys
    import types

    installed = nothing_installed(module, monkeypatch)
    extension_installs = []

    class PyTorchUtilsLogic:  # the SlicerPyTorch extension's logic: it picks the build for the machine's GPU
        def installTorch(self, askConfirmation, torchVersionRequirement):
            extension_installs.append((askConfirmation, torchVersionRequirement))
            installed.append(module.REQUIREMENTS["torch"])

    extension = types.ModuleType("PyTorchUtils")
    extension.__spec__ = importlib.machinery.ModuleSpec("PyTorchUtils", None)
    extension.PyTorchUtilsLogic = PyTorchUtilsLogic
    monkeypatch.setitem(sys.modules, "PyTorchUtils", extension)
    assert module.SpinalStenosisLogic().ensureDependencies(askConfirmation=False)
    assert extension_installs == [(False, ">=2.0")]  # asked once, by this module, not again by the extension
    assert installed == ["torch>=2.0", "Pillow>=10.1"]  # PyTorch by the extension, Pillow by pip


def test_the_module_names_its_category_and_its_help_links_to_the_documentation(module):
    import types

    parent = types.SimpleNamespace()
    module.SpinalStenosis(parent)
    assert parent.title == "Spinal Stenosis" and parent.categories == ["Quantification"]
    assert f'<a href="{module.HOMEPAGE}">documentation</a>' in parent.helpText
    assert "not a medical device" in parent.helpText and "synthetic" in parent.acknowledgementText


def test_a_requirement_is_met_by_an_installed_distribution_of_a_version_it_allows(module):
    assert module._installed("numpy>=1.0") and module._installed("torch>=2.0")  # "2.13.0+cpu": a local version
    assert not module._installed("numpy>=999") and not module._installed("no-such-distribution-here")
    assert set(module.REQUIREMENTS) == {"torch", "PIL"}  # what Slicer does not bundle (see test_extension)


def test_a_measured_volume_brings_its_region_and_its_rulers_are_watched_again(module):
    image, _, geometry = phantom_arrays()
    logic = module.SpinalStenosisLogic(segmenter=ThresholdSegmenter())
    cervical = add_volume(slicer.mrmlScene, image, geometry.ijk_to_ras, "cervical series")
    outputs = logic.process(cervical, region="cervical")
    logic.stopWatchingRulers()  # as when the module closes, or a scene saved with the results is opened again
    parameterNode = logic.getParameterNode()
    parameterNode.region = "lumbar"  # the module's Region left at another volume's
    assert logic.regionOf(parameterNode) == "cervical"
    assert logic.followVolume(parameterNode) is outputs.table and parameterNode.region == "cervical"
    assert outputs.table.GetAttribute("SpinalStenosis.region") == "cervical"  # not regraded on the way
    length = move_end_halfway(outputs.rulers[(2, "canal_ap_mm")])
    row = row_values(outputs.table, 2)
    assert row["canal_ap_mm"] == pytest.approx(length)  # watched again by followVolume
    parameterNode.inputVolume = add_volume(slicer.mrmlScene, image, geometry.ijk_to_ras, "not measured")
    assert logic.regionOf(parameterNode) is None and logic.followVolume(parameterNode) is None
    with pytest.raises(ValueError, match="Measure this volume first"):
        logic.remeasure(parameterNode)
    parameterNode.inputVolume = cervical
    assert logic.editedSlices(parameterNode) == []  # what the module asks about before measuring again
    parameterNode.inputVolume = None
    assert logic.editedSlices(parameterNode) == []
    for call in (logic.remeasure, logic.toCheck, logic.warnings, logic.regionNotes, logic.showNarrowest):
        with pytest.raises(ValueError, match="Select an axial MR volume first"):
            call(parameterNode)


def test_process_without_a_region_grades_as_the_command_line_does(module, monkeypatch):
    from test_body_region import body_slice

    from SpinalStenosisLib.synth.dataset import slice_geometry

    looks = region_looks(monkeypatch)  # process grades by what the image shows, and the table notes it

    image, canal, grid = body_slice(130.0, 110.0, 200.0)
    neck = np.where(canal, 900.0, np.where(image > 100.0, 250.0, 5.0))  # canal, tissue, air for ThresholdSegmenter
    volume = add_volume(slicer.mrmlScene, np.stack([neck] * 3), slice_geometry(grid, 4.0, 3).ijk_to_ras, "neck")
    logic = module.SpinalStenosisLogic(segmenter=ThresholdSegmenter())
    outputs = logic.process(volume)
    assert logic.getParameterNode().region == "cervical"  # the image shows a whole neck, as `measure` grades it
    assert outputs.table.GetAttribute("SpinalStenosis.region") == "cervical"
    assert logic.regionNotes(logic.getParameterNode()) == []
    logic.process(volume, region="lumbar")  # a region given wins
    assert outputs.table.GetAttribute("SpinalStenosis.region") == "lumbar"
    assert logic.regionNotes(logic.getParameterNode())[0].startswith("the image shows a whole neck, and the table is "
                                                                       "graded with the lumbar cut-offs")
    assert len(looks) == 2  # once a run
