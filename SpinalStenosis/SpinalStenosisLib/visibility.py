"""Whether the image shows the canal. A canal outline may follow only the noise: on a slice beyond the coil's reach the
image is noise alone, yet network 2 still outlines a "canal" there, often one graded as a stenosis, and sometimes with
confidence: such a canal is to check (measurement.structure_to_check). And an image clipped at its bright end (an export
windowed too narrowly) shows the CSF and the bright fat behind the sac alike (clipped_image_warnings). A label image (a
segmentation or mask) shows no anatomy at all, nor a CT the contrasts of MR, yet the networks outline a plausible canal
on either (not_an_mr_image). And an image may show less than its array: a scanner or a reslice fills what lies beyond
the imaged area with zeros (padding), where a structure is cut as at the array's edge, or with a negative value, read
as 0 (padding_value). An image normalised to zero mean shows the networks its air and dark tissues as black, and one
with an offset added shows them grey, unless they see it from its darkest level up (intensity_floor); and a pixel far
brighter than all around it is a spike, not anatomy (despiked)."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .geometry import FieldOfView, PlaneGrid, ceil_pixels

SMOOTHING_MM = 1.0  # the scale of a sac's edge: finer than the sac, coarser than one pixel's noise
WINDOW_MM = 10.0  # the image around the canal where the noise is estimated
# An outline in white noise scores about 1. Of the canals the networks found on 400 synthetic validation slices
# (seed 2 000 000), the 5 below 1.75 were all gross failures (canal Dice below 0.8); of the 8 below 2, two were not
# (benchmarks/canal_visibility.py)
MIN_CANAL_EDGE_TO_NOISE = 1.75
# A clipped slice has many of its canal's pixels at its maximum, an unclipped one one or none (on the real validation
# images that are not clipped, at most 3 %). On the synthetic T2 slices exported 8-bit, and with the top of the
# window clipped, where this fraction or more were, canal AP within 1 mm fell by 15 and 21 points against the same
# slices unclipped (benchmarks/exported_images.py --validation --count 200; without --validation, on the held-out
# seed's slices, by 16 and 18; with --contrast T2FS, by 8 and 9)
CLIPPED_CANAL_FRACTION = 0.3
# A label image holds a few small whole numbers (this project's 0-3, a mask's 0-1, the Lumbar Spine MRI dataset's
# multiples of 50 up to 250); an MR image, even an 8-bit export, hundreds of values
MAX_LABEL_VALUES, MAX_LABEL_VALUE = 16, 255
# A segmentation of many structures holds more values (TotalSegmentator's 50 MR classes, 117 CT ones), but in flat
# regions: most of its labelled pixels lie inside one, their 3 x 3 neighbourhood one value (65 % of the
# TotalSegmentator example's, 84-85 % of the MyoSegmenTUM muscle labels'). Noise leaves few flat pixels in an MR
# image: on the real validation volumes exported 8-bit none, with 31 grey levels at most 25 %, as JPEG at quality 75
# and 15 at most 11 and 35 % (benchmarks/label_images.py). A JPEG export smooths noise flat in places (on synthetic
# slices at quality 15 up to 57 %), but its ringing leaves it nearly every one of the 256 values (at least 241)
MIN_FLAT_SHARE, MAX_FLAT_LABEL_VALUES = 0.5, 128
FLAT_EDGES = 0.02  # of the brightest value: the pixels this close to 0 or to it are not counted (flat_pixels)
# A CT in Hounsfield units has its fat at about -100 and its air at about -1000: a tenth or more of even a field of
# view inside the body (a spine CT's); an MR image has no intensity below 0 but a little noise, whatever its scale
# (normalised, a few units below 0)
FAT_HU, CT_FAT_SHARE = -50.0, 0.05
# A mask or a probability map (a segmentation network's soft output) is two-level: nearly all its pixels lie at 0 or
# at its brightest value, its edges alone between. The real cord, grey-matter and muscle masks blurred into one hold
# 89-100 % of their pixels there, and so do the maps of their backgrounds (a softmax's first channel: bright nearly
# everywhere), but for the TotalSegmentator example's 24 labels blurred as one, 75 % (their many edges at 3 mm pixels).
# An MR image, with air around the body or zeroed by the scanner, and its 8-bit and JPEG exports, hold at most 71 %
# (CHAOS volume 10 and the MyoSegmenTUM water images), and exported windowed so that half the body is white 81 %
# (benchmarks/label_images.py). A neck in a wide field of view has much air: the GM challenge's sub-9418 (192 mm)
# 62 %, which a 280 mm one would make about 82 %. Padding adds to it: with 60 % of its width zeroed, sub-9669 reaches
# 91 %
EXTREME_LEVEL, TWO_LEVEL_SHARE = 0.01, 0.9  # of the image's brightest value; of its pixels
# A few pixels far brighter than the rest (spikes, the pile-up beside a screw) would make nearly any MR image look dark
# against its brightest value: that is taken as at most BRIGHTEST_RATIO times the value BRIGHTEST_PERCENTILE of its
# pixels reach, which leaves the real validation images' (and probability maps') brightest values as they are
BRIGHTEST_PERCENTILE, BRIGHTEST_RATIO = 99.99, 2.0
# Padding is solid zeros; a dark image's noise leaves scattered ones (the SCT lumbar T2's, beside its canal, reach
# the image's edge through its noise). No canal or foramen found on the real validation images borders zeros that
# squares this wide fill (benchmarks/evaluate_real.py: the edge cuts only the SCT T2's, at the array's edge)
PADDING_SQUARE_PX = 5
CHECKED_SLICES = 20  # of an image's content, spread over the stack
# Magnitude MR is not negative but for a little noise or interpolation's overshoot (1.3 % of the TotalSegmentator
# example's voxels, which was resampled; none of the other real validation images'). An image with more of its
# pixels below 0 carries an offset, as one normalised to zero mean does: its air and dark tissues are negative, and
# the networks, which learnt on images whose air is 0, would see them all as black
NEGATIVE_SHARE = 0.05
# An MR image a reslice or an export padded beyond its imaged area with a negative value holds it on this share of its
# pixels or more, as its lowest (padding_value); a CT's air lies about -1000 (CT_AIR_HU), where some exports clip it
PADDING_SHARE = 0.01
CT_AIR_HU = (-1100.0, -900.0)
FLOOR_PERCENTILE = 0.5  # such an image's darkest level (its air, or its darkest tissue) is taken as its zero
# An image whose darkest level is this share of its bright level (BRIGHT_PERCENTILE) or more carries an offset too: in
# MR the air, cortical bone and ligaments are dark. The real validation images' darkest levels are at most 5.6 % of
# their bright ones (the tightly cropped SCT T2*, no air in view), the synthetic stacks' 7.8 % (darkest_share, as
# benchmarks/evaluate_real.py and evaluate_synthetic.py --stacks print it), the test phantom's grey background 11 %.
# A synthetic slice cropped to a few centimetres around the spine, or whose air is grey with noise, reaches it now and
# then, and is seen from its darkest level up too, which changes little there (evaluate_synthetic.py prints both)
RAISED_FLOOR_SHARE = 0.12
BRIGHT_PERCENTILE = 99.5
# A pixel more than this many times as bright as each of its eight neighbours, and among the slice's brightest
# (BRIGHT_PERCENTILE), is a spike, not anatomy: the networks, which would see a bright blob in its place once the
# crop is resampled, and the checks see it as the median of its neighbours (despiked). No pixel of the real validation
# images is one (at 1.5 times, 15 of their 19 million are)
SPIKE_RATIO = 2.0
_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)


def faint(canal_edge_to_noise: float) -> bool:
    """Whether a canal's outline follows no edge clearer than MIN_CANAL_EDGE_TO_NOISE (False where not measured)."""
    return canal_edge_to_noise < MIN_CANAL_EDGE_TO_NOISE


def padding(image: np.ndarray) -> np.ndarray | None:
    """The slice's padding (bool [row, column]): its zeros that fill PADDING_SQUARE_PX squares and, so filled, reach
    its edge (or the air a scanner zeroed there, which no canal or foramen borders); None where there are none."""
    zero = image == 0
    if not (zero[0].any() or zero[-1].any() or zero[:, 0].any() or zero[:, -1].any()):
        return None
    # an opening by the square, as separable minimum and maximum filters: binary_opening's pixels in half its time
    solid = ndimage.maximum_filter(ndimage.minimum_filter(zero, PADDING_SQUARE_PX, mode="constant", cval=0),
                                   PADDING_SQUARE_PX, mode="constant", cval=0)
    labelled, _ = ndimage.label(solid)
    reaching_edge = np.setdiff1d(np.concatenate([labelled[0], labelled[-1], labelled[:, 0], labelled[:, -1]]), [0])
    return np.isin(labelled, reaching_edge) if reaching_edge.size else None


def field_of_view(image: np.ndarray, grid: PlaneGrid) -> FieldOfView:
    """What a slice's image shows: its grid, less its padding."""
    return FieldOfView(grid, padding(image))


def noise_sd(image: np.ndarray) -> float:
    """The standard deviation of white noise as strong as the image's noise over 2 × 2 pixels: the median absolute
    deviation of the differences between neighbouring 2 × 2 means, scaled (anatomy changes little from one block to
    the next; noise does not). Noise that interpolation has spread over neighbouring pixels counts as strong as it
    is at that scale, where the canal's edge is measured; single-pixel differences would understate it."""
    rows, columns = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    means = np.asarray(image[:rows, :columns], float).reshape(rows // 2, 2, columns // 2, 2).mean(axis=(1, 3))
    differences = np.concatenate([np.diff(means, axis=0).ravel(), np.diff(means, axis=1).ravel()])
    return float(2 * 1.4826 * np.median(np.abs(differences - np.median(differences))) / math.sqrt(2))


@lru_cache(maxsize=64)
def _gradient_sd_of_unit_noise(smoothing_px: float) -> float:
    """The standard deviation of one component of the smoothed gradient of white noise of unit variance: the root
    sum of squares of the filter's impulse response."""
    size = int(8 * smoothing_px) | 1
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    response = np.gradient(ndimage.gaussian_filter(impulse, smoothing_px), axis=0)
    return float(np.sqrt((response ** 2).sum()))


def canal_edge_to_noise(image: np.ndarray, canal: np.ndarray, grid: PlaneGrid) -> float:
    """The mean gradient of the image (smoothed over SMOOTHING_MM) along the canal's outline, over the mean gradient
    magnitude white noise of the image's own noise level would have there: about 1 where the outline follows only
    noise. NaN without a canal."""
    if not canal.any():
        return math.nan
    pixel_mm = float(np.mean(grid.pixel_size_mm))
    smoothing_px = max(SMOOTHING_MM / pixel_mm, 1.0)
    margin = ceil_pixels(WINDOW_MM / pixel_mm)
    box = grown_box(canal, (margin, margin))
    window, inside = np.asarray(image[box], float), canal[box]
    outline = inside & ~ndimage.binary_erosion(inside)
    gradient = np.hypot(*np.gradient(ndimage.gaussian_filter(window, smoothing_px)))
    # the magnitude of a 2-D Gaussian vector of equal, independent components: Rayleigh, mean sd * sqrt(pi / 2)
    noise_gradient = noise_sd(window) * _gradient_sd_of_unit_noise(smoothing_px) * math.sqrt(math.pi / 2)
    # a noiseless image's floor, relative to its own level whatever its unit
    floor = max(1e-12 * float(np.abs(window).max()), np.finfo(float).tiny)
    return float(gradient[outline].mean() / max(noise_gradient, floor))


def grown_box(canal: np.ndarray, margins: tuple[int, int]) -> tuple[slice, slice]:
    """The canal's bounding box grown on each side by margins (rows, columns) pixels, cut at the image's first row
    and column."""
    return tuple(slice(max(int(p.min()) - m, 0), int(p.max()) + m + 1) for p, m in zip(np.nonzero(canal), margins))


def clipped_canal(image: np.ndarray, canal: np.ndarray) -> bool:
    """Whether CLIPPED_CANAL_FRACTION or more of the canal's pixels are at the image's maximum intensity while the
    image around the canal has noise (a drawn phantom's flat canal is at its maximum without being clipped)."""
    if not canal.any() or (image[canal] >= image.max()).mean() < CLIPPED_CANAL_FRACTION:
        return False
    rows, columns = np.nonzero(canal)
    return noise_sd(image[grown_box(canal, (np.ptp(rows) + 1, np.ptp(columns) + 1))]) > 0  # grown by its own size


def clipped_image_warnings(read_slice: Callable[[int], np.ndarray], canal_stack: np.ndarray) -> list[str]:
    """A warning naming how many slices with a canal (canal_stack [slice, row, column]) have it clipped
    (clipped_canal): the image is clipped at its bright end, as an export windowed too narrowly is. [] where none
    has."""
    with_canal = np.flatnonzero(canal_stack.any(axis=(1, 2)))
    clipped = sum(clipped_canal(read_slice(s), canal_stack[s]) for s in with_canal)
    if not clipped:
        return []
    where = "" if len(with_canal) == 1 else f" on {clipped} of the {len(with_canal)} slices with a canal"
    return [f"the image is clipped at its bright end (an export windowed too narrowly?): "
            f"{100 * CLIPPED_CANAL_FRACTION:.0f} % or more of the canal's pixels are at the slice's brightest "
            f"value{where}, so the CSF is flattened, with any tissue as bright around it, and canal AP may be "
            "measured less well; measure the original series, or an export of its whole intensity range"]


def label_values(read_slice: Callable[[int], np.ndarray], n_slices: int) -> list[int] | None:
    """The values of an image that is a label image: 2 or more whole numbers from 0 to MAX_LABEL_VALUE over all its
    slices, either MAX_LABEL_VALUES at most or up to MAX_FLAT_LABEL_VALUES with MIN_FLAT_SHARE of the labelled pixels
    in flat regions (flat_pixels); None for any other image (decided on its first slice with anatomy, for an MR
    image), and for a blank one."""
    values: set[float] = set()
    flat, labelled = 0, 0

    def label_like(n_values: int, n_flat: int, n_labelled: int, flat_share: float = MIN_FLAT_SHARE) -> bool:
        """Whether n_values values, n_flat of n_labelled pixels in flat regions, are a label image's."""
        return n_values <= MAX_LABEL_VALUES or (n_values <= MAX_FLAT_LABEL_VALUES
                                                 and n_flat >= flat_share * n_labelled)

    for s in range(n_slices):
        image = read_slice(s)
        if len(np.unique(image[::7, ::7])) > MAX_FLAT_LABEL_VALUES:  # an MR slice, told at a fraction of the cost
            return None
        slice_values = np.unique(image)
        if any(v != int(v) or not 0 <= v <= MAX_LABEL_VALUE for v in slice_values.tolist()):
            return None
        slice_flat, slice_labelled = flat_pixels(image)
        # a slice of many small structures may be less flat (the TotalSegmentator example's 53-72 %): a slice decides
        # only where it is clearly an 8-bit MR slice, the whole image elsewhere
        if not label_like(len(slice_values), slice_flat, slice_labelled, MIN_FLAT_SHARE / 2):
            return None
        values.update(slice_values.tolist())
        flat, labelled = flat + slice_flat, labelled + slice_labelled
    return sorted(int(v) for v in values) if len(values) > 1 and label_like(len(values), flat, labelled) else None


def flat_pixels(image: np.ndarray) -> tuple[int, int]:
    """(how many of an image's labelled pixels have one value over their 3 x 3 neighbourhood, how many are labelled):
    those more than FLAT_EDGES of its brightest value from 0 and from that value. Any image may be flat there: its
    air, an export windowed too narrowly where it is white, and both once JPEG's blocks have smoothed their noise."""
    brightest = image.max()
    labelled = (image > FLAT_EDGES * brightest) & (image < (1.0 - FLAT_EDGES) * brightest)
    flat = ndimage.maximum_filter(image, 3) == ndimage.minimum_filter(image, 3)
    return int(np.count_nonzero(flat & labelled)), int(np.count_nonzero(labelled))


def networks_view(image: np.ndarray, floor: float) -> np.ndarray:
    """A slice as the networks see it, measuring or fine-tuning: from its floor (intensity_floor) up, despiked."""
    return despiked(image - floor)


def despiked(image: np.ndarray) -> np.ndarray:
    """A slice with each spike (SPIKE_RATIO) replaced by the median of its neighbours; the slice itself where it has
    none."""
    brightest_neighbour = ndimage.maximum_filter(image, footprint=_NEIGHBOURS, mode="nearest")
    spikes = (image > SPIKE_RATIO * brightest_neighbour) & (image > np.percentile(image, BRIGHT_PERCENTILE))
    if not spikes.any():
        return image
    return np.where(spikes, ndimage.median_filter(image, footprint=_NEIGHBOURS, mode="nearest"), image)


def is_blank(image: np.ndarray) -> bool:
    """Whether a slice holds one value throughout: it shows nothing (padding, or a slice lost in an export)."""
    return bool(image.min() == image.max())


def blank_slice_warnings(blank_slices: list[int]) -> list[str]:
    """A warning naming the slices that hold one value throughout (is_blank), on which nothing is measured; []
    where there are none."""
    if not blank_slices:
        return []
    several = len(blank_slices) > 1
    return [f"slice{'s' if several else ''} {', '.join(map(str, blank_slices))} hold{'' if several else 's'} one "
            f"value throughout (blank: padding, or a slice lost in the export): nothing is measured on "
            f"{'them' if several else 'it'}"]


def checked_pixels(read_slice: Callable[[int], np.ndarray], n_slices: int) -> np.ndarray:
    """The pixels of CHECKED_SLICES slices spread over the stack: the sample fat_share, two_level_share and
    intensity_floor judge an image by (read once for the last two, again for not_an_mr_image's fat_share)."""
    return np.concatenate([read_slice(s).ravel() for s in range(0, n_slices, max(1, n_slices // CHECKED_SLICES))])


def fat_share(pixels: np.ndarray) -> float:
    """The share of an image's pixels (checked_pixels) at FAT_HU or below."""
    return int(np.count_nonzero(pixels <= FAT_HU)) / pixels.size


def two_level_share(pixels: np.ndarray, floor: float = 0.0) -> float:
    """The share of an image's pixels (checked_pixels) within EXTREME_LEVEL of its brightest value (but for spikes:
    BRIGHTEST_RATIO) from 0 or from that value, both seen from its floor (intensity_floor); 0 for a blank image."""
    pixels = pixels - floor
    brightest = min(pixels.max(), BRIGHTEST_RATIO * np.percentile(pixels, BRIGHTEST_PERCENTILE))
    if brightest <= 0:
        return 0.0
    extreme = (pixels <= EXTREME_LEVEL * brightest) | (pixels >= (1.0 - EXTREME_LEVEL) * brightest)
    return int(np.count_nonzero(extreme)) / pixels.size


def two_level_warnings(share: float) -> list[str]:
    """A warning that an image with TWO_LEVEL_SHARE of its pixels or more at its extremes (two_level_share) may be a
    mask or a probability map; [] for any other."""
    if share < TWO_LEVEL_SHARE:
        return []
    return [f"{int(100 * share)} % of the image's pixels are at its extremes (within {100 * EXTREME_LEVEL:.0f} % of "
            "its brightest value from 0 or from it), as in a mask or a probability map, or an image mostly padding: "
            "check that the image measured is the MR image, not a segmentation"]


def intensity_floor(pixels: np.ndarray) -> tuple[float, float]:
    """(the share of an image's pixels (checked_pixels) below 0, the level the networks take as its zero): its
    FLOOR_PERCENTILE percentile for an image with NEGATIVE_SHARE of its pixels below 0 or more, or whose darkest level
    is RAISED_FLOOR_SHARE of its bright one or more; else 0."""
    negative = int(np.count_nonzero(pixels < 0)) / pixels.size
    floor, bright = np.percentile(pixels, [FLOOR_PERCENTILE, BRIGHT_PERCENTILE])
    offset = negative >= NEGATIVE_SHARE or _share_of(floor, bright) >= RAISED_FLOOR_SHARE
    return negative, float(floor) if offset else 0.0


def darkest_share(pixels: np.ndarray) -> float:
    """An image's darkest level (its pixels' FLOOR_PERCENTILE percentile, checked_pixels) over its bright level
    (BRIGHT_PERCENTILE); 0 where its bright level is not above 0."""
    return _share_of(*np.percentile(pixels, [FLOOR_PERCENTILE, BRIGHT_PERCENTILE]))


def _share_of(floor: float, bright: float) -> float:
    return float(floor / bright) if bright > 0 else 0.0


def offset_warnings(negative_share: float, floor: float) -> list[str]:
    """A warning that the networks saw the image from its floor (intensity_floor) up; [] for a floor of 0."""
    if not floor:
        return []
    if floor > 0:
        return [f"the image's darkest level ({floor:.4g}) is far above 0, as in an image with an offset added (its air "
                "not dark), one so noisy that its air is grey, or one cropped so tightly that it shows no air: the "
                "networks saw it from that level up, as an MR image whose air is 0"]
    return [f"{100 * negative_share:.0f} % of the image's pixels are below 0, as in an image normalised to zero "
            f"mean: the networks saw it from its darkest level ({floor:.4g}) up, as an MR image whose air is 0"]


def flat_lowest_value(pixels: np.ndarray) -> float | None:
    """An image's lowest value where it is negative and held as padding is: by PADDING_SHARE of its pixels or more,
    with fewer than NEGATIVE_SHARE of the others below 0 (MR is not negative; a CT's fat and a z-scored image's dark
    tissues are); None for any other image."""
    lowest = float(pixels.min()) if pixels.size else 0.0
    if lowest >= 0:
        return None
    padded = int(np.count_nonzero(pixels == lowest))
    others_negative = int(np.count_nonzero(pixels < 0)) - padded  # none in a slice all padding
    if padded < PADDING_SHARE * pixels.size or (others_negative and
                                                others_negative >= NEGATIVE_SHARE * (pixels.size - padded)):
        return None
    return lowest


def padding_value(pixels: np.ndarray) -> float | None:
    """The negative value that pads an MR image beyond its imaged area (-1, -32768...; flat_lowest_value), to be
    read as 0; None for any other image, and for one whose flat lowest value is a CT's air (CT_AIR_HU): a CT whose
    air an export clipped at -1000 holds it so too, and is told as a CT (not_an_mr_image)."""
    lowest = flat_lowest_value(pixels)
    return None if lowest is None or CT_AIR_HU[0] <= lowest <= CT_AIR_HU[1] else lowest


def not_an_mr_image(read_slice: Callable[[int], np.ndarray], n_slices: int) -> str:
    """Why an image is not an MR image: a blank image (one value throughout), a label image (label_values), one whose
    intensities are inverted (its bright level, BRIGHT_PERCENTILE, below 0: a CT's bone and an MR image's tissues are
    bright), or a CT (fat_share at least CT_FAT_SHARE); "" for any other."""
    pixels = checked_pixels(read_slice, n_slices)
    if is_blank(pixels) and all(is_blank(read_slice(s)) for s in range(n_slices)):
        return f"every pixel of the image is {pixels[0]:g}: a blank image (an empty export?)"
    labels = label_values(read_slice, n_slices)
    if labels is not None:
        held = (f"the values {', '.join(map(str, labels))}" if len(labels) <= MAX_LABEL_VALUES
                else f"{len(labels)} whole values, from {labels[0]} to {labels[-1]}, in flat regions")
        return f"the image holds only {held}: a label image (a segmentation or mask)"
    if np.percentile(pixels, BRIGHT_PERCENTILE) < 0:
        return (f"{BRIGHT_PERCENTILE:g} % of the image's pixels are below 0: its intensities are inverted (a negative "
                "rescale slope?), or it is a map of differences")
    fat = fat_share(pixels)
    if fat < CT_FAT_SHARE:
        return ""
    flat = flat_lowest_value(pixels)
    padded = (f" (if it is an MR image padded with {flat:g} beyond its imaged area, set that padding to 0)"
              if flat is not None else "")
    return (f"{100 * fat:.0f} % of the image's pixels are at {FAT_HU:.0f} or below, as fat and air are in a CT's "
            f"Hounsfield units: a CT image{padded}")
