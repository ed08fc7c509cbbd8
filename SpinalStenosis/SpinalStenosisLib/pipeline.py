"""Measure a volume from given masks or from the networks, and write the run's outputs."""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from .body_region import ShownRegion, region_shown
from .centreline import PART_OF_SAC, CanalSighting, on_line, second_looks, thick_slice_warnings
from .crop import COARSEST_PIXEL_MM
from .geometry import AxialLayout, FieldOfView, PlaneGrid
from .grading import grading_region, level_warnings
from .level_names import NamedImage, levels_of_images
from .measurement import STRUCTURES, SliceMeasurement, foramina_swapped, masks_from_labels, measure_slice
from .number_text import number_text, sides_text
from .outputs import (SERIES_FILE, block_folder, check_output_folder, staged_output, write_csv, write_json,
                      write_levels_csv, write_rulers, write_series_csv, write_series_json)
from .report import StackView, write_report, write_series_report
from .visibility import (blank_slice_warnings, checked_pixels, clipped_image_warnings, field_of_view,
                         intensity_floor, is_blank, networks_view, not_an_mr_image, offset_warnings, two_level_share,
                         two_level_warnings)
from .volume_io import AxialVolume, InputError, open_axial_blocks, openable, read_labels, write_labels

ProgressCallback = Callable[[int, int], None]
BATCH_SLICES = 8  # slices per network batch; progress and cancel act between batches
MAX_LOOKS = 3  # second looks per slice
LOOK_MOVED_MM = 2.0  # a few network-2 crop pixels
WHOLE_SAC_GROWTH = 1 / PART_OF_SAC  # the whole sac found again is at least this much larger than a part of it
FINEST_MR_PIXEL_MM = 0.1  # finer pixels are not an MR's of the spine: a header in other units (fine_pixel_warnings)
NARROWEST_VIEW_MM = 10.0  # no spinal canal fits a narrower field of view: a header in other units, or no spine
# no dural sac is larger over a stack's median slice (152 ± 54 mm² at L4-L5; the real validation volumes' medians are
# 161-289 mm², evaluate_real.py): pixels larger than the header says (oversized_canal_warnings)
LARGEST_MEDIAN_SAC_MM2 = 400.0


class Cancelled(RuntimeError):
    """The caller asked to stop."""


@dataclass
class SliceSegmentation:
    """Soft masks of one slice on some plane grid (the native slice or an upsampled crop of it)."""

    masks: dict[str, np.ndarray]
    grid: PlaneGrid
    native_labels: np.ndarray  # uint8 labels on the slice's native grid
    roi_box_rc: tuple[int, int, int, int] | None = None  # row0, col0, row1, col1 on the native grid
    canal_edge_to_noise: float = float("nan")  # visibility.canal_edge_to_noise of the canal (the networks' only)
    canal_off_axis_mm: float = float("nan")  # symmetry.canal_off_axis_mm of the canal (the networks' only)

    @classmethod
    def empty(cls, grid: PlaneGrid) -> "SliceSegmentation":
        """No canal and no foramen on the native slice grid."""
        empty = {name: np.zeros(grid.shape, np.float32) for name in STRUCTURES}
        return cls(empty, grid, np.zeros(grid.shape, np.uint8))


class Segmenter(Protocol):
    """Anything that turns a batch of axial slices (rows A→P, columns R→L) into SliceSegmentations. It may also
    have ``look_again(images, grids, expected: list[CanalSighting]) -> list[SliceSegmentation]``: segment each
    slice where its neighbours put the canal (see :mod:`centreline`); and ``averages_contrasts = True``: it takes a
    slice as several contrasts too, [contrast, rows, columns] (a colour composite's channels, surest_channel_steps)."""

    def segment(self, images: list[np.ndarray], grids: list[PlaneGrid]) -> list[SliceSegmentation]: ...


@dataclass
class MeasurementRun:
    volume: AxialVolume
    measurements: list[SliceMeasurement]
    stack_labels: np.ndarray  # uint8 [slice, row, column]
    roi_boxes: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    colour_channel: str | None = None  # the colour composite's channel measured (surest_channel_steps)
    graded_region: str | None = None  # the region whose cut-offs graded the outputs measure_file wrote

    @cached_property
    def shown_region(self) -> ShownRegion | None:
        """The region the run's image shows around its canals (region_shown_by), looked for once; measure_file sets
        that of a DICOM series' blocks together."""
        return region_shown_by([self])

    @property
    def warnings(self) -> list[str]:
        return input_warnings(self.volume, self.stack_labels)

    def warnings_graded_as(self, region: str) -> list[str]:
        """The warnings, and what the levels named on the slices warn of, graded as region (grading.level_warnings):
        what the outputs say."""
        return self.warnings + level_warnings((m.level for m in self.measurements), region)

    def region_of_interest_ras(self, slice_index: int) -> np.ndarray | None:
        """The corners ([4, 3], RAS, around the pixels' edges) of the region of interest the slice was measured in
        (network 2's crop, as a box on the slice), or None (no box: masks given, or nothing found)."""
        if slice_index not in self.roi_boxes:
            return None
        r0, c0, r1, c1 = self.roi_boxes[slice_index]
        return self.volume.layout.slice_grid(slice_index).to_ras(np.array([r0, r0, r1, r1]) - 0.5,
                                                                 np.array([c0, c1, c1, c0]) - 0.5)


def input_warnings(volume: AxialVolume, stack_labels: np.ndarray) -> list[str]:
    """What the user must know about an input measured into stack_labels ([slice, row, column]): how it was read
    (AxialVolume.warnings), whether its pixels are coarser than the networks learnt from (coarse_pixel_warnings)
    or finer than any MR's of the spine (fine_pixel_warnings), whether its canal is larger than any dural sac
    (oversized_canal_warnings), its slices thick against the spine's tilt (centreline.thick_slice_warnings), whether
    it is clipped at its bright end (visibility.clipped_image_warnings), and whether masks name the foramina by the
    image's sides."""
    canal_stack = stack_labels == 1
    return (volume.warnings + coarse_pixel_warnings(volume.layout) + fine_pixel_warnings(volume.layout)
            + oversized_canal_warnings(canal_stack, volume.layout)
            + thick_slice_warnings(canal_stack, volume.layout, volume.slice_thickness_mm)
            + clipped_image_warnings(volume.read_slice, canal_stack) + swapped_foramina_warnings(stack_labels, volume))


def swapped_foramina_warnings(stack_labels: np.ndarray, volume: AxialVolume) -> list[str]:
    """A warning where the left foramen lies on the patient's right of the right one (measurement.foramina_swapped):
    masks drawn by the image's sides. [] otherwise."""
    both, swapped = foramina_swapped(stack_labels, volume.layout)
    if not swapped:
        return []
    return [f"the left foramen lies on the patient's right of the right foramen on {swapped} of the {both} slices "
            "with both (masks named by the image's sides?): each width is reported under the side its mask is named"]


def coarse_pixel_warnings(layout: AxialLayout) -> list[str]:
    """A warning when the slices' pixels are coarser than any the networks learnt from (synthetic slices of at most
    COARSEST_PIXEL_MM): a canal then spans a few pixels, and on the one such real image here (3 mm pixels) each canal
    the networks found lay on another structure. [] otherwise."""
    pixel_mm = layout.slice_grid(0).pixel_size_mm
    if max(pixel_mm) <= COARSEST_PIXEL_MM:
        return []
    pixel_text = sides_text(pixel_mm, (COARSEST_PIXEL_MM,), operator.gt)
    return [f"pixels of {pixel_text} mm, coarser than any the networks learnt from (up to {COARSEST_PIXEL_MM:.3g} mm): "
            "a canal spans a few pixels, so check that each canal outline lies on the spinal canal"]


def fine_pixel_warnings(layout: AxialLayout) -> list[str]:
    """A warning when the slices' pixels are finer than any MR of the spine has (FINEST_MR_PIXEL_MM; a scan
    interpolated to a 1024 matrix over 140 mm has 0.14 mm pixels): a header whose pixel size is in other units than
    mm (cm, m), which every length and area measured would follow. [] otherwise."""
    grid = layout.slice_grid(0)
    if min(grid.pixel_size_mm) >= FINEST_MR_PIXEL_MM:
        return []
    pixel_text = sides_text(grid.pixel_size_mm, (FINEST_MR_PIXEL_MM,), style="g")
    field_text = sides_text(_field_mm(grid), style="g")
    return [f"pixels of {pixel_text} mm, finer than any MR of the spine has ({FINEST_MR_PIXEL_MM:g} mm or more), and a "
            f"field of view of {field_text} mm: is the header's pixel size in other units than mm "
            "(cm, m)? Every length and area measured follows it"]


def oversized_canal_warnings(canal_stack: np.ndarray, layout: AxialLayout) -> list[str]:
    """A warning when the canal's area on the median slice of those holding one is larger than any dural sac's
    (LARGEST_MEDIAN_SAC_MM2): pixels larger than the header says, as where a converter wrote 1 mm for a scan it lost
    the pixel size of (every length and area measured follows it), or outlines on another structure. [] otherwise."""
    median_mm2 = median_canal_area_mm2(canal_stack, layout)
    if not median_mm2 > LARGEST_MEDIAN_SAC_MM2:
        return []
    pixel_mm = layout.slice_grid(0).pixel_size_mm
    area_text = number_text(median_mm2, 0, bounds=(LARGEST_MEDIAN_SAC_MM2,), side=operator.gt)
    return [f"the canal's area is {area_text} mm² on the median slice, more than any dural sac's (at most about "
            f"{LARGEST_MEDIAN_SAC_MM2:.0f} mm²): are the pixels {sides_text(pixel_mm)} mm, as the header says? "
            "A converter may write 1 mm for a scan whose pixel size it lost, and every length and area measured "
            "follows it; else check that each canal outline lies on the spinal canal"]


def median_canal_area_mm2(canal_stack: np.ndarray, layout: AxialLayout) -> float:
    """The canal's area (its mask's pixels) on the median slice of those that hold one; NaN where none does."""
    areas_mm2 = canal_stack.sum(axis=(1, 2), dtype=np.int64) * float(np.prod(layout.slice_grid(0).pixel_size_mm))
    return float(np.median(areas_mm2[areas_mm2 > 0])) if areas_mm2.any() else math.nan


def _field_mm(grid: PlaneGrid) -> tuple[float, float]:
    """A slice's field of view: its two sides (mm)."""
    return tuple(count * size for count, size in zip(grid.shape, grid.pixel_size_mm))


SliceSegmenter = Callable[[list[int]], list[SliceSegmentation]]
SecondLook = Callable[[list[int], list[CanalSighting]], list[SliceSegmentation]]


def slice_field_of_view(volume: AxialVolume, slice_index: int) -> FieldOfView:
    """What a slice of the volume shows: its grid, less its padding."""
    return field_of_view(volume.read_slice(slice_index), volume.layout.slice_grid(slice_index))


def measurement_steps(volume: AxialVolume, segment_slices: SliceSegmenter, look_again: SecondLook | None = None
                      ) -> Iterator[tuple[int, int]]:
    """Segment and measure batch by batch, yielding (slices done, total); the MeasurementRun is the generator's
    return value. A GUI can drive it from a timer and stop whenever the user cancels. With look_again, slices whose
    canal is missing, off the line of its neighbours or under PART_OF_SAC of their size (see :mod:`centreline`) are
    segmented again where the neighbours put it, round after round as the line grows and moves. The new result
    replaces the old one if its canal is on that line (and, where the old canal was on it too, the new one is at
    least WHOLE_SAC_GROWTH times as large and network 2 is surer of it: the whole sac where the old find was a part
    of it, while a narrowed sac, found again a little larger, stays as it was); otherwise a canal found off the line
    is dropped (it lies on a kidney, bowel, muscle or skin, not on the spine)."""
    n_slices = volume.n_slices
    run = MeasurementRun(volume, [None] * n_slices, np.zeros(volume.layout.stack_shape, np.uint8))
    positions = [volume.layout.slice_position_mm(s) for s in range(n_slices)]
    sightings: list[CanalSighting | None] = [None] * n_slices

    def store(s: int, result: SliceSegmentation) -> None:
        run.stack_labels[s] = result.native_labels
        run.roi_boxes.pop(s, None)
        if result.roi_box_rc is not None:
            run.roi_boxes[s] = result.roi_box_rc
        run.measurements[s] = measure_slice(result.masks, result.grid, s, positions[s], result.canal_edge_to_noise,
                                            slice_field_of_view(volume, s), result.canal_off_axis_mm,
                                            volume.image_number(s))

    for indices in _batches(range(n_slices)):
        for s, result in zip(indices, segment_slices(indices)):
            store(s, result)
            if look_again is not None:
                sightings[s] = _sighting(result)
        yield indices[-1] + 1, n_slices
    if look_again is None:
        return run
    looked_from: dict[int, list[CanalSighting]] = {}  # the expectations each slice was looked at again with
    while expected := {s: where for s, where in second_looks(sightings, positions).items()
                       if _worth_another_look(looked_from.get(s, []), where)}:
        for s, where in expected.items():
            looked_from.setdefault(s, []).append(where)
        for indices in _batches(sorted(expected)):
            for s, result in zip(indices, look_again(indices, [expected[s] for s in indices])):
                sighting, before = _sighting(result), sightings[s]
                if _replaces(sighting, before, expected[s]):
                    store(s, result)
                    sightings[s] = sighting
                elif before is not None and not on_line(before, expected[s]):  # first find off the line, none on it
                    store(s, SliceSegmentation.empty(volume.layout.slice_grid(s)))
                    sightings[s] = None
            yield n_slices, n_slices
    return run


def _replaces(sighting: CanalSighting | None, before: CanalSighting | None, expected: CanalSighting) -> bool:
    """Whether a second look's canal replaces the slice's first: it is on the line, and the first was not, or was
    looked at again for its size and the new one is the whole sac (WHOLE_SAC_GROWTH times as large, and surer)."""
    if sighting is None or not on_line(sighting, expected):
        return False
    return before is None or not on_line(before, expected) or (
        sighting.area_mm2 >= WHOLE_SAC_GROWTH * before.area_mm2 and sighting.confidence > before.confidence)


def _worth_another_look(looked_from: list[CanalSighting], expected: CanalSighting) -> bool:
    """At most MAX_LOOKS looks at a slice, each where it has not been looked at yet (at least LOOK_MOVED_MM from
    every earlier look): the line grows round after round, reaches farther slices, and moves where the canal of a
    slice looked at in an earlier round is expected."""
    return len(looked_from) < MAX_LOOKS and all(
        np.linalg.norm(where.centre_ras - expected.centre_ras) > LOOK_MOVED_MM for where in looked_from)


def _sighting(result: SliceSegmentation) -> CanalSighting | None:
    return CanalSighting.of(result.masks.get("canal", np.zeros(result.grid.shape)), result.grid)


def _batches(indices) -> Iterator[list[int]]:
    indices = list(indices)
    for first in range(0, len(indices), BATCH_SLICES):
        yield indices[first:first + BATCH_SLICES]


def run_steps(steps: Iterator[tuple[int, int]], progress: ProgressCallback | None = None,
              should_cancel: Callable[[], bool] | None = None) -> MeasurementRun:
    """Drive a measurement's steps (e.g. segmenter_steps) to the end, reporting progress; the finished run."""
    while True:
        if should_cancel is not None and should_cancel():
            raise Cancelled("cancelled")
        try:
            done, total = next(steps)
        except StopIteration as finished:
            return finished.value
        if progress is not None:
            progress(done, total)


def measure_with_labels(volume: AxialVolume, labels_source: np.ndarray,
                        progress: ProgressCallback | None = None) -> MeasurementRun:
    """Measure from a label array on the input's grid ([k, j, i]; 1 canal, 2 left, 3 right foramen)."""
    stack = volume.from_source_grid(labels_source)

    def segment_slices(indices: list[int]) -> list[SliceSegmentation]:
        return [SliceSegmentation(masks_from_labels(stack[s]), volume.layout.slice_grid(s), np.asarray(stack[s]))
                for s in indices]

    return run_steps(measurement_steps(volume, segment_slices), progress)


def segmenter_steps(volume: AxialVolume, segmenter: Segmenter, companions: Sequence[AxialVolume] = ()
                    ) -> Iterator[tuple[int, int]]:
    """:func:`measurement_steps` with a segmenter (and its second look, if it has one); the run carries the
    segmenter's provenance. The networks see an image with many pixels below 0, or whose darkest level is far above
    0, from that level up (visibility.intensity_floor), and the run says so, and without its spikes
    (visibility.networks_view); it also warns of an image that may be a mask or a probability map
    (visibility.two_level_warnings). A colour composite is measured on each of its channels
    (surest_channel_steps). With companions (other contrasts of the volume on its grid, for a segmenter that
    averages_contrasts), each slice is given as the volume's followed by theirs, each seen so."""
    if volume.colour_channels:
        return (yield from surest_channel_steps(volume, segmenter))
    pixels = checked_pixels(volume.read_slice, volume.n_slices)
    negative_share, floor = intensity_floor(pixels)
    image_warnings = offset_warnings(negative_share, floor) + two_level_warnings(two_level_share(pixels, floor))
    companion_floors = [intensity_floor(checked_pixels(other.read_slice, other.n_slices))[1] for other in companions]
    blank_slices: set[int] = set()

    def networks_slice(s: int) -> np.ndarray:
        image = networks_view(volume.read_slice(s), floor)
        if not companions:
            return image
        return np.stack([image, *(networks_view(other.read_slice(s), other_floor)
                                  for other, other_floor in zip(companions, companion_floors))])

    def segmented(indices: list[int], segment: Callable[..., list[SliceSegmentation]], *more: list
                  ) -> list[SliceSegmentation]:
        """segment's results for the slices as the networks see them, their grids (and each list in more, by
        slice) where a slice shows something; nothing on a blank one (visibility.is_blank), which is noted."""
        images = [networks_slice(s) for s in indices]
        grids = [volume.layout.slice_grid(s) for s in indices]
        shown = [n for n, image in enumerate(images) if not is_blank(image[0] if companions else image)]
        blank_slices.update(s for n, s in enumerate(indices) if n not in shown)
        found = dict(zip(shown, segment(*([items[n] for n in shown] for items in (images, grids, *more)))
                         if shown else []))
        return [found[n] if n in found else SliceSegmentation.empty(grid) for n, grid in enumerate(grids)]

    def segment_slices(indices: list[int]) -> list[SliceSegmentation]:
        return segmented(indices, segmenter.segment)

    def look_again(indices: list[int], expected: list[CanalSighting]) -> list[SliceSegmentation]:
        return segmented(indices, segmenter.look_again, expected)

    run = yield from measurement_steps(volume, segment_slices,
                                       look_again if hasattr(segmenter, "look_again") else None)
    run.provenance = dict(getattr(segmenter, "provenance", {}))
    image_warnings += blank_slice_warnings(sorted(blank_slices))
    if image_warnings:
        run.volume = replace(volume, warnings=volume.warnings + image_warnings)
    return run


def surest_channel_steps(volume: AxialVolume, segmenter: Segmenter) -> Iterator[tuple[int, int]]:
    """segmenter_steps on each of a colour composite's channels (volume.colour_channels): the run kept is the one on
    the channel network 2 is surest of the canal on (canal_certainty), with a warning that names it. The mean of
    the colours mixes the contrasts (CSF bright in one, dark in another) into an image like none the networks learnt
    from. A segmenter that averages_contrasts then measures that channel again, network 2's probabilities averaged
    over all the channels (NetworkSegmenter): each contrast may show edges another hides."""
    channels, runs = volume.colour_channels, {}
    averaged = getattr(segmenter, "averages_contrasts", False)
    total = volume.n_slices * (len(channels) + averaged)
    for name, channel in channels.items():
        runs[name] = yield from _offset(segmenter_steps(channel, segmenter), volume.n_slices * len(runs), total)
    certainty = {name: canal_certainty(run) for name, run in runs.items()}
    surest = max(certainty, key=certainty.get)
    others = ", ".join(f"{name} {value:.2f}" for name, value in certainty.items() if name != surest)
    why = (f"where network 2 is surest of the canal (confidence {certainty[surest]:.2f}; {others})"
           if certainty[surest] > 0 else "the first; network 2 finds no canal on any")
    run = runs[surest]
    if averaged:
        companions = [channel for name, channel in channels.items() if name != surest]
        run = yield from _offset(segmenter_steps(channels[surest], segmenter, companions),
                                 volume.n_slices * len(channels), total)
        *firsts, last = channels
        why += f", network 2's outlines averaged over its {', '.join(firsts)} and {last} channels"
    run.volume = channel_volume(volume, surest, [*volume.warnings, (
        f"a colour image whose channels are different images (a composite of contrasts?): measured on its {surest} "
        f"channel, {why}, not on the mean of its colours")])
    run.colour_channel = surest
    return run


def _offset(steps: Iterator[tuple[int, int]], before: int, total: int) -> Iterator[tuple[int, int]]:
    """A measurement's steps counted after `before` others, of `total`; its run."""
    while True:
        try:
            done, _ = next(steps)
        except StopIteration as finished:
            return finished.value
        yield before + done, total


def channel_volume(volume: AxialVolume, channel: str, warnings: list[str]) -> AxialVolume:
    """A colour composite's channel as the volume measured: a copy, with what the input's header said (region,
    slice thickness), why its series is in blocks, and these warnings (so that measuring the input again says them
    once)."""
    return replace(volume.colour_channels[channel], named_region=volume.named_region,
                   slice_thickness_mm=volume.slice_thickness_mm, blocks_reason=volume.blocks_reason,
                   warnings=list(warnings))


def canal_certainty(run: MeasurementRun) -> float:
    """Network 2's confidence in the canal averaged over the run's slices, a slice without a canal counting 0."""
    return float(np.mean([np.nan_to_num(m.confidences["canal_confidence"]) for m in run.measurements]))


def checked_mr_image(volume: AxialVolume, source: str) -> AxialVolume:
    """An input volume given to the networks, if it may be an MR image; an InputError naming the source (a file, a
    volume) and why it is not one: a label image or a CT (visibility.not_an_mr_image), or a field of view narrower
    than any canal (NARROWEST_VIEW_MM), on which the networks would still outline a plausible canal."""
    not_mr = not_an_mr_image(volume.read_slice, volume.n_slices)
    if not_mr:
        raise InputError(f"{source}: {not_mr}, not an MR image; the networks measure MR: give the MR image itself")
    grid = volume.layout.slice_grid(0)
    if min(_field_mm(grid)) < NARROWEST_VIEW_MM:
        field_text = sides_text(_field_mm(grid), (NARROWEST_VIEW_MM,), style="g")
        raise InputError(f"{source}: a field of view of {field_text} mm, narrower than any spinal canal "
                         f"({NARROWEST_VIEW_MM:g} mm or more across), in which the networks would still outline one: "
                         "is the pixel size given in other units than mm (cm, m), or is the image a crop of "
                         "something else?")
    return volume


def measure_with_segmenter(volume: AxialVolume, segmenter: Segmenter, progress: ProgressCallback | None = None,
                           should_cancel: Callable[[], bool] | None = None,
                           companions: Sequence[AxialVolume] = ()) -> MeasurementRun:
    """Segment each slice with ``segmenter`` and measure it (blocking); companions: see segmenter_steps."""
    return run_steps(segmenter_steps(volume, segmenter, companions), progress, should_cancel)


def write_outputs(runs: list[MeasurementRun], out_dir: Path, input_path: Path, region: str, overwrite: bool) -> Path:
    """Write segmentation, CSV, JSON, rulers and report into out_dir (one run) or into its block folders (the runs of
    a DICOM series' blocks, with the whole series' worst findings in SERIES_FILE and its report beside them),
    atomically."""
    check_output_folder(out_dir, input_path, overwrite)
    with staged_output(out_dir) as staging:
        for k, run in enumerate(runs, 1):
            folder = staging / block_folder(k) if len(runs) > 1 else staging
            folder.mkdir(exist_ok=True)
            block = {"block": k, "blocks": len(runs)} if len(runs) > 1 else {}
            _write_run(run, folder, input_path, region, block)
        if len(runs) > 1:
            views = {block_folder(k): _stack_view(run) for k, run in enumerate(runs, 1)}
            by_block = {name: view.measurements for name, view in views.items()}
            write_series_csv(staging / "measurements.csv", by_block, region)
            write_series_json(staging / SERIES_FILE, by_block, region, {"input": str(Path(input_path).name)})
            write_series_report(staging / "report.png", views, region, f"Spinal stenosis: {Path(input_path).name}, "
                                f"{len(runs)} blocks ({region})", list(dict.fromkeys(
                                    warning for run in runs for warning in run.warnings_graded_as(region))))
    return Path(out_dir)


def _stack_view(run: MeasurementRun) -> StackView:
    return StackView(run.measurements, run.volume.read_slice, lambda s: run.stack_labels[s],
                     run.volume.layout.slice_grid)


def _write_run(run: MeasurementRun, folder: Path, input_path: Path, region: str, block: dict) -> None:
    volume, warnings = run.volume, run.warnings_graded_as(region)
    title = Path(input_path).name + (f" block {block['block']} of {block['blocks']}" if block else "")
    write_labels(folder / "segmentation.nii.gz", volume.to_source_grid(run.stack_labels), volume.source_geometry)
    write_csv(folder / "measurements.csv", run.measurements, region)
    write_levels_csv(folder / "levels.csv", run.measurements, region)
    write_json(folder / "measurements.json", run.measurements, region,
               {"input": str(Path(input_path).name), **block, "input_warnings": warnings, **run.provenance},
               {m.slice_index: run.region_of_interest_ras(m.slice_index) for m in run.measurements})
    write_rulers(folder / "rulers.mrk.json", run.measurements)
    write_report(folder / "report.png", *_stack_view(run), region, f"Spinal stenosis: {title} ({region})", warnings)


def _block_labels(volumes: list[AxialVolume], labels_path: Path, pixel_mm: float | None) -> list[np.ndarray]:
    """The label arrays of --masks: one file on the input's grid, or for a series in blocks the output folder
    of an earlier run (its block folders' segmentations, e.g. corrected by hand)."""
    if len(volumes) == 1:
        return [read_labels(labels_path, volumes[0].source_geometry, pixel_mm)]
    if not labels_path.is_dir():
        raise InputError(f"{labels_path}: the DICOM series is in {len(volumes)} blocks, each measured on its "
                         f"own grid; --masks takes the output folder of an earlier run (its {block_folder(1)} ... "
                         f"{block_folder(len(volumes))}/segmentation.nii.gz)")
    return [read_labels(labels_path / block_folder(k) / "segmentation.nii.gz", volume.source_geometry)
            for k, volume in enumerate(volumes, 1)]


def _other_contrast_blocks(path: Path, volumes: list[AxialVolume], pixel_mm: float | None
                          ) -> list[tuple[AxialVolume]]:
    """Another contrast of the input's slices (measure_file's other_contrast), block by block, each on its block's
    voxels; an InputError where it is not on them (another series of slices, or another field of view), or where
    either image is in colour."""
    others = open_axial_blocks(path, pixel_mm)
    if any(volume.colour_channels for volume in [*volumes, *others]):
        raise InputError(f"{path.name}: another contrast is for a grey image, given as a grey image (a colour "
                         "composite's channels are averaged over already)")
    if len(others) != len(volumes) or not all(other.layout.geometry.matches(volume.layout.geometry)
                                              for other, volume in zip(others, volumes)):
        raise InputError(f"{path.name}: another contrast must lie on the input's voxels (the same slice positions, "
                         "pixel grid and orientation), as a second sequence planned on the same slices does; this "
                         "one does not (resample it onto the input's grid first)")
    return [(checked_mr_image(other, str(path)),) for other in others]


def _within(progress: ProgressCallback | None, before: int, size: int, total: int) -> ProgressCallback | None:
    """progress through one block of size slices as progress through all the blocks' total slices (the before slices
    are done): its steps' share, whatever their count (a colour composite takes a pass a channel, and one more)."""
    return None if progress is None else lambda done, steps: progress(before + done * size // steps, total)


def _named_levels(levels: Mapping[int | str | NamedImage, str], volumes: list[AxialVolume]
                  ) -> list[dict[int, str]]:
    """Levels by slice index for each stack, from levels that name slices of one stack (by slice index), the
    blocks of a DICOM series (by block folder name, "block-2": all its slices) or a DICOM series' images (by the
    number a viewer shows, level_names.levels_of_images)."""
    try:
        by_image = levels_of_images(levels, [volume.image_numbers for volume in volumes])
    except ValueError as error:
        raise InputError(str(error)) from None
    if by_image is not None:
        return by_image
    blocks = {block_folder(k): volume for k, volume in enumerate(volumes, 1)}
    by_slice = {s: level for s, level in levels.items() if isinstance(s, int)}
    by_block = {name: level for name, level in levels.items() if isinstance(name, str)}
    if len(volumes) > 1 and by_slice:
        raise InputError(f"the DICOM series is in {len(volumes)} blocks, each a stack of its own: levels name "
                         f"whole blocks (e.g. {block_folder(1)}=L4-L5), not the slices of one stack")
    if len(volumes) == 1 and by_block:
        raise InputError(f"levels name {', '.join(by_block)}, but the input is one stack, not a DICOM series in "
                         "blocks: name its slices (e.g. 3-5=L4-L5)")
    unknown = [name for name in by_block if name not in blocks]
    if unknown:
        raise InputError(f"levels name {', '.join(unknown)}, but the DICOM series' blocks are {', '.join(blocks)}")
    outside = sorted(s for s in by_slice if not 0 <= s < volumes[0].n_slices)
    if outside:
        raise InputError(f"levels name slice {', '.join(map(str, outside))}, but the stack's slices are 0 to "
                         f"{volumes[0].n_slices - 1}")
    if len(volumes) == 1:
        return [by_slice]
    return [dict.fromkeys(range(volume.n_slices), by_block[name]) if name in by_block else {}
            for name, volume in blocks.items()]


def region_shown_by(runs: list[MeasurementRun]) -> ShownRegion | None:
    """The region the runs' images show around their canals (the blocks of one input; see
    :func:`body_region.region_shown`)."""
    with_canal = [(run, s) for run in runs for s in np.flatnonzero((run.stack_labels == 1).any(axis=(1, 2)))]
    return region_shown(((run.volume.read_slice(s), run.stack_labels[s] == 1, run.volume.layout.slice_grid(s))
                         for run, s in with_canal), len(with_canal))


def measure_file(input_path: Path | str, out_dir: Path | str, labels_path: Path | str | None = None,
                 segmenter: Segmenter | None = None, region: str | None = None, overwrite: bool = False,
                 progress: ProgressCallback | None = None, pixel_mm: float | None = None,
                 levels: Mapping[int | str | NamedImage, str] | None = None, series: str | None = None,
                 image_set: str | None = None, other_contrast: Path | str | None = None) -> list[MeasurementRun]:
    """The ``spinal-stenosis measure`` job: open, segment (or read labels), measure, write. One run, written into
    out_dir; a DICOM series in blocks gives a run per block (see :func:`open_axial_blocks`), written into
    out_dir's block folders. pixel_mm: a 2-D input's pixel size (see :func:`displayed_slice`). region: the cut-offs
    that grade the canal; None: the region a DICOM series' header names, else the one the image shows (a whole neck,
    or the cord in the sac: cervical; see :mod:`body_region`, and MeasurementRun.shown_region), else lumbar (each
    run's graded_region says which). levels: the vertebral level of slices of a single stack by slice index (e.g.
    {4: "L4-L5"}), or of the blocks of a DICOM series by block folder name (e.g. {"block-2": "L4-L5"}), carried into
    every output. series: which series of a DICOM folder to measure (its number, or a word of its description; by
    default the T2-weighted axial one). image_set: which of the images a DICOM series holds at each slice position
    (two echoes, a Dixon sequence's images) to measure, by the value that tells them apart (e.g. "20", an Echo
    Time); by default the preferred. other_contrast: another contrast of the same slices on the input's voxels
    (e.g. the axial T1 acquired at the T2's positions), over which network 2's probabilities are averaged
    (_other_contrast_blocks)."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    openable(input_path)  # before the output folder, which a name of several inputs' is made from
    check_output_folder(out_dir, input_path, overwrite)
    if labels_path is None and segmenter is None:
        raise ValueError("either labels_path or segmenter is needed")
    volumes = open_axial_blocks(input_path, pixel_mm, series, image_set)
    companions = [()] * len(volumes)
    if other_contrast is not None:
        if labels_path is not None or not getattr(segmenter, "averages_contrasts", False):
            raise ValueError("another contrast is for the networks, whose outlines it averages; not for given masks")
        companions = _other_contrast_blocks(Path(other_contrast), volumes, pixel_mm)
    named_levels = _named_levels(levels or {}, volumes)
    labels = _block_labels(volumes, Path(labels_path), pixel_mm) if labels_path is not None else [None] * len(volumes)
    total, runs = sum(v.n_slices for v in volumes), []
    for volume, block_labels, others in zip(volumes, labels, companions):
        block_progress = _within(progress, sum(run.volume.n_slices for run in runs), volume.n_slices, total)
        runs.append(measure_with_labels(volume, block_labels, block_progress) if block_labels is not None
                    else measure_with_segmenter(checked_mr_image(volume, str(input_path)), segmenter, block_progress,
                                                companions=others))
    if other_contrast is not None:
        for run in runs:
            run.volume = replace(run.volume, warnings=[*run.volume.warnings, (
                f"network 2's outlines were averaged over the image and {Path(other_contrast).name}, another "
                "contrast of the same slices")])
    for run, named in zip(runs, named_levels):
        for slice_index, level in named.items():
            run.measurements[slice_index].level = level
    shown = None
    if region is None and volumes[0].named_region is None:  # only then does the image's region grade it
        if len(runs) > 1:  # the blocks of one series show one region
            joint = region_shown_by(runs)
            for run in runs:
                run.shown_region = joint
        shown = runs[0].shown_region
    graded = grading_region(region, volumes[0].named_region, shown)
    for run in runs:
        run.graded_region = graded
    write_outputs(runs, out_dir, input_path, graded, overwrite)
    return runs
