"""SpinalStenosis.py imported on slicer-core (real MRML, no Qt, no application). What slicer-core lacks is stood in for
by the smallest thing that behaves alike: Qt (the widgets of the module's own .ui, a timer, a file dialog), the
scripted-module base classes, the parameter node wrapper (its values kept in the real parameter node, as Slicer keeps
them, so its Modified events are MRML's), translation, ``slicer.app``, ``slicer.mrmlScene``, ``slicer.modules`` and
the dialogs of ``slicer.util``. What the module shows or asks is recorded in ``Application``. Slicer's C++ widgets
offer only what PythonQt lets Python call: their slots, Q_INVOKABLE methods, properties and signals (so not, for
example, qMRMLTableModel.mrmlTableRowIndex, a plain method).

Not imitated: Qt's own behaviour beyond the signals listed in SIGNALS (a node combo box choosing a first node by
itself, a table view dropping a deleted table node), and what the Segment Editor and Plots modules do with what they
are given (recorded calls). What the tests prove is the module's own code against real MRML."""
import importlib.util
import inspect
import sys
import types
import typing
import unittest
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import slicer
import vtk

from SpinalStenosisLib.scene_bundle import new_scene

MODULE_FILE = Path(__file__).parents[2] / "SpinalStenosis" / "SpinalStenosis.py"
RESOURCES = MODULE_FILE.parent / "Resources"
PARAMETER_NAME = "SlicerParameterName"  # the .ui's dynamic property that binds a widget to a parameter

SIGNALS = {  # the signals the module may connect to, by class (the Qt, CTK and Slicer headers)
    "QPushButton": {"clicked()", "clicked(bool)", "toggled(bool)"},
    "QComboBox": {"currentIndexChanged(int)"},
    "QLineEdit": {"textChanged(QString)", "returnPressed()"},
    "qMRMLNodeComboBox": {"currentNodeChanged(vtkMRMLNode*)"},
    "qMRMLTableView": {"selectionChanged()"},
    "qMRMLWidget": {"mrmlSceneChanged(vtkMRMLScene*)"},
}


class Signal:
    """A Qt signal as Python sees it (``timer.timeout.connect``)."""

    def __init__(self):
        self.slots = []

    def connect(self, slot):
        self.slots.append(slot)

    def emit(self, *args):
        for slot in list(self.slots):
            slot(*args)


class Widget:
    """A widget of the .ui: its class, name and properties, the state the module reads and writes, and the signals
    it may connect to by signature (``connect("clicked(bool)", slot)``)."""

    def __init__(self, qt_class: str, name: str, properties: dict):
        self.qt_class, self.name, self._properties = qt_class, name, properties
        self.text, self.enabled, self.value = properties.get("text", ""), True, properties.get("value", 0)
        self._slots: dict[str, list] = {}

    def property(self, name: str):
        return self._properties.get(name)

    def connect(self, signal: str, slot) -> None:
        assert signal in SIGNALS.get(self.qt_class, ()), f"{self.qt_class} {self.name} has no signal {signal}"
        self._slots.setdefault(signal, []).append(slot)

    def disconnect(self, signal: str, slot) -> None:
        self._slots[signal].remove(slot)

    def emit(self, signal: str, *args) -> None:
        for slot in self._slots.get(signal, []):
            slot(*args[:len(inspect.signature(slot).parameters)])  # PythonQt drops the arguments a slot cannot take

    def click(self) -> None:
        assert self.enabled, f"{self.name} is disabled"
        self.emit("clicked(bool)", False)


class MRMLWidget(Widget):
    def setMRMLScene(self, scene) -> None:
        self.scene = scene
        self.emit("mrmlSceneChanged(vtkMRMLScene*)", scene)


class NodeComboBox(Widget):
    currentNode = None

    def setMRMLScene(self, scene) -> None:
        self.scene = scene

    def choose(self, node) -> None:
        """The user picks a node."""
        assert node is None or node.GetClassName() in self.property("nodeTypes"), node.GetClassName()
        self.currentNode = node
        self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class ComboBox(Widget):
    items: list = []
    currentIndex = -1

    def choose(self, text: str) -> None:
        """The user picks an item."""
        self.currentIndex = self.items.index(text)
        self.emit("currentIndexChanged(int)", self.currentIndex)


SCENE_OBSERVERS: list = []  # (scene, tag) of the stand-ins' own scene observers: removed when a test ends


def release_scene_observers() -> None:
    """Remove the stand-ins' scene observers (VTK calling into Python while it destroys the scene would crash)."""
    while SCENE_OBSERVERS:
        scene, tag = SCENE_OBSERVERS.pop()
        scene.RemoveObserver(tag)


class TableView(Widget):
    """qMRMLTableView: its table node, and a selection seen through a sorting proxy (``display_order``: the table's
    rows in the order shown). Given a scene, and without a table view node, it shows no table after every batch the
    scene ends (qMRMLTableViewPrivate::endProcessing)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.table = None
        self.display_order: list[int] = []
        self._selected: list[int] = []

    def setMRMLScene(self, scene) -> None:
        tag = scene.AddObserver(slicer.vtkMRMLScene.EndBatchProcessEvent, self._batch_ended)
        SCENE_OBSERVERS.append((scene, tag))

    def _batch_ended(self, caller, event) -> None:
        self.setMRMLTableNode(None)

    def setMRMLTableNode(self, table) -> None:
        self.table, self._selected = table, []
        self.display_order = list(range(table.GetNumberOfRows())) if table else []

    def select(self, shown_row: int) -> None:
        """The user clicks the row shown at this position."""
        self._selected = [shown_row]
        self.emit("selectionChanged()")

    def selectionModel(self):
        return types.SimpleNamespace(selectedIndexes=lambda: list(self._selected))

    def sortFilterProxyModel(self):
        """The QSortFilterProxyModel; its source model index of a row shown (a QModelIndex: only its row)."""
        return types.SimpleNamespace(
            mapToSource=lambda shown_row: types.SimpleNamespace(row=lambda: self.display_order[shown_row]))


WIDGET_CLASSES = {"qMRMLWidget": MRMLWidget, "qMRMLNodeComboBox": NodeComboBox, "QComboBox": ComboBox,
                  "qMRMLTableView": TableView}


def _property_value(element):
    value = element[0]
    if value.tag == "stringlist":
        return [item.text for item in value]
    if value.tag == "bool":
        return value.text == "true"
    if value.tag == "number":
        return int(value.text)
    return value.text or ""


def load_ui(path):
    """The .ui's widgets (the root first, its children as ``root.children``), its connections made."""
    tree = ElementTree.parse(path)
    widgets = {}
    for element in tree.iter("widget"):
        properties = {p.get("name"): _property_value(p) for p in element.findall("property")}
        widgets[element.get("name")] = WIDGET_CLASSES.get(element.get("class"), Widget)(
            element.get("class"), element.get("name"), properties)
    for connection in tree.iter("connection"):
        receiver, slot = widgets[connection.findtext("receiver")], connection.findtext("slot")
        widgets[connection.findtext("sender")].connect(connection.findtext("signal"),
                                                       getattr(receiver, slot.split("(")[0]))
    root = widgets[tree.find("widget").get("name")]
    root.children = [w for w in widgets.values() if w is not root]
    return root


def parameter_node_wrapper(cls):
    """slicer.parameterNodeWrapper as the module uses it: typed fields with defaults, kept in the parameter node
    (strings as parameters, nodes as node references, as Slicer's serializers keep them), and ``connectGui`` binding
    the .ui's widgets named by their SlicerParameterName property, both ways."""
    fields = typing.get_type_hints(cls, include_extras=True)

    def type_and_choices(name):
        annotation = fields[name]
        choices = [c.choices for c in getattr(annotation, "__metadata__", ()) if isinstance(c, Choice)]
        return getattr(annotation, "__origin__", annotation), choices[0] if choices else None

    class Wrapped:
        def __init__(self, node):
            object.__setattr__(self, "parameterNode", node)
            object.__setattr__(self, "_guis", {})
            for name in fields:
                if not node.HasParameter(name):
                    setattr(self, name, getattr(cls, name, None))

        def __getattr__(self, name):
            if name not in fields:
                raise AttributeError(name)
            node_type, _ = type_and_choices(name)
            if issubclass(node_type, slicer.vtkMRMLNode):
                return self.parameterNode.GetNodeReference(name)
            return self.parameterNode.GetParameter(name)

        def __setattr__(self, name, value):
            if name not in fields:
                raise AttributeError(f"{cls.__name__} has no parameter {name}")
            node_type, choices = type_and_choices(name)
            if issubclass(node_type, slicer.vtkMRMLNode):
                if value is not None and not isinstance(value, node_type):
                    raise TypeError(f"{name} must be a {node_type.__name__}")
                with slicer.util.NodeModify(self.parameterNode):
                    self.parameterNode.SetParameter(name, "")
                    self.parameterNode.SetNodeReferenceID(name, value.GetID() if value is not None else None)
            else:
                if choices is not None and value not in choices:
                    raise ValueError(f"{value!r} is not one of {choices}")
                self.parameterNode.SetParameter(name, value)

        def StartModify(self):
            return self.parameterNode.StartModify()

        def EndModify(self, was_modifying):
            return self.parameterNode.EndModify(was_modifying)

        def AddObserver(self, event, callback, priority=0.0):
            return self.parameterNode.AddObserver(event, callback, priority)

        def RemoveObserver(self, tag):
            self.parameterNode.RemoveObserver(tag)

        def connectGui(self, gui):
            bound = {w.property(PARAMETER_NAME): w for w in vars(gui).values() if w.property(PARAMETER_NAME)}
            connections = []
            for name, widget in bound.items():
                if name not in fields:
                    raise ValueError(f"Cannot find a param with the given name: {name}")
                if isinstance(widget, ComboBox):
                    _, widget.items = type_and_choices(name)
                    connections.append((widget, "currentIndexChanged(int)",
                                        lambda i, n=name, w=widget: self._fromGui(n, w.items[i])))
                elif isinstance(widget, NodeComboBox):
                    connections.append((widget, "currentNodeChanged(vtkMRMLNode*)",
                                        lambda node, n=name: self._fromGui(n, node)))
                else:
                    raise RuntimeError(f"no GUI connector for {widget.qt_class} and {fields[name]}")
            for widget, signal, slot in connections:
                widget.connect(signal, slot)
            tag = self.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event: self._toGui(bound))
            self._guis[tag] = connections
            self._toGui(bound)
            return tag

        def disconnectGui(self, tag):
            for widget, signal, slot in self._guis.pop(tag, []):
                widget.disconnect(signal, slot)
            if tag is not None:
                self.RemoveObserver(tag)

        def _fromGui(self, name, value):
            if getattr(self, name) is not value:
                setattr(self, name, value)

        def _toGui(self, bound):
            for name, widget in bound.items():
                if isinstance(widget, ComboBox):
                    widget.currentIndex = widget.items.index(getattr(self, name))
                else:
                    widget.currentNode = getattr(self, name)

    Wrapped.__name__ = cls.__name__
    return Wrapped


class Choice:
    def __init__(self, choices):
        self.choices = list(choices)


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
    def __init__(self, parent):
        self.parent = parent  # Slicer's qSlicerScriptedLoadableModule, which the module gives its title, help, ...
        self.moduleName = type(self).__name__


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent or types.SimpleNamespace(isEntered=True)
        self.layout = types.SimpleNamespace(addWidget=lambda widget: None)

    def setup(self):
        pass

    def resourcePath(self, filename):
        return str(RESOURCES / filename)

    def onReload(self):
        self.reloaded = True  # Slicer's onReload runs the module file again (slicer.util.reloadScriptedModule)


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message):
        pass


class QTimer:
    """A zero-interval timer: ``Application.process_events`` fires the running ones, as Qt's event loop would."""

    running: list = []

    def __init__(self):
        self.timeout = Signal()

    def setInterval(self, milliseconds):
        self.interval = milliseconds

    def start(self):
        QTimer.running.append(self)

    def stop(self):
        if self in QTimer.running:
            QTimer.running.remove(self)


class Application:
    """What the module showed, asked and did outside its panel; the user's answers to come."""

    def __init__(self):
        self.errors, self.questions, self.modules_selected, self.charts_shown = [], [], [], []
        self.views_shown = []  # what slicer.util.setSliceViewerLayers was asked to show, and how
        self.cursors, self.cursors_at_questions = [], []  # Qt's override-cursor stack; its top at each question
        self.answer_ok, self.folder_chosen, self.folder_dialogs_opened_at = True, "", []
        self.editor = types.SimpleNamespace(segmentation=None, source_volume=None)
        self.editor.setSegmentationNode = lambda node: setattr(self.editor, "segmentation", node)
        self.editor.setSourceVolumeNode = lambda node: setattr(self.editor, "source_volume", node)

    def choose_folder(self, parent, caption, start_folder=""):
        self.folder_dialogs_opened_at.append(start_folder)
        return self.folder_chosen

    def confirm(self, text, *args, **kwargs):
        self.questions.append(text)
        self.cursors_at_questions.append(self.cursors[-1] if self.cursors else None)
        return self.answer_ok

    @staticmethod
    def process_events(limit: int | None = None) -> None:
        """Fire the running timers until none runs (the measurement's steps), or `limit` times."""
        for _ in range(limit or 10_000):
            if not QTimer.running:
                return
            for timer in list(QTimer.running):
                timer.timeout.emit()
        assert limit, "timers still running"


def load(monkeypatch, tmp_path, application: Application):
    """SpinalStenosis.py imported with the stand-ins, slicer.mrmlScene a new slicer-core scene, what the module shows
    outside its panel recorded in `application`."""
    context = new_scene(cache_folder=tmp_path / "cache")
    base = types.ModuleType("slicer.ScriptedLoadableModule")
    for stand_in in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                     ScriptedLoadableModuleTest):
        setattr(base, stand_in.__name__, stand_in)
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper, wrapper.Choice = parameter_node_wrapper, Choice
    translation = types.ModuleType("slicer.i18n")
    translation.tr = lambda text: text
    qt = types.ModuleType("qt")
    qt.QTimer, qt.Qt = QTimer, types.SimpleNamespace(WaitCursor="wait", ArrowCursor="arrow")
    qt.QFileDialog = types.SimpleNamespace(getExistingDirectory=application.choose_folder)
    for name, stand_in in (("qt", qt), ("slicer.ScriptedLoadableModule", base),
                           ("slicer.parameterNodeWrapper", wrapper), ("slicer.i18n", translation)):
        monkeypatch.setitem(sys.modules, name, stand_in)
    monkeypatch.setattr(QTimer, "running", [])
    monkeypatch.setattr(slicer, "mrmlScene", context.scene, raising=False)
    monkeypatch.setattr(slicer, "dicomDatabase", None, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(
        setOverrideCursor=application.cursors.append, restoreOverrideCursor=application.cursors.pop,
        testingEnabled=lambda: False, defaultScenePath=str(tmp_path / "Slicer scenes")),
        raising=False)
    editor_panel = types.SimpleNamespace(self=lambda: types.SimpleNamespace(editor=application.editor))
    plots_logic = types.SimpleNamespace(ShowChartInLayout=application.charts_shown.append)
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: context.segmentations_logic),
        plots=types.SimpleNamespace(logic=lambda: plots_logic),
        segmenteditor=types.SimpleNamespace(widgetRepresentation=lambda: editor_panel)), raising=False)
    stand_ins = {"loadUI": load_ui, "childWidgetVariables": lambda root: types.SimpleNamespace(
                     **{widget.name: widget for widget in root.children}),
                 "confirmOkCancelDisplay": application.confirm,
                 "errorDisplay": lambda text, **kwargs: application.errors.append(text),
                 "setSliceViewerLayers": lambda **kwargs: application.views_shown.append(kwargs),
                 "selectModule": application.modules_selected.append}
    for name, stand_in in stand_ins.items():
        monkeypatch.setattr(slicer.util, name, stand_in)
    spec = importlib.util.spec_from_file_location("SpinalStenosisModule", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
