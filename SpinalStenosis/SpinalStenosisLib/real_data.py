"""Real labelled data, when a user has it: for fine-tuning (never ../shared/eval: that is validation only) and for
checking the networks on it (:mod:`evaluation`).

* NIfTI pairs ``<name>_image.nii.gz`` + ``<name>_labels.nii.gz`` in this project's label convention
  (1 canal, 2 left foramen, 3 right foramen), any orientation; or + ``<name>_labels.seg.nrrd``, a 3D Slicer
  segmentation (e.g. the module's export of masks corrected by hand; see volume_io.read_labels). Labels with no
  foramen on any slice label the canal only, as the PNGs do (a slice without a foramen label otherwise says that it
  shows none). Labels whose left foramen lies on the patient's right of the right one are refused.
* Lumbar Spine MRI label PNGs (Sudirman et al.): ``<name>_label.png`` (thecal sac = 150) with ``<name>_image.png``
  beside it, 0.6875 mm pixels, radiological orientation. They have no foramina, so only the canal channel learns.
  A colour image whose channels are different images (a composite of contrasts) trains on each channel.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .crop import normalise, resample, roi_box_mask, whole_slice_grid
from .geometry import PlaneGrid
from .image_files import as_displayed, exif_orientation
from .measurement import foramina_swapped
from .visibility import checked_pixels, intensity_floor, networks_view
from .volume_io import AxialVolume, open_axial

PNG_PIXEL_MM = 0.6875
PNG_THECAL_SAC = 150


@dataclass(frozen=True)
class LabelledCase:
    """One labelled image: its axial stack and the labels on the stack's grid."""

    name: str
    volume: AxialVolume
    labels: np.ndarray  # uint8 [slice, row, column]: 1 canal, 2 left foramen, 3 right foramen
    has_foramina: bool  # False for labels of the canal only: the Lumbar Spine MRI PNGs', or NIfTI with no foramen


def labelled_cases(folder: Path) -> Iterator[LabelledCase]:
    """Every labelled image in folder (NIfTI pairs, then Lumbar Spine MRI PNGs, each sorted by name), read one at a
    time; a ValueError before any is read when the folder holds none."""
    folder = Path(folder)
    pairs, pngs = sorted(folder.glob("*_image.nii.gz")), sorted(folder.glob("*_label.png"))
    if not pairs and not pngs:
        raise ValueError(f"{folder}: no *_image.nii.gz/*_labels.nii.gz (or *_labels.seg.nrrd) pairs or *_label.png "
                         "files")
    return _read_cases(pairs, pngs)


def _read_cases(pairs: list[Path], pngs: list[Path]) -> Iterator[LabelledCase]:
    import SimpleITK as sitk

    from .volume_io import read_labels

    for image_path in pairs:
        volume = open_axial(image_path)
        name = image_path.name[:-len("_image.nii.gz")]
        candidates = [image_path.with_name(f"{name}_labels{suffix}") for suffix in (".nii.gz", ".seg.nrrd")]
        labels_path = next((path for path in candidates if path.exists()), None)
        if labels_path is None:
            raise ValueError(f"{image_path}: no {candidates[0].name} or {candidates[1].name} beside it")
        labels = volume.from_source_grid(read_labels(labels_path, volume.source_geometry))
        both, swapped = foramina_swapped(labels, volume.layout)
        if swapped:  # learnt from, they would teach the networks the sides the wrong way round
            raise ValueError(f"{labels_path}: its left foramen (2) lies on the patient's right of its right foramen "
                             f"(3) on {swapped} of the {both} slices with both: labelled by the image's sides? Label "
                             "the patient's left foramen 2 (on an axial slice as displayed, on the image's right)")
        yield LabelledCase(name, volume, labels, bool(np.isin(labels, (2, 3)).any()))
    for label_path in pngs:
        volume = open_axial(label_path.with_name(label_path.name.replace("_label", "_image")),
                            pixel_mm=PNG_PIXEL_MM)  # as displayed: the slice's rows and columns
        png = as_displayed(sitk.GetArrayFromImage(sitk.ReadImage(str(label_path))), exif_orientation(label_path)[0])
        canal = (png[..., 0] if png.ndim == 3 else png) == PNG_THECAL_SAC
        if canal.shape != volume.layout.stack_shape[1:]:
            raise ValueError(f"{label_path}: {canal.shape[1]} x {canal.shape[0]} pixels, its image "
                             f"{volume.layout.stack_shape[2]} x {volume.layout.stack_shape[1]}: a label picture must "
                             "be its image's size")
        yield LabelledCase(label_path.name[:-len("_label.png")], volume, canal[None].astype(np.uint8), False)


class RealPairs:
    """Slices with a canal from a folder of labelled data, turned into network pairs like the synthetic ones."""

    def __init__(self, folder: Path, network: str):
        self.network = network
        self.slices: list[tuple[np.ndarray, np.ndarray, PlaneGrid, bool]] = []
        folder = Path(folder)
        if "eval" in folder.resolve().parts and "shared" in folder.resolve().parts:
            raise ValueError(f"{folder}: the shared evaluation images are for validation only, never training")
        for case in labelled_cases(folder):
            # a colour composite's channels each, as the networks measure them (pipeline.surest_channel_steps)
            for volume in list(case.volume.colour_channels.values()) or [case.volume]:
                # the image as the networks see it measuring
                _, floor = intensity_floor(checked_pixels(volume.read_slice, volume.n_slices))
                for s in range(volume.n_slices):
                    labels = case.labels[s]
                    if (labels == 1).any():
                        onehot = np.stack([labels == 2, labels == 1, labels == 3]).astype(np.float32)
                        self.slices.append((networks_view(volume.read_slice(s), floor), onehot,
                                            volume.layout.slice_grid(s), case.has_foramina))
        if not self.slices:
            raise ValueError(f"{folder}: no slice of its labels has a canal (1; thecal sac {PNG_THECAL_SAC} in a "
                             "label PNG): nothing to learn from")
        self._kinds = {kind: [i for i, (*_, has_foramina) in enumerate(self.slices) if has_foramina == kind]
                       for kind in (True, False)}

    def pair(self, rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice index's input and targets: the whole slice and its region's box (roi), or a jittered crop and its
        labels (canal)."""
        from .synth.sampler import jittered_crop

        image, onehot, grid, _ = self.slices[index]
        if self.network == "roi":
            view = whole_slice_grid(grid)
            targets = np.stack([resample(channel, grid, view) for channel in onehot])
            return normalise(resample(image, grid, view))[None], roi_box_mask(targets, view)[None]
        crop = jittered_crop(rng, grid, roi_box_mask(onehot, grid))
        targets = np.stack([resample(channel, grid, crop) for channel in onehot])
        return normalise(resample(image, grid, crop))[None], targets

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor, object]:
        """Inputs, targets and the channels that carry labels: all, or the canal only. A batch is of one kind,
        slices whose labels have foramina or slices labelled with the canal only, drawn in proportion to their
        numbers: one that mixed them would teach the canal network's foramen channels nothing."""
        has_foramina = self.slices[int(rng.integers(len(self.slices)))][3]
        kind = self._kinds[has_foramina]
        pairs = [self.pair(rng, kind[int(rng.integers(len(kind)))]) for _ in range(size)]
        channels = slice(None) if has_foramina or self.network == "roi" else slice(1, 2)
        return (torch.from_numpy(np.stack([p[0] for p in pairs]).astype(np.float32)),
                torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32)), channels)
