"""The module's panel (SpinalStenosisWidget) driven as a user drives it: its own .ui's widgets, clicked, with real MRML
(slicer-core) behind them and Qt stood in for by ``slicer_module``."""
import os
import types

import numpy as np
import pytest
from conftest import ThresholdSegmenter, move_end_halfway, nothing_installed, phantom_arrays

slicer = pytest.importorskip("slicer", reason="slicer-core is part of the test requirements")

from SpinalStenosisLib import scene as scene_module  # noqa: E402
from SpinalStenosisLib.scene_bundle import add_volume  # noqa: E402

OUTPUT_CLASSES = ("vtkMRMLSegmentationNode", "vtkMRMLTableNode", "vtkMRMLMarkupsLineNode")


@pytest.fixture
def panel(module, capfd):
    """Makes the module's panel, set up in slicer.mrmlScene, its logic given a segmenter (default: the shipped
    networks); cleaned up after the test, as when Slicer quits. A slot or observer that raised (VTK prints the error
    and goes on) fails the test."""
    widgets = []

    def make(segmenter=None):
        widget = module.SpinalStenosisWidget()
        widget.setup()
        if segmenter is not None:
            widget.logic = module.SpinalStenosisLogic(segmenter=segmenter)  # injected, as scripts and tests do
        widgets.append(widget)
        return widget

    yield make
    for widget in widgets:
        widget.cleanup()
    assert "Traceback" not in capfd.readouterr().err


def phantom_volume(name="phantom"):
    image, _, geometry = phantom_arrays()
    return add_volume(slicer.mrmlScene, image, geometry.ijk_to_ras, name)


def outputs_in_scene() -> int:
    return sum(slicer.mrmlScene.GetNumberOfNodesByClass(name) for name in OUTPUT_CLASSES)


def asked_under_the_arrow_cursor(application) -> bool:
    """Every question was asked under the arrow cursor (Qt's wait cursor covers dialogs too), and every override
    cursor was restored."""
    asked_under = set(application.cursors_at_questions)
    return bool(application.questions) and asked_under == {"arrow"} and not application.cursors


def measure_in_panel(widget, application, volume, region: str | None = None) -> None:
    """What the user does: choose the volume (and the region), click Measure, wait for the steps."""
    widget.ui.inputSelector.choose(volume)
    if region is not None:
        widget.ui.regionComboBox.choose(region)
    widget.ui.measureButton.click()
    application.process_events()


def test_the_demo_is_measured_step_by_step_and_every_result_is_shown_and_usable(panel, application, tmp_path):
    widget = panel()
    ui = widget.ui
    assert not ui.measureButton.enabled and not ui.remeasureButton.enabled  # nothing to measure yet
    ui.demoButton.click()
    volume = widget._parameterNode.inputVolume
    assert ui.inputSelector.currentNode is volume and "synthetic lumbar" in ui.statusLabel.text
    ui.measureButton.click()
    assert ui.measureButton.text == "Cancel" and not ui.demoButton.enabled and ui.statusLabel.text == "Measuring…"
    application.process_events()
    table = widget._parameterNode.outputTable
    assert ui.measureButton.text == "Measure" and ui.progressBar.value == 100
    assert ui.statusLabel.text.startswith("Done.")
    assert ui.tableView.table is table and table.GetNumberOfRows() == volume.GetImageData().GetDimensions()[2]
    assert ui.findingsLabel.text.startswith("narrowest canal AP") and application.charts_shown
    shown = {"background": volume, "fit": True, "rotateToVolumePlane": True}  # the views in the slices' own plane
    assert application.views_shown == [shown, shown]  # the demo made, then measured
    assert all(button.enabled for button in (ui.remeasureButton, ui.exportButton, ui.editButton, ui.nameLevelsButton))

    view = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceNode")
    ui.tableView.display_order.reverse()  # the view sorted: its first row shown is the table's last
    ui.tableView.select(0)
    last_slice = int(table.GetTable().GetColumnByName("slice_index").GetValue(table.GetNumberOfRows() - 1))
    ruler = widget.logic._outputs(widget._parameterNode).rulers[(last_slice, "canal_ap_mm")]
    ruler_middle = np.mean([ruler.GetNthControlPointPositionWorld(i) for i in range(2)], axis=0)
    assert np.array(view.GetSliceToRAS().MultiplyPoint((0, 0, 0, 1))[:3]) == pytest.approx(ruler_middle)

    ui.levelsEdit.text = "0-8=L4"
    ui.nameLevelsButton.click()
    assert "\nL4: canal AP" in ui.findingsLabel.text
    ui.regionComboBox.choose("cervical")
    assert widget._parameterNode.region == table.GetAttribute("SpinalStenosis.region") == "cervical"  # regraded
    assert ui.findingsLabel.text == widget.logic.findings(widget._parameterNode)  # slices named L4: still lumbar
    ui.nameLevelsButton.click()  # named again, in a study now graded as cervical
    note = (" Note: level L4 is lumbar, in a study graded as cervical: graded with the lumbar cut-offs; check the "
            "level's name.")
    assert ui.statusLabel.text == "Levels named: each level's worst findings are above the table." + note

    ui.editButton.click()
    assert application.modules_selected == ["SegmentEditor"]
    assert application.editor.segmentation is widget._parameterNode.outputSegmentation
    assert application.editor.source_volume is volume
    ui.remeasureButton.click()
    assert ui.statusLabel.text == "Re-measured 0 edited slice(s)." + note and ui.tableView.table is table  # shown
    rulers = slicer.mrmlScene.GetNodesByClass("vtkMRMLMarkupsLineNode")
    count = rulers.GetNumberOfItems()
    slicer.mrmlScene.RemoveNode(rulers.GetItemAsObject(0))  # deleted in the data tree
    ui.remeasureButton.click()
    assert ui.statusLabel.text == ("Re-measured 0 edited slice(s). Rulers deleted since: 1, placed again where the "
                                   "masks give them." + note)
    assert slicer.mrmlScene.GetNodesByClass("vtkMRMLMarkupsLineNode").GetNumberOfItems() == count
    application.folder_chosen = str(tmp_path / "export")
    os.makedirs(application.folder_chosen)
    ui.exportButton.click()
    assert ui.statusLabel.text.startswith("Exported to") and any((tmp_path / "export").rglob("*.mrk.json"))
    assert application.errors == []


def test_cancel_leaves_the_scene_as_it_was_and_choosing_another_volume_cancels_too(panel, application):
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    volume = phantom_volume()
    ui.inputSelector.choose(volume)
    ui.measureButton.click()
    application.process_events(limit=1)  # one slice measured
    assert ui.progressBar.value > 0
    ui.measureButton.click()  # now "Cancel"
    assert ui.statusLabel.text == "Cancelled: nothing was changed." and ui.measureButton.text == "Measure"
    assert outputs_in_scene() == 0 and widget._parameterNode.outputTable is None
    ui.measureButton.click()
    ui.inputSelector.choose(phantom_volume("another"))  # a measurement of the first one is no longer wanted
    assert ui.statusLabel.text == "Cancelled: nothing was changed."
    application.process_events()
    assert outputs_in_scene() == 0


def test_measure_asks_before_replacing_masks_edited_by_hand(panel, application):
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    volume = phantom_volume()
    measure_in_panel(widget, application, volume)
    nodes = outputs_in_scene()
    segmentation = widget._parameterNode.outputSegmentation
    scene = widget.logic.stenosisScene(widget._parameterNode.region)
    labels = scene.labels_of(segmentation, volume)
    labels[2][labels[2] == 1] = 0  # the canal erased on slice 2, the narrowest, in the Segment Editor
    scene._write_segments(segmentation, volume, labels)
    application.answer_ok = False
    ui.measureButton.click()
    assert "slice(s) 2 were edited by hand" in application.questions[-1]
    assert widget._timer is None and scene.edited_slices(volume) == [2]  # the user said no: nothing replaced
    assert ui.findingsLabel.text.startswith("narrowest canal AP") and "on slice 2;" in ui.findingsLabel.text
    ui.remeasureButton.click()
    assert ui.statusLabel.text == "Re-measured 1 edited slice(s)." and "on slice 2" not in ui.findingsLabel.text
    application.answer_ok = True
    ui.measureButton.click()
    application.process_events()
    assert scene.edited_slices(volume) == [] and outputs_in_scene() == nodes  # measured again, no node added
    assert asked_under_the_arrow_cursor(application)


class FailingSegmenter(ThresholdSegmenter):
    def segment(self, images, grids):
        raise RuntimeError("out of memory")


def test_errors_are_shown_and_leave_nothing_half_made(panel, application):
    widget = panel(FailingSegmenter())
    ui = widget.ui
    measure_in_panel(widget, application, phantom_volume())
    assert ui.statusLabel.text == "Measurement failed: out of memory" and ui.measureButton.text == "Measure"
    assert outputs_in_scene() == 0 and ui.measureButton.enabled
    blank = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "no image data")
    ui.inputSelector.choose(blank)
    with pytest.raises(ValueError):
        ui.measureButton.click()  # Slicer shows the error; the exception ends in the Python console
    assert application.errors == ["Failed to start the measurement.\n\nthe volume 'no image data' holds no image: "
                                  "load one into it, or choose another"]
    assert widget._timer is None and outputs_in_scene() == 0


def test_a_device_this_computer_lacks_is_refused_with_what_to_choose(panel, application, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    widget = panel()  # the shipped networks, loaded at the first Measure
    ui = widget.ui
    ui.inputSelector.choose(phantom_volume())
    ui.deviceComboBox.choose("cuda")
    with pytest.raises(ValueError):
        ui.measureButton.click()
    assert application.errors == ["Failed to start the measurement.\n\nPyTorch cannot compute on 'cuda' on this "
                                  "computer (no such GPU, or a PyTorch built without it): use cpu"]
    assert widget._timer is None and ui.measureButton.text == "Measure" and outputs_in_scene() == 0


def test_closing_the_scene_empties_the_panel_and_a_new_scene_starts_afresh(panel, application):
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    measure_in_panel(widget, application, phantom_volume())
    assert ui.findingsLabel.text
    watched = [widget._parameterNode.outputTable, *widget.logic._outputs(widget._parameterNode).rulers.values()]
    assert all(node in scene_module._HAND_EDIT_WATCHES for node in watched)
    slicer.mrmlScene.Clear(0)  # File / Close Scene
    assert ui.findingsLabel.text == "" and ui.tableView.table is None
    assert not ui.measureButton.enabled and not ui.exportButton.enabled
    assert not any(node in scene_module._HAND_EDIT_WATCHES for node in watched)  # the closed scene's not kept alive
    volume = phantom_volume("after closing")
    ui.inputSelector.choose(volume)
    assert ui.measureButton.enabled and widget._parameterNode.outputTable is None
    ui.measureButton.click()
    application.process_events(limit=1)
    slicer.mrmlScene.Clear(0)  # closed while measuring: cancelled, and nothing said of the scene closed
    assert widget._timer is None and ui.statusLabel.text == ""
    assert outputs_in_scene() == 0 and ui.measureButton.text == "Measure"


def test_a_deleted_result_node_disables_what_needs_it_and_measure_makes_it_again(panel, application):
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    measure_in_panel(widget, application, phantom_volume())
    nodes = outputs_in_scene()
    for deleted in (widget._parameterNode.outputTable, widget._parameterNode.outputSegmentation):
        slicer.mrmlScene.RemoveNode(deleted)  # in the Data module
        assert not any(b.enabled for b in (ui.remeasureButton, ui.exportButton, ui.editButton, ui.nameLevelsButton))
        ui.measureButton.click()
        application.process_events()
        assert outputs_in_scene() == nodes and ui.findingsLabel.text.startswith("narrowest canal AP")
        assert ui.remeasureButton.enabled and ui.tableView.table is widget._parameterNode.outputTable


def test_export_asks_before_replacing_the_files_of_an_earlier_export(panel, application, tmp_path):
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    volume = phantom_volume("3: T2 AX L4/5")
    measure_in_panel(widget, application, volume)
    folder = tmp_path / "export"
    application.folder_chosen = str(folder)
    ui.exportButton.click()
    assert application.questions == [] and ui.statusLabel.text == f"Exported to {folder}"
    report = folder / "3_T2_AX_L4_5_report.png"
    earlier = report.read_bytes()
    move_end_halfway(widget.logic._outputs(widget._parameterNode).rulers[(2, "canal_ap_mm")])
    application.answer_ok = False
    ui.exportButton.click()
    assert application.questions[-1].startswith(f"{folder} already holds 3_T2_AX_L4_5.seg.nrrd, ")
    assert report.read_bytes() == earlier  # the user said no
    application.answer_ok = True
    ui.exportButton.click()
    assert report.read_bytes() != earlier and len(list(folder.iterdir())) == 5
    assert application.errors == [] and asked_under_the_arrow_cursor(application)
    # the folder dialog opened at Slicer's default scene folder, then where the last export went
    assert application.folder_dialogs_opened_at == [slicer.app.defaultScenePath, str(folder), str(folder)]
    status, asked, exported = ui.statusLabel.text, len(application.questions), report.read_bytes()
    application.folder_chosen = ""  # the dialog cancelled: nothing asked, written or said
    ui.exportButton.click()
    assert (ui.statusLabel.text, len(application.questions), report.read_bytes()) == (status, asked, exported)
    assert application.errors == [] and application.folder_dialogs_opened_at[-1] == str(folder)


def test_choosing_a_volume_brings_its_own_results_and_region(panel, application):
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    lumbar, cervical = phantom_volume("lumbar series"), phantom_volume("cervical series")
    for volume, region in ((cervical, "cervical"), (lumbar, "lumbar")):
        measure_in_panel(widget, application, volume, region)
    tables = {v.GetName(): widget.logic.stenosisScene().find_outputs(v).table for v in (lumbar, cervical)}
    ui.inputSelector.choose(cervical)
    assert ui.tableView.table is tables["cervical series"] and ui.regionComboBox.currentIndex == 1  # cervical
    assert tables["lumbar series"].GetAttribute("SpinalStenosis.region") == "lumbar"  # left as graded
    cervical_findings = ui.findingsLabel.text
    ui.inputSelector.choose(phantom_volume("not measured"))
    assert ui.tableView.table is None and ui.findingsLabel.text == "" and not ui.remeasureButton.enabled
    assert ui.statusLabel.text == "" and ui.progressBar.value == 0  # they told of the measurement of another
    ui.inputSelector.choose(lumbar)
    assert ui.tableView.table is tables["lumbar series"] and ui.regionComboBox.currentIndex == 0
    assert ui.findingsLabel.text != cervical_findings  # graded with the lumbar cut-offs
    widget.exit()  # another module shown; a script measures the cervical series again
    widget.logic.process(cervical, region="cervical")
    assert ui.tableView.table is tables["lumbar series"]
    widget.enter()
    assert ui.inputSelector.currentNode is cervical and ui.tableView.table is tables["cervical series"]
    assert ui.findingsLabel.text == cervical_findings and ui.regionComboBox.currentIndex == 1
    ui.regionComboBox.choose("lumbar")  # the panel's widgets are bound again
    assert tables["cervical series"].GetAttribute("SpinalStenosis.region") == "lumbar"


def test_a_scene_opened_from_file_shows_its_results_and_follows_a_ruler_moved_by_hand(
        panel, application, phantom_files, tmp_path):
    from SpinalStenosisLib.pipeline import measure_with_segmenter
    from SpinalStenosisLib.scene_bundle import write_scene_bundle
    from SpinalStenosisLib.volume_io import open_axial

    image_path, _ = phantom_files
    run = measure_with_segmenter(open_axial(image_path), ThresholdSegmenter())
    bundle = write_scene_bundle([run], image_path, tmp_path / "scene.mrb", region="cervical")
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    assert slicer.mrmlScene.ReadFromMRB(str(bundle))  # File / Add Data, the measure --scene bundle
    volume = slicer.mrmlScene.GetFirstNodeByName("phantom")
    ui.inputSelector.choose(volume)
    outputs = widget.logic.stenosisScene().find_outputs(volume)
    assert ui.tableView.table is outputs.table and ui.regionComboBox.currentIndex == 1  # graded cervical
    before = ui.findingsLabel.text
    move_end_halfway(outputs.rulers[(0, "canal_ap_mm")])
    assert ui.findingsLabel.text != before and "slice 0" in ui.findingsLabel.text


def test_the_demo_of_a_region_without_one_is_lumbar_and_the_panel_says_so(panel, application):
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    measure_in_panel(widget, application, phantom_volume(), "thoracic")
    thoracic_table = widget._parameterNode.outputTable
    ui.demoButton.click()
    assert thoracic_table.GetAttribute("SpinalStenosis.region") == "thoracic"  # not regraded by the demo's region
    assert ui.regionComboBox.items[ui.regionComboBox.currentIndex] == "lumbar"
    assert "synthetic lumbar" in ui.statusLabel.text and ui.measureButton.enabled
    lumbar = ui.inputSelector.currentNode
    ui.regionComboBox.choose("cervical")
    ui.demoButton.click()
    assert ui.inputSelector.currentNode is not lumbar and "synthetic cervical" in ui.statusLabel.text
    assert ui.regionComboBox.currentIndex == 1


def test_a_saved_scene_opened_again_shows_its_results_and_follows_a_ruler_moved_by_hand(panel, application, tmp_path):
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    measure_in_panel(widget, application, phantom_volume(), "cervical")
    findings = ui.findingsLabel.text
    saved = tmp_path / "saved.mrb"
    assert slicer.mrmlScene.WriteToMRB(str(saved))  # File / Save, then File / Load Scene
    assert slicer.mrmlScene.ReadFromMRB(str(saved), True)
    volume = widget._parameterNode.inputVolume
    assert volume.GetName() == "phantom" and ui.inputSelector.currentNode is volume
    assert ui.tableView.table is widget._parameterNode.outputTable and ui.regionComboBox.currentIndex == 1
    assert ui.findingsLabel.text == findings and ui.remeasureButton.enabled
    move_end_halfway(widget.logic.stenosisScene().find_outputs(volume).rulers[(0, "canal_ap_mm")])
    assert ui.findingsLabel.text != findings and "slice 0" in ui.findingsLabel.text


def test_a_series_loaded_from_dicom_brings_the_region_its_header_names(panel, application, monkeypatch):
    headers = {("1.2.3", "0018,0015"): "CSPINE", ("4.5.6", "0008,103E"): "T2 TSE AX LWS"}
    monkeypatch.setattr(slicer, "dicomDatabase", types.SimpleNamespace(
        isOpen=True, instanceValue=lambda uid, tag: headers.get((uid, tag), "")))
    widget = panel(ThresholdSegmenter())
    ui = widget.ui
    neck, lumbar = phantom_volume("C-spine"), phantom_volume("L-spine")
    neck.SetAttribute("DICOM.instanceUIDs", "1.2.3 1.2.4")  # as Slicer's DICOM module marks what it loaded
    lumbar.SetAttribute("DICOM.instanceUIDs", "4.5.6")
    ui.inputSelector.choose(neck)
    assert ui.regionComboBox.items[ui.regionComboBox.currentIndex] == "cervical"
    ui.measureButton.click()
    application.process_events()
    assert widget._parameterNode.outputTable.GetAttribute("SpinalStenosis.region") == "cervical"
    ui.inputSelector.choose(lumbar)
    assert ui.regionComboBox.items[ui.regionComboBox.currentIndex] == "lumbar"


def test_pytorch_and_pillow_are_installed_when_first_needed_if_the_user_agrees(module, panel, application,
                                                                              monkeypatch, tmp_path):
    installed = nothing_installed(module, monkeypatch)
    widget = panel()  # the shipped networks
    ui = widget.ui
    ui.inputSelector.choose(phantom_volume())
    application.answer_ok = False
    with pytest.raises(RuntimeError):
        ui.measureButton.click()
    assert application.questions[-1] == ("Spinal Stenosis needs torch>=2.0 (PyTorch: 200 MB for a CPU build, a few "
                                         "GB with GPU support). Install now?") and not installed
    assert application.errors[-1].endswith("Measuring needs PyTorch, which was not installed.")
    application.answer_ok = True
    measure_in_panel(widget, application, widget._parameterNode.inputVolume)
    assert installed == ["torch>=2.0"] and ui.statusLabel.text.startswith("Done.")  # Pillow is not asked for yet

    application.folder_chosen = str(tmp_path / "export")
    application.answer_ok = False
    with pytest.raises(RuntimeError):
        ui.exportButton.click()
    assert application.questions[-1] == "Spinal Stenosis needs Pillow>=10.1. Install now?"
    assert application.errors[-1].endswith("Exporting needs Pillow (it draws the report), which was not installed.")
    assert not (tmp_path / "export").exists()
    application.answer_ok = True
    ui.exportButton.click()
    assert installed == ["torch>=2.0", "Pillow>=10.1"] and ui.statusLabel.text.startswith("Exported to")
    assert asked_under_the_arrow_cursor(application)


def test_an_install_that_does_not_take_says_how_to_install_by_hand(module, panel, application, monkeypatch):
    nothing_installed(module, monkeypatch, installs_take=False)  # pip runs, and still nothing is there
    widget = panel()
    widget.ui.inputSelector.choose(phantom_volume())
    with pytest.raises(RuntimeError):
        widget.ui.measureButton.click()
    assert application.errors[-1].endswith("Could not install torch>=2.0. Run slicer.util.pip_install('torch>=2.0') "
                                           "in the Python console (for PyTorch, or install the PyTorch extension "
                                           "from the Extensions Manager), then restart Slicer.")


def test_reload_in_developer_mode_reloads_the_lib_too(panel):
    import sys

    widget = panel(ThresholdSegmenter())
    lib = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "SpinalStenosisLib"}
    assert "SpinalStenosisLib.scene" in lib
    try:
        widget.onReload()
        assert widget.reloaded and not any(name.split(".")[0] == "SpinalStenosisLib" for name in sys.modules)
    finally:
        sys.modules.update(lib)  # the same modules back, for the tests that follow
