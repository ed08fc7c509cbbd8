"""Domain randomisation of a normalised training image, so that a network leans on shape more than on the
synthetic renderer's intensities, resolution and noise (training only; validation and evaluation are unchanged)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..crop import normalise

AUGMENTATIONS = ("intensity", "resolution", "noise")


def intensity_curve(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A random monotone piecewise-linear remapping of [0, 1]: tissue order is kept, contrasts between them are not."""
    inputs = np.concatenate([[0.0], np.sort(rng.uniform(0.0, 1.0, 3)), [1.0, 1.5]])
    outputs = np.concatenate([[0.0], np.sort(rng.uniform(0.0, 1.0, 3)), [1.0, 1.5]])
    return np.interp(image, inputs, outputs).astype(np.float32)


def lower_resolution(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """The image sampled 1.3-2.5x more coarsely and interpolated back (a coarser acquisition, thicker slices)."""
    factor = rng.uniform(1.3, 2.5)
    coarse = ndimage.zoom(ndimage.gaussian_filter(image, 0.4 * factor), 1.0 / factor, order=1)
    zoomed = ndimage.zoom(coarse, np.array(image.shape) / np.array(coarse.shape), order=1)
    return zoomed[:image.shape[0], :image.shape[1]]


def domain_randomised(rng: np.random.Generator, image: np.ndarray,
                      kinds: tuple[str, ...] = AUGMENTATIONS) -> np.ndarray:
    """Each of kinds (intensity curve, lower resolution, extra noise) with its own probability; renormalised."""
    if rng.random() < 0.5 and "intensity" in kinds:
        image = intensity_curve(rng, image)
    if rng.random() < 0.25 and "resolution" in kinds:
        image = lower_resolution(rng, image)
    if rng.random() < 0.3 and "noise" in kinds:
        image = image + rng.normal(0.0, rng.uniform(0.01, 0.08), image.shape).astype(np.float32)
    return normalise(np.clip(image, 0.0, None))
