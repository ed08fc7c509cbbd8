"""The two-network segmenter: ROI on the whole slice → crop of the original slice → canal and foramina."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from .centreline import CanalSighting
from .crop import (MAX_CROP_MM, MIN_CROP_MM, crop_from_box, crop_grid, crops_from_roi, field_of_view_side_mm,
                   half_slice_grids, normalise, resample, roi_box, whole_slice_grid)
from .geometry import PlaneGrid, ceil_pixels, floor_pixels
from .pipeline import SliceSegmentation
from .symmetry import canal_off_axis_mm
from .visibility import canal_edge_to_noise

CHANNELS = ("left_foramen", "canal", "right_foramen")  # network-2 output order
# network 2's channel for each of CHANNELS on the left-right mirror of a crop: the patient's sides change places
_OTHER_SIDE = {"left_foramen": "right_foramen", "right_foramen": "left_foramen"}
MIRRORED_CHANNELS = tuple(CHANNELS.index(_OTHER_SIDE.get(name, name)) for name in CHANNELS)
LABEL_OF = {"canal": 1, "left_foramen": 2, "right_foramen": 3}
MIN_FORAMEN_MM2 = 3.0
# no dural sac is this small (a circle 2.5 mm across; the smallest of the synthetic held-out set is 12.6 mm²): a
# canal network 2 finds smaller than this is a speck on something else, and is reported absent
MIN_CANAL_MM2 = 5.0
MAX_FORAMEN_DISTANCE_MM = 35.0
# a foramen opens from the lateral recess, a few mm beside the sac: on synthetic validation slices (seed 2 000 000)
# its nearest edge lies at most 7.2 mm from the sac's, and network 2's well-measured foramina at most 8.4 mm
MAX_FORAMEN_GAP_MM = 10.0
MAX_CANDIDATES = 3  # regions of network 1's mask that network 2 examines
PRECISIONS = ("auto", "float32", "bfloat16")  # what the networks compute in (see network_dtype)
# the shipped segmenter averages network 2's probabilities on each slice's final crop with those on its mirror image:
# steadier measurements and better doubts for about a fifth more time (benchmarks/EVALUATION.md, *Models 1.8.0
# against 1.7.0*)
SHIPPED_MIRROR_AVERAGE = ("final",)


class NetworkSegmenter:
    """Segments batches of axial slices (rows A→P, columns R→L) with the ROI and canal CoU-Nets. A second ROI
    network, one level deeper (it sees the whole body), is asked only where the first gives no region, or none in
    which network 2 finds a canal: the first is the one that held up on real images, the second takes fewer bright
    abdominal organs for the spine.

    A slice may also be given as several contrasts of one anatomy on its grid ([contrast, rows, columns]: a colour
    composite's channels, the first the one to look at): the ROI networks and the checks see the first, and network
    2's probabilities on each crop are averaged over them all (each contrast may show edges another hides: on T2 the
    epidural fat is as bright as the CSF, on T1 it is bright against dark CSF).

    >>> segmenter = load_segmenter()                                   # doctest: +SKIP
    >>> [result] = segmenter.segment([image], [grid])                  # doctest: +SKIP
    """

    averages_contrasts = True  # segment and look_again take a slice as several contrasts too (see above)

    def __init__(self, roi_model, canal_model, device: str = "cpu", provenance: dict | None = None,
                 second_roi_model=None, dtype=None, mirror_average: tuple[str, ...] = ()):
        """dtype: the torch dtype the models' weights are in (None: float32). mirror_average: where probabilities
        are averaged with those of the left-right mirrored view: "final", network 2's on each slice's final crop
        (SHIPPED_MIRROR_AVERAGE); "roi" and "canal", every pass of both ROI networks or of network 2 (twice their
        time; not shipped, see benchmarks/EXPERIMENTS.md)."""
        self.roi_model, self.canal_model, self.device, self.dtype = roi_model, canal_model, device, dtype
        self.second_roi_model, self.mirror_average = second_roi_model, mirror_average
        self.provenance = provenance or {}

    def _predict(self, model, batch: list[np.ndarray], network: str = "roi",
                 mirrored_channels: tuple[int, ...] = (0,)) -> np.ndarray:
        """The probabilities of a model (network, as mirror_average names it) for a batch of views; where
        mirror_average names the network, averaged with those on the mirrored views (_on_mirror)."""
        import torch

        with torch.inference_mode():
            inputs = self._tensor(batch)
            probabilities = torch.sigmoid(model(inputs).float())
            if network in self.mirror_average:
                probabilities = (probabilities + self._on_mirror(model, inputs, mirrored_channels)) / 2
            return probabilities.cpu().numpy()

    def _tensor(self, batch: list[np.ndarray]):
        """A batch of views [N, 1, H, W] on the models' device, in their dtype."""
        import torch

        return torch.from_numpy(np.stack(batch)[:, None].astype(np.float32)).to(self.device, self.dtype)

    @staticmethod
    def _on_mirror(model, inputs, mirrored_channels: tuple[int, ...]):
        """A model's probabilities on the left-right mirrored inputs, mirrored back: each channel taken from
        mirrored_channels (its own on the mirror)."""
        import torch

        from .network import mirrored

        return mirrored(torch.sigmoid(model(inputs.flip(-1)).float()), mirrored_channels)

    def _best_candidates(self, images, grids, candidates: dict[int, list[PlaneGrid]]
                         ) -> tuple[dict[int, PlaneGrid], dict[int, np.ndarray], dict[int, float]]:
        """Network 2 on every candidate crop of every slice; per slice, the crop where it is surest of a canal,
        its probabilities and that confidence (see CanalSighting)."""
        flat = [(n, crop) for n, crops in candidates.items() for crop in crops]
        if not flat:
            return {}, {}, {}
        crops, probabilities, confidence = {}, {}, {}
        for (n, crop), p in zip(flat, self._canal_probabilities(images, grids, flat)):
            sighting = CanalSighting.of(p[CHANNELS.index("canal")], crop)
            score = sighting.confidence if sighting is not None else 0.0
            if score > confidence.get(n, -1.0):
                crops[n], probabilities[n], confidence[n] = crop, p, score
        return crops, probabilities, confidence

    def _canal_probabilities(self, images, grids, crops: list[tuple[int, PlaneGrid]], on_mirror: bool = False
                             ) -> np.ndarray:
        """Network 2's probabilities on each (slice, crop) of crops, averaged over the slice's contrasts (with
        on_mirror, on the crop's left-right mirror only, mirrored back)."""
        import torch

        views = [_contrast_views(images[n], grids[n], crop) for n, crop in crops]
        batch = [view for contrasts in views for view in contrasts]
        if on_mirror:
            with torch.inference_mode():
                probabilities = self._on_mirror(self.canal_model, self._tensor(batch), MIRRORED_CHANNELS).cpu().numpy()
        else:
            probabilities = self._predict(self.canal_model, batch, "canal", MIRRORED_CHANNELS)
        counts = [len(contrasts) for contrasts in views]
        summed = np.add.reduceat(probabilities, np.cumsum([0, *counts[:-1]]), axis=0)
        return summed / np.array(counts, probabilities.dtype)[:, None, None, None]

    def segment(self, images: list[np.ndarray], grids: list[PlaneGrid]) -> list[SliceSegmentation]:
        candidates, second_asked = self._regions_of_interest(images, grids)
        return self._segment_crops(images, grids, candidates, second_asked)

    def _network_1_regions(self, model, images, grids, slices) -> dict[int, list[PlaneGrid]]:
        """An ROI network on each of these slices whole → its candidate crops."""
        views = {n: whole_slice_grid(grids[n]) for n in slices}
        masks = self._predict(model, [normalise(resample(_looked_at(images[n]), grids[n], views[n])) for n in slices])
        return {n: _candidate_crops(grids[n], views[n], mask[0]) for n, mask in zip(slices, masks)}

    def _second_opinion(self, images, grids, slices) -> dict[int, list[PlaneGrid]]:
        """The second ROI network's candidate crops of these slices, where it gives any."""
        if self.second_roi_model is None or not slices:
            return {}
        regions = self._network_1_regions(self.second_roi_model, images, grids, slices)
        return {n: crops for n, crops in regions.items() if crops}

    def _regions_of_interest(self, images, grids) -> tuple[dict[int, list[PlaneGrid]], frozenset[int]]:
        """Network 1 on each whole slice → its candidate crops; where it sees no spine, the second ROI network's;
        where neither does on a slice too large to try whole, network 1 on nine views half as wide (on a whole
        abdomen a canal is a few pixels of the view). Also the slices the second ROI network was asked about."""
        candidates = self._network_1_regions(self.roi_model, images, grids, range(len(grids)))
        second_asked = frozenset(n for n, crops in candidates.items() if not crops)
        candidates.update(self._second_opinion(images, grids, sorted(second_asked)))
        closer = [(n, view) for n, crops in candidates.items() if not crops for view in half_slice_grids(grids[n])]
        if closer:
            roi = self._predict(self.roi_model, [normalise(resample(_looked_at(images[n]), grids[n], v))
                                                 for n, v in closer])
            for (n, view), mask in zip(closer, roi):
                candidates[n] += crops_from_roi(grids[n], view, mask[0], count=1)
        return candidates, second_asked

    def look_again(self, images: list[np.ndarray], grids: list[PlaneGrid],
                   expected: list[CanalSighting]) -> list[SliceSegmentation]:
        """Network 2 alone, on a crop of each slice where its neighbours say the canal is (see centreline), and on
        one 1.5 times as wide (the line is a guess: it misses a canal that the crop cuts at its edge)."""
        crops = {}
        for n, (grid, where) in enumerate(zip(grids, expected)):
            crop = _crop_at(grid, where.centre_ras, where.crop_side_mm)
            crops[n] = [crop, _widened(crop, grid)]
        return self._segment_crops(images, grids, crops)

    def _surest_crops(self, images, grids, candidates: dict[int, list[PlaneGrid]], second_asked: frozenset[int]
                      ) -> tuple[dict[int, PlaneGrid], dict[int, np.ndarray]]:
        """Per slice, the candidate crop where network 2 is surest of a canal, and its probabilities; where it sees
        none, the second ROI network's crops (unless it was asked about the slice already: second_asked); where it
        still sees none, also crops half as wide over the surest one (a small canal in a crop much wider than those
        it learnt on is missed)."""
        crops, probabilities, confidence = self._best_candidates(images, grids, candidates)
        second = self._second_opinion(images, grids, [n for n, score in confidence.items()
                                                      if score == 0.0 and n not in second_asked])
        self._take_where_found(images, grids, second, crops, probabilities, confidence)
        closer = {n: _tiles(crops[n], grids[n]) for n, score in confidence.items() if score == 0.0}
        closer = {n: tiles for n, tiles in closer.items() if tiles}
        self._take_where_found(images, grids, closer, crops, probabilities, confidence)
        return crops, probabilities

    def _take_where_found(self, images, grids, alternatives: dict[int, list[PlaneGrid]], crops: dict,
                          probabilities: dict, confidence: dict) -> None:
        """Network 2 on each slice's alternative crops; where it finds a canal on one, the surest of them replaces
        the slice's crop, probabilities and confidence (in place)."""
        found, found_probabilities, found_confidence = self._best_candidates(images, grids, alternatives)
        for n, score in found_confidence.items():
            if score > 0.0:
                crops[n], probabilities[n], confidence[n] = found[n], found_probabilities[n], score

    def _averaged_with_mirror(self, images, grids, crops: dict[int, PlaneGrid], probabilities: dict[int, np.ndarray]
                              ) -> dict[int, np.ndarray]:
        """Network 2's probabilities on each slice's crop averaged with those on the crop's left-right mirror."""
        slices = sorted(probabilities)
        if not slices:
            return probabilities
        on_mirror = self._canal_probabilities(images, grids, [(n, crops[n]) for n in slices], on_mirror=True)
        return {n: (probabilities[n] + p) / 2 for n, p in zip(slices, on_mirror)}

    def _segment_crops(self, images, grids, candidates: dict[int, list[PlaneGrid]],
                       second_asked: frozenset[int] = frozenset()) -> list[SliceSegmentation]:
        crops, probabilities = self._surest_crops(images, grids, candidates, second_asked)
        masks = {n: _plausible_masks(p, crops[n]) for n, p in probabilities.items()}
        # the box holds the canal and the plausible foramina only: a stray one far from the canal would stretch it
        boxes = {n: roi_box(np.stack([m[name] for name in CHANNELS]), crops[n]) for n, m in masks.items()}
        refined = {n: crop_from_box(grids[n], crops[n], box) for n, box in boxes.items() if box is not None}
        redo = {n: crop for n, crop in refined.items() if _differs(crop, crops[n])}
        if redo:  # network 2 was trained on crops around the true region: crop again around what it found
            again, again_probabilities, again_confidence = self._best_candidates(
                images, grids, {n: [crop] for n, crop in redo.items()})
            lost = {n: _widened(crop, grids[n]) for n, crop in redo.items() if again_confidence.get(n, 0.0) == 0.0}
            if lost:  # network 2 misses a canal that fills most of a tight crop: look from farther away
                wider, wider_probabilities, wider_confidence = self._best_candidates(
                    images, grids, {n: [crop] for n, crop in lost.items()})
                again, again_probabilities = {**again, **wider}, {**again_probabilities, **wider_probabilities}
                again_confidence = {**again_confidence, **wider_confidence}
            for n, confidence in again_confidence.items():
                if confidence > 0.0:  # unless the canal is lost there
                    crops[n], probabilities[n] = again[n], again_probabilities[n]
        if "final" in self.mirror_average:
            probabilities = self._averaged_with_mirror(images, grids, crops, probabilities)
        results = []
        for n, grid in enumerate(grids):
            crop = crops.get(n)
            if crop is None:
                results.append(SliceSegmentation.empty(grid))
                continue
            reported = _plausible_masks(probabilities[n], crop, reported=True)
            labels = native_labels(reported, crop, grid)
            canal, image = labels == LABEL_OF["canal"], _looked_at(images[n])
            results.append(SliceSegmentation(reported, crop, labels, _box(crop, grid),
                                             canal_edge_to_noise(image, canal, grid),
                                             canal_off_axis_mm(image, canal, grid)))
        return results


def plausible(masks: dict[str, np.ndarray], grid: PlaneGrid, reported: bool = False) -> dict[str, np.ndarray]:
    """Drop a predicted foramen that anatomy rules out: smaller than MIN_FORAMEN_MM2, farther than
    MAX_FORAMEN_DISTANCE_MM from the canal, or on the other side of it (patient left is RAS -x). For the segmenter's
    result (reported) also a foramen whose nearest edge lies farther than MAX_FORAMEN_GAP_MM from the canal's (a
    vessel or a muscle septum), and a canal smaller than MIN_CANAL_MM2; not for the masks whose box gives the second
    crop: with such a find dropped that crop is tighter, network 2 misses true foramina on it, and a speck of a
    narrowed sac would give no second crop, on which network 2 finds the whole sac."""
    from .measurement import largest_component

    canal = largest_component(masks["canal"]) >= 0.5
    if reported and canal.any() and canal.sum() * grid.pixel_area_mm2 < MIN_CANAL_MM2:
        masks, canal = {**masks, "canal": np.zeros_like(masks["canal"])}, np.zeros_like(canal)
    centre = grid.centroid_ras(canal) if canal.any() else None
    gap_mm = (ndimage.distance_transform_edt(~canal, sampling=grid.pixel_size_mm)
              if centre is not None and reported else None)
    for name, side in (("left_foramen", -1.0), ("right_foramen", 1.0)):
        foramen = largest_component(masks[name]) >= 0.5
        if not foramen.any():
            continue
        position = grid.centroid_ras(foramen)
        too_small = foramen.sum() * grid.pixel_area_mm2 < MIN_FORAMEN_MM2
        misplaced = centre is not None and (np.linalg.norm(position - centre) > MAX_FORAMEN_DISTANCE_MM
                                            or side * (position[0] - centre[0]) <= 0
                                            or (gap_mm is not None and gap_mm[foramen].min() > MAX_FORAMEN_GAP_MM))
        if too_small or misplaced:
            masks = {**masks, name: np.zeros_like(masks[name])}
    return masks


def _plausible_masks(probabilities: np.ndarray, crop: PlaneGrid, reported: bool = False) -> dict[str, np.ndarray]:
    """Network 2's output [CHANNELS, rows, columns] as masks by name, without what plausible rules out (reported: for
    the segmenter's result)."""
    return plausible(dict(zip(CHANNELS, probabilities)), crop, reported)


def _looked_at(image: np.ndarray) -> np.ndarray:
    """The slice the ROI networks and the checks see: its first contrast where it is given several."""
    return image if image.ndim == 2 else image[0]


def _contrast_views(image: np.ndarray, grid: PlaneGrid, crop: PlaneGrid) -> list[np.ndarray]:
    """Network 2's view of the crop in each of the slice's contrasts (one for a slice given as one image)."""
    return [normalise(resample(contrast, grid, crop)) for contrast in (image[None] if image.ndim == 2 else image)]


def _candidate_crops(grid: PlaneGrid, view: PlaneGrid, roi_mask: np.ndarray) -> list[PlaneGrid]:
    """Where to look for the canal: a field of view within the smallest crop (e.g. a 25 mm cervical T2*) is its
    own region of interest (any crop network 1 could give would hold less of it); otherwise each region network 1
    found; if it found none, the whole field of view when that fits in one crop; else nowhere (no spine)."""
    if field_of_view_side_mm(grid) <= MIN_CROP_MM:
        return [_field_of_view_crop(grid)]
    candidates = crops_from_roi(grid, view, roi_mask, count=MAX_CANDIDATES)
    if not candidates and field_of_view_side_mm(grid) <= MAX_CROP_MM:
        return [_field_of_view_crop(grid)]
    return candidates


def _field_of_view_crop(grid: PlaneGrid) -> PlaneGrid:
    """The crop centred on the slice, holding its whole field of view."""
    return crop_grid(grid, ((grid.shape[0] - 1) / 2, (grid.shape[1] - 1) / 2),
                     max(field_of_view_side_mm(grid), MIN_CROP_MM))


def _widened(crop: PlaneGrid, native: PlaneGrid, factor: float = 1.5) -> PlaneGrid:
    """The same crop with its side times factor (at most MAX_CROP_MM)."""
    return _crop_at(native, crop.centre_ras, min(field_of_view_side_mm(crop) * factor, MAX_CROP_MM))


def _tiles(crop: PlaneGrid, native: PlaneGrid) -> list[PlaneGrid]:
    """Crops half as wide (at least MIN_CROP_MM), overlapping by half, that cover crop (none for a crop less than
    1.25 times as wide as they would be)."""
    crop_side_mm = field_of_view_side_mm(crop)
    side_mm = max(crop_side_mm / 2, MIN_CROP_MM)
    if crop_side_mm < 1.25 * side_mm:
        return []
    count = int(np.ceil((crop_side_mm - side_mm) / (side_mm / 2))) + 1
    offsets_px = np.linspace(-1.0, 1.0, count) * (crop_side_mm - side_mm) / 2 / crop.pixel_size_mm[0]
    centre_px = (crop.shape[0] - 1) / 2
    return [_crop_at(native, crop.to_ras(centre_px + row, centre_px + column), side_mm)
            for row in offsets_px for column in offsets_px]


def _crop_at(native: PlaneGrid, centre_ras: np.ndarray, side_mm: float) -> PlaneGrid:
    """The network-2 crop of side_mm centred on a RAS point of the native slice."""
    return crop_grid(native, tuple(float(i) for i in native.to_index(centre_ras)), side_mm)


def _differs(crop: PlaneGrid, other: PlaneGrid) -> bool:
    """More than 3 mm apart or more than 12 % different in size."""
    ratio = crop.pixel_size_mm[0] / other.pixel_size_mm[0]
    return bool(np.linalg.norm(crop.centre_ras - other.centre_ras) > 3.0 or not 0.89 < ratio < 1.12)


def native_labels(masks: dict[str, np.ndarray], crop: PlaneGrid, native: PlaneGrid) -> np.ndarray:
    """Crop probabilities resampled onto the native slice → labels (largest component of each structure).
    Only the crop's footprint on the native grid is resampled; the rest of the slice stays 0."""
    from .measurement import largest_component

    r0, c0, r1, c1 = _box(crop, native)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, native.shape[0]), min(c1, native.shape[1])
    labels = np.zeros(native.shape, np.uint8)
    if r1 <= r0 or c1 <= c0:
        return labels
    footprint = native.crop(r0, c0, r1 - r0, c1 - c0, (r1 - r0, c1 - c0))
    stacked = resample(np.stack([masks[name] for name in CHANNELS]), crop, footprint)
    best = stacked.argmax(axis=0)
    for channel, name in enumerate(CHANNELS):
        keep = largest_component(np.where(best == channel, stacked[channel], 0.0)) >= 0.5
        labels[r0:r1, c0:c1][keep] = LABEL_OF[name]
    return labels


def _box(crop: PlaneGrid, native: PlaneGrid) -> tuple[int, int, int, int]:
    """The crop's extent on the native grid: row0, column0, row1, column1 (pixel indices, inclusive-exclusive)."""
    row_min, row_max, column_min, column_max = crop.extent_on(native)
    return (floor_pixels(row_min + 0.5), floor_pixels(column_min + 0.5),
            ceil_pixels(row_max + 0.5), ceil_pixels(column_max + 0.5))


def network_dtype(precision: str = "auto", device: str = "cpu"):
    """The torch dtype the networks compute in. "auto": bfloat16 on a CPU with native bfloat16 arithmetic (AVX512-BF16
    or AMX), where the networks take about half their float32 time and measure as float32 does to within chance
    (benchmarks/EVALUATION.md, *Precision*); float32 elsewhere (emulated bfloat16 is slow)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: absent from some torch builds
        native = device == "cpu" and any(getattr(torch.cpu, check, lambda: False)() for check in checks)
        precision = "bfloat16" if native else "float32"
    return getattr(torch, precision)


def checked_device(device: str) -> str:
    """The torch device, if this PyTorch can compute on it on this computer; else a ValueError that says so (torch's
    own errors, "Torch not compiled with CUDA enabled", do not say what to choose)."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or mps") from error
    usable = {"cpu": lambda: True, "cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if not usable.get(kind, lambda: False)():
        raise ValueError(f"PyTorch cannot compute on {device!r} on this computer (no such GPU, or a PyTorch built "
                         "without it): use cpu")
    return device


def load_segmenter(device: str = "cpu", folder: Path | None = None, threads: int | None = None,
                   precision: str = "auto", mirror_average: tuple[str, ...] = SHIPPED_MIRROR_AVERAGE
                   ) -> NetworkSegmenter:
    """The shipped networks (or those of another models folder), sha256-verified, computing in the dtype that
    network_dtype gives for precision (mirror_average: see NetworkSegmenter)."""
    import torch

    from .models import load_network, read_manifest, models_folder

    checked_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    folder = folder or models_folder()
    manifest = read_manifest(folder)
    models, entries = {}, {}
    for name in ("roi", "roi_second", "canal"):
        if name == "roi_second" and name not in manifest["models"]:
            continue  # a models folder from before 1.7.0: network 1 alone
        models[name], entries[name] = load_network(name, folder, device)
    dtype = network_dtype(precision, device)
    models = {name: model.to(dtype) for name, model in models.items()}
    provenance = {"models": {name: {k: entry[k] for k in ("version", "sha256")} for name, entry in entries.items()},
                  "models_release": manifest.get("release", ""), "device": device,
                  "precision": str(dtype).removeprefix("torch."), "mirror_average": list(mirror_average)}
    return NetworkSegmenter(models["roi"], models["canal"], device, provenance,
                            second_roi_model=models.get("roi_second"), dtype=dtype, mirror_average=mirror_average)
