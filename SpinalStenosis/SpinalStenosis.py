"""Spinal Stenosis: measure the spinal canal and neural foramina on axial MR (thin shell over SpinalStenosisLib)."""
import logging
import os
from typing import Annotated, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

# What the module needs beyond what 3D Slicer bundles for itself (NumPy, SciPy, SimpleITK, VTK), by import name:
# PyTorch to measure (through the PyTorch extension where it is installed); Pillow to draw the exported report,
# which Slicer bundles for its DICOM module (10.1.0 in its SuperBuild's DICOM requirements), here in case a release
# has none or an older one.
REQUIREMENTS = {"torch": "torch>=2.0", "PIL": "Pillow>=10.1"}
HOMEPAGE = "https://github.com/SlicerSpinalStenosis/SlicerSpinalStenosis#readme"  # the extension's EXTENSION_HOMEPAGE


def _installed(requirement: str) -> bool:
    """Whether a distribution that meets the pip requirement (e.g. "Pillow>=10.1") is installed."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    wanted = Requirement(requirement)
    try:
        return wanted.specifier.contains(version(wanted.name), prereleases=True)
    except PackageNotFoundError:
        return False


def _askOkCancel(text: str) -> bool:
    """Ask the user under the arrow cursor, also inside a wait-cursor block (Qt's override cursor covers dialogs);
    whether they chose OK."""
    slicer.app.setOverrideCursor(qt.Qt.ArrowCursor)
    try:
        return slicer.util.confirmOkCancelDisplay(text)
    finally:
        slicer.app.restoreOverrideCursor()


class SpinalStenosis(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Spinal Stenosis")
        self.parent.categories = ["Quantification"]
        self.parent.contributors = ["SlicerSpinalStenosis developers"]
        self.parent.helpText = _(
            "Measures the spinal canal (thecal sac) antero-posterior and transverse diameters, the dural-sac area "
            "and the narrowest width of the left and right neural foramina on axial T2 MR, lumbar or cervical. "
            "Two coordinate-convolution U-Nets (CoU-Net) follow Upadhyay, Singhal and Singh, 'Spinal Stenosis "
            "Detection in MRI using Modular Coordinate Convolutional Attention Networks', IJCNN 2019: the first "
            "finds the region of interest, the second segments canal and foramina on an upsampled crop. "
            "Results are editable segments, ruler markups and a table; edit a segment and click Re-measure. "
            "Research use only: not a medical device. See the <a href=\"{homepage}\">documentation</a>.").format(
            homepage=HOMEPAGE)
        self.parent.acknowledgementText = _(
            "Networks trained only on synthetic images made by this extension. Cut-offs: Verbiest 1977, "
            "Bolender 1985, Talekar 2017 (see the README).")


@parameterNodeWrapper
class SpinalStenosisParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode
    region: Annotated[str, Choice(["lumbar", "cervical", "thoracic"])] = "lumbar"
    device: Annotated[str, Choice(["cpu", "cuda", "mps"])] = "cpu"


class SpinalStenosisWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._timer = None
        self._volumeFollowed = None
        self._tableFollowed = None
        self._exportFolder = ""  # where the last export went: the next one's dialog opens there

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpinalStenosis.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpinalStenosisLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self.ui.demoButton.connect("clicked(bool)", self.onDemoButton)
        self.ui.measureButton.connect("clicked(bool)", self.onMeasureButton)
        self.ui.remeasureButton.connect("clicked(bool)", self.onRemeasureButton)
        self.ui.nameLevelsButton.connect("clicked(bool)", self.onNameLevelsButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.ui.editButton.connect("clicked(bool)", self.onEditButton)
        self.ui.tableView.connect("selectionChanged()", self.onTableSelectionChanged)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancel()
        self.removeObservers()
        if self.logic:
            self.logic.stopWatchingRulers()

    def onReload(self) -> None:
        """Developer mode's Reload, of the Lib too: Slicer runs this file again, but SpinalStenosisLib's modules would
        stay as first imported."""
        import sys

        for name in [name for name in sys.modules if name.split(".")[0] == "SpinalStenosisLib"]:
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self._releaseParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()
        self.logic.stopWatchingRulers()  # the closing scene's nodes must not stay alive in the watch list
        self.setParameterNode(None)
        self._followTable()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneEndImport(self, caller, event) -> None:
        """A scene loaded from file may hold the module's saved parameters, whose node references MRML resolves only
        at the end of the import, without a Modified event: the panel takes them (or the first volume) now."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def _releaseParameterNode(self) -> None:
        """The panel and the parameter node no longer follow each other (the module left, or another node set)."""
        if self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def setParameterNode(self, inputParameterNode: Optional[SpinalStenosisParameterNode]) -> None:
        self._releaseParameterNode()
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._followVolume()
        self.logic.followRegion(self._parameterNode)
        self._followTable()
        self._updateButtons()

    def _followTable(self) -> None:
        """The findings line follows the output table, whatever changes it: Measure, Re-measure, the region, a
        ruler moved, a value or a level typed into a cell."""
        table = self._parameterNode.outputTable if self._parameterNode else None
        if table is self._tableFollowed:
            return
        if self._tableFollowed is not None:
            self.removeObserver(self._tableFollowed, vtk.vtkCommand.ModifiedEvent, self._showFindings)
        self._tableFollowed = table
        if table is not None:
            self.addObserver(table, vtk.vtkCommand.ModifiedEvent, self._showFindings)
        self._showFindings()

    def _showFindings(self, caller=None, event=None) -> None:
        self.ui.findingsLabel.text = self.logic.findings(self._parameterNode) if self._tableFollowed else ""

    def _followVolume(self) -> None:
        """A newly chosen volume cancels a measurement of the one before and brings its own results into the panel
        (none if it was not measured), with the region they were graded with (Logic.followVolume)."""
        volume = self._parameterNode.inputVolume
        if volume is self._volumeFollowed:
            return
        self._volumeFollowed = volume
        self.ui.statusLabel.text, self.ui.progressBar.value = "", 0  # they told of the volume before
        self.onCancel()
        self.ui.tableView.setMRMLTableNode(self.logic.followVolume(self._parameterNode))

    def _updateButtons(self) -> None:
        running = self._timer is not None
        hasInput = bool(self._parameterNode and self._parameterNode.inputVolume)
        hasOutput = bool(self._parameterNode and self._parameterNode.outputSegmentation  # both: one may be deleted
                         and self._parameterNode.outputTable)
        self.ui.measureButton.text = _("Cancel") if running else _("Measure")
        self.ui.measureButton.enabled = running or hasInput
        self.ui.demoButton.enabled = not running
        for button in (self.ui.remeasureButton, self.ui.exportButton, self.ui.editButton, self.ui.nameLevelsButton):
            button.enabled = hasOutput and not running

    def onDemoButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to make the demo series."), waitCursor=True):
            volume = self.logic.loadDemoVolume(self._parameterNode)
            slicer.util.setSliceViewerLayers(background=volume, fit=True, rotateToVolumePlane=True)
            self.ui.statusLabel.text = _("A synthetic {region} T2 series, made here (no patient's): click "
                                         "Measure.").format(region=self._parameterNode.region)

    def onMeasureButton(self) -> None:
        if self._timer is not None:
            self.onCancel()
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the measurement."), waitCursor=True):
            edited = self.logic.editedSlices(self._parameterNode)
            if edited and not _askOkCancel(
                    _("The masks of slice(s) {slices} were edited by hand. Measuring again replaces them with the "
                      "networks' (Re-measure measures your edits). Measure again?").format(
                        slices=", ".join(map(str, edited)))):
                return
            steps = self.logic.startMeasure(self._parameterNode)
            self._timer = qt.QTimer()
            self._timer.setInterval(0)
            self._timer.timeout.connect(lambda: self._step(steps))
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Measuring…")
            self._timer.start()
            self._updateButtons()

    def _step(self, steps) -> None:
        try:
            done, total = next(steps)
            self.ui.progressBar.value = int(100 * done / total)
            self.ui.statusLabel.text = _("Slice {done} of {total}").format(done=done, total=total)
        except StopIteration as finished:
            self._stopTimer()
            with slicer.util.tryWithErrorDisplay(_("Failed to show the results.")):
                self._showResults(self.logic.finishMeasure(self._parameterNode, finished.value))
        except Exception as error:  # shown to the user, nothing half-made is left in the scene
            self._stopTimer()
            self.ui.statusLabel.text = _("Measurement failed: {error}").format(error=error)
            logging.exception("SpinalStenosis measurement failed")

    def _stopTimer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._updateButtons()

    def onCancel(self) -> None:
        if self._timer is not None:
            self._stopTimer()
            self.ui.statusLabel.text = _("Cancelled: nothing was changed.")

    def _showResults(self, outputs) -> None:
        self.ui.tableView.setMRMLTableNode(outputs.table)
        # the views turned to the slices' plane: each shows one acquired slice with its rulers, also when the axial
        # slices were angled to a disc
        slicer.util.setSliceViewerLayers(background=self._parameterNode.inputVolume, fit=True, rotateToVolumePlane=True)
        if outputs.chart is not None:
            slicer.modules.plots.logic().ShowChartInLayout(outputs.chart)
        self.logic.showNarrowest(self._parameterNode)
        self.ui.progressBar.value = 100
        status = _("Done. The views show the narrowest canal. Click a row to see its slice; edit a segment, then "
                   "Re-measure.")
        toCheck = self.logic.toCheck(self._parameterNode)
        if toCheck:
            status += " " + _("Check {what}: what the network was unsure of, the image barely shows, lies off the "
                              "spine's axis, is not one round outline, or the edge of the image cuts, and a foramen "
                              "not found where the other side's is.").format(what=toCheck)
        self.ui.statusLabel.text = status + self._resultNotes()

    @staticmethod
    def _notes(notes: list) -> str:
        """Warnings and notes as the status line ends with them."""
        return "".join(" " + _("Note: {note}.").format(note=note) for note in notes)

    def _resultNotes(self) -> str:
        """The results' warnings and region notes, as the status line ends with them after Measure and Re-measure."""
        return self._notes([*self.logic.warnings(self._parameterNode), *self.logic.regionNotes(self._parameterNode)])

    def onTableSelectionChanged(self) -> None:
        """The views go to the slice of the clicked row (the view may be sorted: map to the table's row)."""
        selected = self.ui.tableView.selectionModel().selectedIndexes()
        if not selected or not self._parameterNode or not self._parameterNode.outputTable:
            return
        # the model's row is the table's (column titles are the header, the view is not transposed); the model's
        # mrmlTableRowIndex, neither a slot nor invokable, is not callable from Python
        row = self.ui.tableView.sortFilterProxyModel().mapToSource(selected[0]).row()
        if row >= 0:
            with slicer.util.tryWithErrorDisplay(_("Failed to show the slice.")):
                self.logic.showRow(self._parameterNode, row)

    def onRemeasureButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to re-measure."), waitCursor=True):
            missing = self.logic.missingRulers(self._parameterNode)
            changed = self.logic.remeasure(self._parameterNode)
            status = _("Re-measured {n} edited slice(s).").format(n=len(changed))
            if missing:
                status += " " + _("Rulers deleted since: {n}, placed again where the masks give them.").format(
                    n=len(missing))
            self.ui.statusLabel.text = status + self._resultNotes()

    def onNameLevelsButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to name the levels."), waitCursor=True):
            self.logic.nameLevels(self._parameterNode, self.ui.levelsEdit.text)
            named = _("Levels named: each level's worst findings are above the table.")
            self.ui.statusLabel.text = named + self._notes(self.logic.regionNotes(self._parameterNode))

    def onEditButton(self) -> None:
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(self._parameterNode.outputSegmentation)
        editor.setSourceVolumeNode(self._parameterNode.inputVolume)

    def onExportButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(None, _("Export rulers, table and segmentation"),
                                                     self._exportFolder or slicer.app.defaultScenePath)
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to export."), waitCursor=True):
            existing = [path.name for path in self.logic.exportedFiles(self._parameterNode, folder).values()
                        if path.exists()]
            if existing and not _askOkCancel(
                    _("{folder} already holds {files}. Replace them?").format(folder=folder,
                                                                              files=", ".join(existing))):
                return
            paths = self.logic.export(self._parameterNode, folder)
            self._exportFolder = folder
            self.ui.statusLabel.text = _("Exported to {folder}").format(folder=os.path.dirname(paths["table"]))


class SpinalStenosisLogic(ScriptedLoadableModuleLogic):
    """Facade over SpinalStenosisLib. ``process()`` blocks (scripts, tests, batch); the widget uses
    ``startMeasure``/``finishMeasure`` so the GUI stays responsive.

    >>> SpinalStenosisLogic().process(slicer.util.getNode("T2 axial"))   # doctest: +SKIP
    """

    def __init__(self, segmenter=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._segmenter = segmenter
        self._segmenterDevice = None  # the device the networks were loaded on; None for an injected segmenter
        self._scene = None

    def getParameterNode(self):
        return SpinalStenosisParameterNode(super().getParameterNode())

    def ensureDependencies(self, modules=tuple(REQUIREMENTS), askConfirmation: bool = True) -> bool:
        """Install those of modules (REQUIREMENTS' import names) whose requirement is not met, once the user agrees
        (without asking, for a test that runs unattended); whether all of them are met."""
        import importlib.util

        missing = [REQUIREMENTS[module] for module in modules if not _installed(REQUIREMENTS[module])]
        if not missing:
            return True
        if askConfirmation:
            # the PyTorch extension picks a CUDA build where it finds an NVIDIA GPU, and pip on Linux takes one
            size = (_(" (PyTorch: 200 MB for a CPU build, a few GB with GPU support)")
                    if REQUIREMENTS["torch"] in missing else "")
            if not _askOkCancel(_("Spinal Stenosis needs {packages}{size}. Install now?").format(
                    packages=_(" and ").join(missing), size=size)):
                return False
        for requirement in missing:
            if requirement == REQUIREMENTS["torch"] and importlib.util.find_spec("PyTorchUtils") is not None:
                import PyTorchUtils

                PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=">=2.0")
            else:
                slicer.util.pip_install(requirement)
        importlib.invalidate_caches()
        unmet = [requirement for requirement in missing if not _installed(requirement)]
        if unmet:
            raise RuntimeError(_("Could not install {packages}. Run slicer.util.pip_install('{first}') in the Python "
                                 "console (for PyTorch, or install the PyTorch extension from the Extensions "
                                 "Manager), then restart Slicer.").format(packages=_(" and ").join(unmet),
                                                                         first=unmet[0]))
        return True

    def stenosisScene(self, region: str = "lumbar"):
        from SpinalStenosisLib.scene import StenosisScene

        if self._scene is None or self._scene.scene is not slicer.mrmlScene:
            self._scene = StenosisScene(slicer.mrmlScene, slicer.modules.segmentations.logic(), region,
                                        self.dicomValue)
        self._scene.region = region
        return self._scene

    def segmenter(self, device: str):
        """The shipped networks on `device`, loaded again only when the device changes; PyTorch installed first, if
        the user agrees."""
        if self._segmenter is None or self._segmenterDevice not in (None, device):
            if not self.ensureDependencies(("torch",)):
                raise RuntimeError(_("Measuring needs PyTorch, which was not installed."))
            from SpinalStenosisLib.inference import load_segmenter

            self._segmenter = load_segmenter(device=device)
            self._segmenterDevice = device
        return self._segmenter

    def loadDemoVolume(self, parameterNode):
        """The synthetic demo series of the parameter node's region (made here, nothing downloaded; the one made
        before if the scene holds it) as the input volume; a lumbar one for the thoracic region, which it then
        takes (there is no thoracic demo)."""
        from SpinalStenosisLib.demo import add_demo_volume
        from SpinalStenosisLib.grading import REGIONS

        region = parameterNode.region if parameterNode.region in REGIONS else "lumbar"
        volume = add_demo_volume(slicer.mrmlScene, region)
        with slicer.util.NodeModify(parameterNode):  # the region is the demo's, not one to regrade the last volume with
            parameterNode.region, parameterNode.inputVolume = region, volume
        return volume

    def startMeasure(self, parameterNode):
        """A generator of (slices done, total); its return value is the measurement run."""
        from SpinalStenosisLib.pipeline import checked_mr_image, segmenter_steps
        from SpinalStenosisLib.scene import axial_volume_of

        volumeNode = parameterNode.inputVolume
        if not volumeNode:
            raise ValueError(_("Select an axial MR volume first."))
        volume = checked_mr_image(axial_volume_of(volumeNode, self.dicomValue), volumeNode.GetName())
        return segmenter_steps(volume, self.segmenter(parameterNode.device))

    def finishMeasure(self, parameterNode, run):
        """Publish a finished run into the scene (its warnings go to the log too); the SceneOutputs."""
        from SpinalStenosisLib.scene_table import warnings_of

        outputs = self.stenosisScene(parameterNode.region).publish(parameterNode.inputVolume, run,
                                                                   {"device": parameterNode.device})
        parameterNode.outputSegmentation = outputs.segmentation
        parameterNode.outputTable = outputs.table
        for warning in warnings_of(outputs.table):
            logging.warning("SpinalStenosis: %s", warning)
        return outputs

    def process(self, inputVolume, region: Optional[str] = None, device: str = "cpu", progress=None):
        """Measure inputVolume (blocking); returns the SceneOutputs (segmentation, table, rulers, region). Without a
        region, as the command line grades: the one the volume's DICOM header names, else cervical where the image
        shows a whole neck or the cord in the sac, else lumbar."""
        from SpinalStenosisLib.grading import grading_region
        from SpinalStenosisLib.pipeline import run_steps

        parameterNode = self.getParameterNode()
        parameterNode.inputVolume, parameterNode.device = inputVolume, device
        run = run_steps(self.startMeasure(parameterNode), progress)
        parameterNode.region = grading_region(region, self.namedRegion(inputVolume), run.shown_region)
        return self.finishMeasure(parameterNode, run)

    def _outputs(self, parameterNode):
        if not parameterNode.inputVolume:
            raise ValueError(_("Select an axial MR volume first."))
        outputs = self.stenosisScene(parameterNode.region).find_outputs(parameterNode.inputVolume)
        if outputs is None:
            raise ValueError(_("Measure this volume first."))
        return outputs

    def editedSlices(self, parameterNode) -> list:
        """The slices of the input volume whose masks were edited by hand since Measure: what measuring again would
        replace (none without an input or results)."""
        volume = parameterNode.inputVolume
        return self.stenosisScene(parameterNode.region).edited_slices(volume) if volume else []

    def remeasure(self, parameterNode) -> list:
        return self.stenosisScene(parameterNode.region).remeasure(parameterNode.inputVolume,
                                                                   self._outputs(parameterNode))

    def missingRulers(self, parameterNode) -> list:
        """The rulers deleted (or short of a point) since Measure or Re-measure placed them: Re-measure places them
        again."""
        return self.stenosisScene(parameterNode.region).missing_rulers(self._outputs(parameterNode))

    def followVolume(self, parameterNode):
        """Point the parameter node's outputs at those of its input volume (none where it was not measured, or by an
        earlier version) and its region at the one they were graded with, else (loaded from DICOM) the one its header
        names; watch their rulers and table for hand edits (those of a scene opened from file too). The table, or
        None. One Modified event for all: an observer seeing the outputs before the region would regrade them."""
        volume = parameterNode.inputVolume
        scene = self.stenosisScene(parameterNode.region)
        outputs = scene.find_outputs(volume) if volume else None
        if outputs is not None:
            scene.watch_hand_edits(outputs)
        region = self.regionOf(parameterNode) if volume else None
        with slicer.util.NodeModify(parameterNode):
            if region:
                parameterNode.region = region
            parameterNode.outputSegmentation = outputs.segmentation if outputs else None
            parameterNode.outputTable = outputs.table if outputs else None
        return parameterNode.outputTable

    def followRegion(self, parameterNode) -> bool:
        """Regrade the input volume's table if the region changed since it was graded; whether it was."""
        if not parameterNode.inputVolume:
            return False
        scene = self.stenosisScene(parameterNode.region)
        outputs = scene.find_outputs(parameterNode.inputVolume)
        return outputs is not None and scene.follow_region(outputs.table)

    @staticmethod
    def dicomValue(instanceUid: str, tag: str) -> str:
        """A header value of an instance in Slicer's DICOM database; "" without an open database."""
        database = slicer.dicomDatabase
        if database is None or not database.isOpen:
            return ""
        return database.instanceValue(instanceUid, tag)

    def regionOf(self, parameterNode):
        """The region the input volume's results are graded with (a scene or bundle opened from file too), else the
        one its DICOM header names; None for neither."""
        volume = parameterNode.inputVolume
        return self.stenosisScene(parameterNode.region).graded_region(volume) or self.namedRegion(volume)

    def namedRegion(self, volumeNode):
        """The region a volume loaded from DICOM names in its header ("cervical", "lumbar", "thoracic"), else None."""
        from SpinalStenosisLib.scene import named_region_of_node

        return named_region_of_node(volumeNode, self.dicomValue)

    def showRow(self, parameterNode, row: int):
        """Centre the slice views on a table row's slice (its canal, else the slice's middle); the point, world RAS."""
        return self.stenosisScene(parameterNode.region).show_row(parameterNode.inputVolume,
                                                                 self._outputs(parameterNode), row)

    def showNarrowest(self, parameterNode):
        """Centre the slice views on the narrowest canal, if a canal was measured; the point or None."""
        scene, outputs = self.stenosisScene(parameterNode.region), self._outputs(parameterNode)
        row = scene.narrowest_row(outputs.table)
        return None if row is None else scene.show_row(parameterNode.inputVolume, outputs, row)

    def worstFindings(self, parameterNode) -> str:
        """The study's worst findings as the table now holds them ("narrowest canal AP 6.7 mm (absolute stenosis)
        on slice 4; ..."; "no canal or foramen found")."""
        from SpinalStenosisLib.findings import describe_findings

        outputs = self._outputs(parameterNode)
        return describe_findings(self.stenosisScene(parameterNode.region).worst_findings(outputs.table)) or _(
            "no canal or foramen found")

    def findingsByLevel(self, parameterNode) -> str:
        """The worst findings of each level named in the table's Level column, a line each ("L4-L5: canal AP 6.7 mm
        (absolute stenosis, slice 4); ..."; "" when no level is named)."""
        from SpinalStenosisLib.findings import describe_levels

        scene = self.stenosisScene(parameterNode.region)
        return "\n".join(describe_levels(scene.worst_findings_by_level(self._outputs(parameterNode).table)))

    def findings(self, parameterNode) -> str:
        """The module's findings line: the study's worst findings, then each named level's on a line of its own, as
        the table now holds them; "" when the input volume has no results."""
        volume = parameterNode.inputVolume
        if not volume or self.stenosisScene(parameterNode.region).find_outputs(volume) is None:
            return ""
        return "\n".join(filter(None, [self.worstFindings(parameterNode), self.findingsByLevel(parameterNode)]))

    def nameLevels(self, parameterNode, text: str) -> None:
        """Name the levels of the table's slices from one line ("0-2=L3-L4, 3-5=L4-L5", as measure --levels). A
        ValueError says what is wrong in the line."""
        from SpinalStenosisLib.level_names import parse_levels

        self.stenosisScene(parameterNode.region).name_levels(self._outputs(parameterNode).table, parse_levels(text))

    def toCheck(self, parameterNode) -> str:
        """What the network was unsure of, the image barely shows, lies off the spine's axis, is not one round outline
        or the image's edge cuts, and foramina not found where the other side's is, by structure ("the canal on slice
        3; ..."; "" for nothing)."""
        from SpinalStenosisLib.measurement import describe_checks
        from SpinalStenosisLib.scene_table import to_check

        return describe_checks(to_check(self._outputs(parameterNode).table))

    def warnings(self, parameterNode) -> list:
        """What the user must know about the measured input (e.g. thick slices through a tilted spine)."""
        from SpinalStenosisLib.scene_table import warnings_of

        return warnings_of(self._outputs(parameterNode).table)

    def regionNotes(self, parameterNode) -> list:
        """What to say of the region the results are graded for (scene_table.region_notes): the image shows a whole
        neck or the cord in the sac and they are graded as lumbar, or a level named lies in the other region."""
        from SpinalStenosisLib.scene_table import region_notes

        return region_notes(self._outputs(parameterNode).table)

    def stopWatchingRulers(self) -> None:
        """Rulers moved by hand no longer update the table (the module or the scene is closing, or reloading)."""
        if self._scene is not None:
            self._scene.stop_watching()

    def exportedFiles(self, parameterNode, folder: str) -> dict:
        """The files export writes into folder, named after the input volume, by kind."""
        from SpinalStenosisLib.outputs import exported_files

        self._outputs(parameterNode)  # "Measure this volume first." where there is nothing to export
        return exported_files(folder, parameterNode.inputVolume.GetName())

    def export(self, parameterNode, folder: str) -> dict:
        """Write the results into folder (StenosisScene.export, all files or none), named after the input volume;
        the paths."""
        outputs = self._outputs(parameterNode)
        if not self.ensureDependencies(("PIL",)):
            raise RuntimeError(_("Exporting needs Pillow (it draws the report), which was not installed."))
        return self.stenosisScene(parameterNode.region).export(outputs, folder, parameterNode.inputVolume.GetName())


class SpinalStenosisTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: measure a synthetic stack with the shipped networks, edit, re-measure, export."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_measure_remeasure_export()

    def test_measure_remeasure_export(self):
        import tempfile

        import numpy as np

        logic = SpinalStenosisLogic()
        self.delayDisplay("Installing PyTorch and Pillow where missing, without asking: none may be there to answer")
        self.assertTrue(logic.ensureDependencies(askConfirmation=False))
        self.delayDisplay("Synthesising the demo's axial lumbar series")
        volume = logic.loadDemoVolume(logic.getParameterNode())
        self.assertIs(logic.loadDemoVolume(logic.getParameterNode()), volume)
        outputs = logic.process(volume)
        self.assertEqual(outputs.table.GetNumberOfRows(), volume.GetImageData().GetDimensions()[2])
        self.assertTrue(outputs.rulers)
        parameterNode = logic.getParameterNode()
        self.assertEqual(logic.remeasure(parameterNode), [])
        with tempfile.TemporaryDirectory() as folder:
            paths = logic.export(parameterNode, folder)
            self.assertTrue(all(os.path.exists(p) for p in paths.values()))
        self.assertTrue(np.isfinite(outputs.table.GetTable().GetColumnByName("canal_ap_mm").GetValue(1)))
        self.assertIsNotNone(logic.showNarrowest(parameterNode))
        self.assertIsInstance(logic.toCheck(parameterNode), str)
        self.assertEqual(logic.warnings(parameterNode), [])  # thin synthetic slices, no tilt
        self.assertTrue(logic.worstFindings(parameterNode).startswith("narrowest canal AP"))
        narrowestRow = logic.stenosisScene(parameterNode.region).narrowest_row(outputs.table)
        outputs.table.GetTable().GetColumnByName("level").SetValue(narrowestRow, "L4-L5")  # as typed into the table
        self.assertIn("(L4-L5)", logic.worstFindings(parameterNode))
        self.assertTrue(logic.findingsByLevel(parameterNode).startswith("L3-L4: canal AP"))  # the demo names each slice
        logic.nameLevels(parameterNode, "0-8=L4")
        self.assertEqual(logic.findings(parameterNode).split("\n")[1:],
                         [logic.findingsByLevel(parameterNode)])  # the study's line, then the one level's
        self.assertTrue(logic.findingsByLevel(parameterNode).startswith("L4: canal AP"))
        parameterNode.region = "cervical"
        self.assertTrue(logic.followRegion(parameterNode))
        self.assertIs(logic.followVolume(parameterNode), outputs.table)
        parameterNode.inputVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not measured")
        self.assertIsNone(logic.followVolume(parameterNode))
        self.assertIsNone(parameterNode.outputSegmentation)
        self.assertEqual(logic.findings(parameterNode), "")
        parameterNode.inputVolume = volume
        self.assertEqual(outputs.table.GetAttribute("SpinalStenosis.region"), "cervical")
        self.delayDisplay("Test passed")
