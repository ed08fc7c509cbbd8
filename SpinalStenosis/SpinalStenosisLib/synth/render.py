"""Turn tissue label maps into MR-like images: contrast priors or random intensities, texture, bias, blur, noise."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import TISSUES

# Mean intensities per tissue (see axial-spine-anatomy.md §3a); order follows TISSUES.
_PRIORS = {
    #            T2 FSE  T1    T2*   T2 fat-sat
    "air":               (0.00, 0.00, 0.00, 0.00),
    "skin":              (0.45, 0.45, 0.35, 0.30),
    "subcutaneous_fat":  (0.80, 1.00, 0.45, 0.08),
    "psoas":             (0.12, 0.30, 0.25, 0.15),
    "quadratus_lumborum": (0.12, 0.30, 0.25, 0.15),
    "erector_spinae":    (0.13, 0.32, 0.27, 0.16),
    "multifidus":        (0.14, 0.32, 0.27, 0.17),
    "intermuscular_fat": (0.75, 0.95, 0.45, 0.08),
    "viscera":           (0.35, 0.40, 0.35, 0.40),
    "vessel":            (0.03, 0.05, 0.70, 0.05),
    "cortical_bone":     (0.02, 0.02, 0.05, 0.02),
    "marrow":            (0.45, 0.70, 0.15, 0.12),
    "annulus":           (0.12, 0.30, 0.30, 0.15),
    "nucleus":           (0.60, 0.40, 0.55, 0.60),
    "endplate":          (0.05, 0.10, 0.08, 0.05),
    "posterior_longitudinal_ligament": (0.03, 0.05, 0.10, 0.03),
    "epidural_fat":      (0.75, 0.95, 0.45, 0.10),
    "epidural_vein":     (0.35, 0.30, 0.60, 0.40),
    "dura":              (0.10, 0.15, 0.20, 0.10),
    "csf":               (1.00, 0.15, 1.00, 1.00),
    "cauda_equina_roots": (0.30, 0.35, 0.50, 0.30),
    "spinal_cord":       (0.33, 0.40, 0.50, 0.33),
    "ligamentum_flavum": (0.15, 0.30, 0.20, 0.15),
    "facet_joint_fluid": (0.70, 0.20, 0.60, 0.70),
    "left_foraminal_fat": (0.75, 0.95, 0.45, 0.10),
    "left_exiting_root": (0.30, 0.35, 0.45, 0.30),
    "right_foraminal_fat": (0.75, 0.95, 0.45, 0.10),
    "right_exiting_root": (0.30, 0.35, 0.45, 0.30),
    "gas":               (0.00, 0.00, 0.00, 0.00),
    "neck_muscle":       (0.15, 0.30, 0.28, 0.16),
    "vertebral_artery":  (0.05, 0.05, 0.75, 0.05),
    "csf_flow_void":     (0.15, 0.10, 0.30, 0.15),
    "kidney":            (0.55, 0.35, 0.40, 0.60),
    "abdominal_fluid":   (0.90, 0.10, 0.80, 0.95),
}
CONTRASTS = ("T2", "T1", "T2star", "T2FS", "random")
PRIOR_TABLE = np.array([_PRIORS[name] for name in TISSUES], dtype=np.float32)  # [tissue, contrast]


def tissue_intensities(rng: np.random.Generator, contrast: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-tissue mean and texture strength for one image."""
    n = len(TISSUES)
    if contrast == "random":
        means = rng.uniform(0.0, 1.0, n).astype(np.float32)
        means[TISSUES.index("air")] = rng.uniform(0.0, 0.1)
    else:
        column = CONTRASTS.index(contrast)
        means = PRIOR_TABLE[:, column] * rng.uniform(0.7, 1.3, n).astype(np.float32)
        means += rng.normal(0.0, 0.03, n).astype(np.float32)
        if contrast in ("T2", "T2FS") and rng.random() < 0.4:  # degenerated (dark) nucleus
            means[TISSUES.index("nucleus")] = rng.uniform(0.08, 0.3)
        if contrast in ("T2", "T2FS") and rng.random() < 0.3:  # slow flow: bright veins and aorta, not voids
            means[TISSUES.index("vessel")] = rng.uniform(0.5, 1.0)
    texture = rng.uniform(0.02, 0.18, n).astype(np.float32)
    return np.clip(means, 0.0, 1.5), texture


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-variance noise smoothed over ``scale_px`` pixels (computed on a coarse grid)."""
    step = max(1, int(scale_px // 2))
    coarse_shape = (shape[0] // step + 2, shape[1] // step + 2)
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape).astype(np.float32), scale_px / step / 2)
    coarse /= coarse.std() + 1e-6
    if step == 1:
        return coarse[:shape[0], :shape[1]]
    return ndimage.zoom(coarse, step, order=1)[:shape[0], :shape[1]]


SLAB_NEIGHBOURS = {TISSUES.index("annulus"): TISSUES.index("endplate"),
                   TISSUES.index("nucleus"): TISSUES.index("endplate")}  # what a thick slice reaches above/below
FAT = [TISSUES.index(name) for name in ("subcutaneous_fat", "intermuscular_fat", "epidural_fat",
                                        "left_foraminal_fat", "right_foraminal_fat", "marrow")]


def thick_slab(signal: np.ndarray, tissues: np.ndarray, means: np.ndarray, weight: float) -> np.ndarray:
    """A slice thick enough to reach the endplates: disc signal blends towards endplate signal by ``weight``."""
    neighbour = tissues.copy()
    for tissue, replacement in SLAB_NEIGHBOURS.items():
        neighbour[tissues == tissue] = replacement
    return (1.0 - weight) * signal + weight * means[neighbour]


def chemical_shift(signal: np.ndarray, tissues: np.ndarray, pixels: int, axis: int) -> np.ndarray:
    """Fat signal displaced by ``pixels`` along ``axis`` (the frequency-encoding direction)."""
    fat = np.where(np.isin(tissues, FAT), signal, 0.0)
    return signal - fat + np.roll(fat, pixels, axis=axis)


def render(rng: np.random.Generator, tissues: np.ndarray, supersample: int, contrast: str,
           protocol: np.random.Generator | None = None) -> np.ndarray:
    """Image of a super-sampled tissue map, averaged down by ``supersample`` (partial volume), un-normalised.

    With some probability the slice is thick enough to reach the endplates above or below the disc (the disc
    blends towards endplate signal), and fat is displaced by chemical shift (1-2 pixels along one axis).
    ``protocol`` draws what the scanner's settings fix (intensities, texture strength and scale, slab, shift); the
    slices of one series get generators in the same state, so they share them. By default ``rng`` draws them too."""
    protocol = protocol or rng
    means, texture = tissue_intensities(protocol, contrast)
    fine = smooth_noise(rng, tissues.shape, protocol.uniform(1.0, 4.0) * supersample)
    signal = means[tissues]
    if protocol.random() < 0.3:
        signal = thick_slab(signal, tissues, means, protocol.uniform(0.1, 0.45))
    if contrast != "T2FS" and protocol.random() < 0.3:
        signal = chemical_shift(signal, tissues, int(protocol.integers(1, 3) * protocol.choice([-1, 1])) * supersample,
                                int(protocol.integers(0, 2)))
    image = signal * (1.0 + texture[tissues] * fine)
    if supersample > 1:
        h, w = tissues.shape[0] // supersample, tissues.shape[1] // supersample
        image = image[:h * supersample, :w * supersample].reshape(h, supersample, w, supersample).mean(axis=(1, 3))
    return image


def acquire(rng: np.random.Generator, image: np.ndarray, blur_px: float, noise_scale: float = 1.0,
            protocol: np.random.Generator | None = None) -> np.ndarray:
    """Blur, bias field, Gibbs ringing, Rician noise and a random gamma; result scaled to about [0, 1].
    ``noise_scale`` multiplies the noise's random level and draws the same random numbers whatever it is, so that
    the same seed gives the same image with less (or no) noise. ``protocol``: see render (here the bias field's
    scale and strength, the ringing, the noise level and the gamma); the fields themselves come from ``rng``."""
    protocol = protocol or rng
    if blur_px > 0.05:
        image = ndimage.gaussian_filter(image, blur_px)
    bias = smooth_noise(rng, image.shape, max(image.shape) / protocol.uniform(1.5, 4.0))
    image = image * np.exp(protocol.uniform(0.0, 0.5) * bias)
    if protocol.random() < 0.25:
        image = _gibbs(protocol, image)
    sigma = noise_scale * protocol.uniform(0.01, 0.12) * max(float(np.percentile(image, 99)), 1e-3)
    noisy = np.hypot(image + rng.normal(0.0, sigma, image.shape), rng.normal(0.0, sigma, image.shape))
    scale = max(float(np.percentile(noisy, 99.5)), 1e-6)
    return np.clip(noisy / scale, 0.0, 1.5) ** float(np.exp(protocol.normal(0.0, 0.25)))


def _gibbs(protocol: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Truncate k-space along one axis (ringing at sharp edges)."""
    axis = int(protocol.integers(0, 2))
    spectrum = np.fft.fftshift(np.fft.fft(image, axis=axis), axes=axis)
    n = image.shape[axis]
    keep = int(n * protocol.uniform(0.55, 0.85) / 2)
    window = np.zeros(n)
    window[n // 2 - keep:n // 2 + keep] = 1.0
    spectrum *= window.reshape((-1, 1) if axis == 0 else (1, -1))
    return np.abs(np.fft.ifft(np.fft.ifftshift(spectrum, axes=axis), axis=axis))
