"""Real labelled data for fine-tuning, when a user has it (never ../shared/eval: that is validation only).

* NIfTI pairs ``<name>_image.nii.gz`` + ``<name>_labels.nii.gz`` in this project's label convention
  (1 canal, 2 left foramen, 3 right foramen), any orientation.
* Lumbar Spine MRI label PNGs (Sudirman et al.): ``<name>_label.png`` (thecal sac = 150) with ``<name>_image.png``
  beside it, 0.6875 mm pixels, radiological orientation. They have no foramina, so only the canal channel learns.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .crop import normalise, resample, roi_box_mask, whole_slice_grid
from .geometry import PlaneGrid
from .volume_io import open_axial

PNG_PIXEL_MM = 0.6875
PNG_THECAL_SAC = 150


class RealPairs:
    """Slices with a canal from a folder of labelled data, turned into network pairs like the synthetic ones."""

    def __init__(self, folder: Path, network: str):
        self.network = network
        self.slices: list[tuple[np.ndarray, np.ndarray, PlaneGrid, bool]] = []
        folder = Path(folder)
        if "eval" in folder.resolve().parts and "shared" in folder.resolve().parts:
            raise ValueError(f"{folder}: the shared evaluation images are for validation only, never training")
        for image_path in sorted(folder.glob("*_image.nii.gz")):
            self._add_volume(image_path, image_path.with_name(image_path.name.replace("_image", "_labels")))
        for label_path in sorted(folder.glob("*_label.png")):
            self._add_png(label_path.with_name(label_path.name.replace("_label", "_image")), label_path)
        if not self.slices:
            raise ValueError(f"{folder}: no *_image.nii.gz/*_labels.nii.gz pairs or *_label.png files")

    def _add_volume(self, image_path: Path, labels_path: Path) -> None:
        from .volume_io import read_labels

        volume = open_axial(image_path)
        stack = volume.from_source_grid(read_labels(labels_path, volume.source_geometry))
        for s in range(volume.n_slices):
            if (stack[s] == 1).any():
                onehot = np.stack([stack[s] == 2, stack[s] == 1, stack[s] == 3]).astype(np.float32)
                self.slices.append((volume.read_slice(s), onehot, volume.layout.slice_grid(s), True))

    def _add_png(self, image_path: Path, label_path: Path) -> None:
        import SimpleITK as sitk

        volume = open_axial(image_path, pixel_mm=PNG_PIXEL_MM)  # as displayed: the slice's rows and columns
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(label_path)))
        if labels.ndim == 3:
            labels = labels[..., 0]
        canal = (labels == PNG_THECAL_SAC).astype(np.float32)
        onehot = np.stack([np.zeros_like(canal), canal, np.zeros_like(canal)])
        self.slices.append((volume.read_slice(0), onehot, volume.layout.slice_grid(0), False))

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
        from .synth.sampler import jittered_crop

        image, onehot, grid, has_foramina = self.slices[int(rng.integers(len(self.slices)))]
        if self.network == "roi":
            view = whole_slice_grid(grid)
            targets = np.stack([resample(channel, grid, view) for channel in onehot])
            return normalise(resample(image, grid, view))[None], roi_box_mask(targets, view)[None], True
        crop = jittered_crop(rng, grid, roi_box_mask(onehot, grid))
        targets = np.stack([resample(channel, grid, crop) for channel in onehot])
        return normalise(resample(image, grid, crop))[None], targets, has_foramina

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor, object]:
        """Inputs, targets and the channels that carry labels (all, or the canal only for PNG data)."""
        pairs = [self.pair(rng) for _ in range(size)]
        channels = slice(None) if all(p[2] for p in pairs) or self.network == "roi" else slice(1, 2)
        return (torch.from_numpy(np.stack([p[0] for p in pairs]).astype(np.float32)),
                torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32)), channels)
