from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2] / "SpinalStenosis"))

import numpy as np
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_code(language: str) -> list[str]:
    """The README's fenced code blocks in language ("python", "bash"), as the reader copies them."""
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def phantom_arrays(n_slices: int = 3, size: int = 96, pixel_mm: float = 0.8):
    """A small axial stack [k, j, i]: canal ellipse (AP 12 mm) and bow-tie foramina (left 3+k mm, right 4 mm)."""
    from shapes import axial_grid, bow_tie, ellipse, rasterise

    from SpinalStenosisLib.synth.dataset import slice_geometry

    grid = axial_grid(pixel_mm=(pixel_mm, pixel_mm), shape=(size, size))
    image = np.zeros((n_slices, size, size), np.float32)
    labels = np.zeros((n_slices, size, size), np.uint8)
    for k in range(n_slices):
        canal = rasterise(ellipse(0.0, 0.0, 9.0 + k, 6.0), grid) > 0
        left = rasterise(bow_tie(21.0, 1.0, 3.0 + k, 0.12, 10.0), grid) > 0
        right = rasterise(bow_tie(-21.0, 0.0, 4.0, 0.12, 10.0), grid) > 0
        labels[k][canal], labels[k][left], labels[k][right] = 1, 2, 3
        image[k] = 100.0 + 800.0 * canal + 400.0 * (left | right)
    # the canonical grid's rows run A→P and columns R→L; stored with i = column, j = row, k = superior
    return image, labels, slice_geometry(grid, 4.0, n_slices)


def move_end_halfway(node) -> float:
    """Moves a ruler's end halfway to its start, as a user dragging it would; its new length."""
    start = np.array(node.GetNthControlPointPositionWorld(0))
    end = np.array(node.GetNthControlPointPositionWorld(1))
    node.SetNthControlPointPositionWorld(1, *(start + (end - start) * 0.5))
    return float(np.linalg.norm(end - start) * 0.5)


def nothing_installed(module, monkeypatch, installs_take: bool = True) -> list[str]:
    """In the loaded module: nothing of its REQUIREMENTS is installed, nor the PyTorch extension; slicer.util's
    pip_install records each requirement it is given, installed from then on if installs_take. The records."""
    import slicer.util

    asked = []
    monkeypatch.setattr(module, "_installed", asked.__contains__ if installs_take else lambda requirement: False)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)
    monkeypatch.setattr(slicer.util, "pip_install", asked.append)
    return asked


def region_looks(monkeypatch) -> list:
    """A list that grows by one each time a run's image is looked at for the region it shows (pipeline's
    body_region.region_shown, which still answers)."""
    from SpinalStenosisLib import pipeline
    from SpinalStenosisLib.body_region import region_shown

    looks = []
    monkeypatch.setattr(pipeline, "region_shown", lambda *args: looks.append(args) or region_shown(*args))
    return looks


def canal_arrays(centres_anterior_mm, semi_ap_mm, spacing_mm: float, size: int = 96):
    """An axial stack of canal labels [k, j, i] (0.5 mm pixels), one ellipse per slice at these anterior offsets with
    these AP semi-axes (16 mm wide), the slices spacing_mm apart; and its geometry."""
    from shapes import axial_grid, ellipse, rasterise

    from SpinalStenosisLib.synth.dataset import slice_geometry

    grid = axial_grid(pixel_mm=(0.5, 0.5), shape=(size, size))
    labels = np.stack([rasterise(ellipse(0.0, anterior, 8.0, semi), grid)
                       for anterior, semi in zip(centres_anterior_mm, semi_ap_mm)]).astype(np.uint8)
    return labels, slice_geometry(grid, spacing_mm, len(labels))


class ThresholdSegmenter:
    """Deterministic stand-in for the networks: the phantom's canal is bright, its foramina mid-grey; it gives the
    canal canal_probability, the canal's outline canal_edge_to_noise (see visibility) and the canal
    canal_off_axis_mm (see symmetry)."""

    provenance = {"models": {"test": {"version": "0", "sha256": "none"}}, "device": "cpu"}

    def __init__(self, canal_probability: float = 1.0, canal_edge_to_noise: float = float("nan"),
                 canal_off_axis_mm: float = float("nan")):
        self.canal_probability, self.canal_edge_to_noise = canal_probability, canal_edge_to_noise
        self.canal_off_axis_mm = canal_off_axis_mm

    def segment(self, images, grids):
        from SpinalStenosisLib.pipeline import SliceSegmentation

        results = []
        for image, grid in zip(images, grids):
            labels = np.zeros(image.shape, np.uint8)
            labels[image > 700] = 1
            foramen = (image > 300) & (image <= 700)
            half = image.shape[1] // 2
            labels[:, half:][foramen[:, half:]] = 2  # columns run patient right → left
            labels[:, :half][foramen[:, :half]] = 3
            masks = {"canal": (labels == 1) * self.canal_probability, "left_foramen": (labels == 2) * 1.0,
                     "right_foramen": (labels == 3) * 1.0}
            rows, columns = np.nonzero(labels)
            box = (int(rows.min()), int(columns.min()), int(rows.max()) + 1, int(columns.max()) + 1)
            results.append(SliceSegmentation(masks, grid, labels, box, self.canal_edge_to_noise,
                                             self.canal_off_axis_mm))
        return results


class BrightnessSegmenter(ThresholdSegmenter):
    """ThresholdSegmenter, as sure of the canal as the image is bright (its maximum / 1000)."""

    def segment(self, images, grids):
        results = super().segment(images, grids)
        for image, result in zip(images, results):
            result.masks["canal"] = result.masks["canal"] * (image.max() / 1000.0)
        return results


class AveragingSegmenter(BrightnessSegmenter):
    """BrightnessSegmenter on the mean of a slice's contrasts where it is given several ([contrast, rows,
    columns]), as NetworkSegmenter averages network 2's probabilities over them; given: each batch it was given."""

    averages_contrasts = True

    def __init__(self):
        super().__init__()
        self.given = []

    def segment(self, images, grids):
        self.given.append(images)
        return super().segment([image.mean(axis=0) if image.ndim == 3 else image for image in images], grids)


def with_foramina_swapped(labels: np.ndarray) -> np.ndarray:
    """labels with the left and right foramina's values swapped, as labelled by the image's sides."""
    return np.where(labels == 2, 3, np.where(labels == 3, 2, labels)).astype(labels.dtype)


def rewrite_labels(source, target, change) -> None:
    """The label file source written to target with change applied to its voxels, on its grid."""
    import SimpleITK as sitk

    labels = sitk.ReadImage(str(source))
    changed = sitk.GetImageFromArray(change(sitk.GetArrayFromImage(labels)))
    changed.CopyInformation(labels)
    sitk.WriteImage(changed, str(target))


def write_with_foramina_swapped(source, target) -> None:
    """The label file source written to target with_foramina_swapped, on its grid."""
    rewrite_labels(source, target, with_foramina_swapped)


def write_canal_only(source, target) -> None:
    """The label file source written to target with its foramina left out, on its grid: a site that labelled the
    sac alone."""
    rewrite_labels(source, target, lambda labels: (labels == 1).astype(np.uint8))


def other_contrast(labels: np.ndarray) -> np.ndarray:
    """The phantom's labels drawn in another contrast than phantom_arrays' (canal 810, foramina dark, the rest
    300): BrightnessSegmenter finds the canal on it, less sure of it than on the phantom (0.81 against 0.90)."""
    return np.where(labels == 1, 810.0, np.where(labels > 1, 50.0, 300.0))


def tilted(geometry, degrees: float, shift_ras: tuple[float, float, float] = (0.0, 0.0, 0.0)):
    """geometry turned about the left-right axis and shifted (e.g. the next block of an angled series)."""
    from SpinalStenosisLib.geometry import VolumeGeometry

    t, move = np.radians(degrees), np.eye(4)
    move[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    move[:3, 3] = shift_ras
    return VolumeGeometry(geometry.size_ijk, move @ geometry.ijk_to_ras)


def write_dicom_series(folder, image: np.ndarray, geometry, series: int, first_instance: int = 0,
                       tags: tuple[tuple[str, str], ...] = (), position_step_mm: float | None = None) -> None:
    """One DICOM file per slice (array axis 0) of a series numbered series, in folder (a colour one from an array
    [k, j, i, channel]); instance numbers (and file names) start after first_instance, so that several blocks can
    make one series; tags: more (key, value) pairs for each file's header; position_step_mm: each Image Position
    rounded to it, as some exports write them. GDCM's writer sets the process's C locale to "C" (then Python's
    default text encoding is ASCII): the caller's locale is put back."""
    import locale

    import SimpleITK as sitk
    from enhanced_dicom import decimals, frame_planes_lps

    with_locale = locale.setlocale(locale.LC_ALL)

    itk = sitk.GetImageFromArray(image.astype(np.int16), isVector=image.ndim == 4)
    geometry.apply_to_sitk(itk)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    planes = frame_planes_lps(image[..., 0] if image.ndim == 4 else image, geometry)
    for k, (position, orientation) in enumerate(planes):
        if position_step_mm:
            position = [round(value / position_step_mm) * position_step_mm for value in position]
        slice_image = itk[:, :, k]
        instance = first_instance + k
        for tag, value in (("0008|0060", "MR"), ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
                           ("0020|000e", f"1.2.826.0.1.3680043.2.1125.2.{series}"), ("0020|0013", str(instance + 1)),
                           ("0020|0032", decimals(position)), ("0020|0037", decimals(orientation)),
                           ("0028|0030", f"{itk.GetSpacing()[1]:.6f}\\{itk.GetSpacing()[0]:.6f}"),
                           ("0018|0050", "4.0"), ("0008|0018", f"1.2.826.0.1.3680043.2.1125.3.{series}.{instance}"),
                           *tags):
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"series{series}_slice{instance:03d}.dcm"))
        writer.Execute(slice_image)
    locale.setlocale(locale.LC_ALL, with_locale)


def trained_like(model):
    """A CoU-Net (in place) with BatchNorm statistics and affine weights away from their initial 0 and 1, as after
    training, so that folding or growing them is really tested; in eval mode."""
    import torch

    torch.manual_seed(0)
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.running_mean.uniform_(-0.5, 0.5), norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5), norm.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture
def phantom_files(tmp_path):
    from SpinalStenosisLib.volume_io import write_image, write_labels

    image, labels, geometry = phantom_arrays()
    folder = tmp_path / "input"
    folder.mkdir()
    write_image(folder / "phantom.nii.gz", image, geometry)
    write_labels(folder / "phantom_labels.nii.gz", labels, geometry)
    return folder / "phantom.nii.gz", folder / "phantom_labels.nii.gz"


@pytest.fixture
def application():
    """What the scripted module shows and asks outside its panel, and the user's answers (``slicer_module``)."""
    pytest.importorskip("slicer", reason="slicer-core is part of the test requirements")
    from slicer_module import Application

    return Application()


@pytest.fixture
def module(monkeypatch, tmp_path, application):
    """SpinalStenosis.py imported on slicer-core, slicer.mrmlScene a new scene (``slicer_module``)."""
    from slicer_module import load, release_scene_observers

    loaded = load(monkeypatch, tmp_path, application)
    yield loaded
    loaded.SpinalStenosisLogic().stopWatchingRulers()
    release_scene_observers()
