"""The canal is a tube: a slice whose canal is missing, lies off the line its neighbours draw, or is a fragment of the
size of theirs, is looked at again where its neighbours put the canal (the stack-level prior SCT gets from a
centreline); and where the tube is tilted against thick slices, each slice blurs it front to back."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .crop import field_of_view_side_mm
from .geometry import AxialLayout, PlaneGrid
from .measurement import kept_confidence, largest_component

NEIGHBOUR_WINDOW_MM = 40.0  # slices this close along the stack say where a slice's canal should be
MIN_NEIGHBOURS = 2
OFF_LINE_MM = 8.0  # about half a canal's width or depth: a canal centre farther off the line is on something else
AP_DRIFT_PER_MM = 0.5  # the canal runs up to about 27° from the stack's axis (lordosis): its AP drift along the line
# a canal under this share of the sac's area is a part of it (as evaluate_synthetic counts gross failures), so one
# under this share of its neighbours' median area may be a part of the sac
PART_OF_SAC = 0.7
TILT_WINDOW_MM = 20.0  # the canal's tilt at a slice is fitted to the canal centres this close along the stack
# a median blur this long is worth a warning: on synthetic slices blurred over 1.5 mm, canal AP is within 1 mm on 62 %
# against 71 % unblurred (benchmarks/evaluate_synthetic.py --count 300 --smear-mm 1.5); untilted synthetic stacks
# measure at most 0.43 mm (--count 0 --stacks 100, and with --stack-region cervical), the real 7.7-9 mm abdominal
# series 0.4-2.3 mm, the real 3-4 mm series 0.5-1.0 mm (benchmarks/canal_tilt.py)
BLURRED_OVER_MM = 1.5


@dataclass(frozen=True)
class CanalSighting:
    """Where a slice's canal is (centroid, RAS), the side of the network-2 crop it was found in, the canal's area
    and network 2's confidence in it (measurement.kept_confidence)."""

    centre_ras: np.ndarray
    crop_side_mm: float
    area_mm2: float = math.nan
    confidence: float = 0.0

    @classmethod
    def of(cls, canal: np.ndarray, grid: PlaneGrid) -> "CanalSighting | None":
        """The sighting of a canal mask (probabilities) on a network-2 crop grid; None without a canal."""
        kept = largest_component(canal)
        region = kept >= 0.5
        if not region.any():
            return None
        return cls(grid.centroid_ras(region), field_of_view_side_mm(grid),
                   float(region.sum() * grid.pixel_area_mm2), kept_confidence(kept))


def on_line(sighting: CanalSighting, expected: CanalSighting) -> bool:
    """Within OFF_LINE_MM left-right and antero-posterior of where the canal is expected on the same slice."""
    return bool(_follows(sighting.centre_ras, expected.centre_ras, 0.0))


def _follows(centre_ras: np.ndarray, others_ras: np.ndarray, distances_along_mm) -> np.ndarray:
    """Whether a canal centre can follow each of others_ras ([..., 3]) on the line, given their distances along it
    (a longer gap would let the AP drift allowance bridge from the skin to the canal)."""
    left_right, anterior = np.moveaxis(np.abs(np.asarray(others_ras)[..., :2] - np.asarray(centre_ras)[:2]), -1, 0)
    distances_along_mm = np.abs(distances_along_mm)
    return ((distances_along_mm <= NEIGHBOUR_WINDOW_MM) & (left_right <= OFF_LINE_MM)
            & (anterior <= OFF_LINE_MM + AP_DRIFT_PER_MM * distances_along_mm))


def second_looks(sightings: list[CanalSighting | None], positions_mm: list[float]) -> dict[int, CanalSighting]:
    """Slices to look at again → where their canal should be. The line is the longest chain of sightings, in order
    along the stack (superior coordinate), each following the one before it: at most NEIGHBOUR_WINDOW_MM before it,
    within OFF_LINE_MM left-right and antero-posterior, plus the AP drift over the distance between them (so a run
    of finds on a kidney, bowel or the skin behind the spine cannot outvote the canal). A slice with at least
    MIN_NEIGHBOURS chain slices within NEIGHBOUR_WINDOW_MM is expected on the line through their centres, with their
    median crop side, when it is off the chain and off that line, or when its canal is smaller than PART_OF_SAC of
    their median area (network 2 outlined a part of the sac, or the sac is narrowed there: looking again tells them
    apart, see pipeline.measurement_steps)."""
    positions = np.asarray(positions_mm, float)
    chain = _longest_chain(sightings, positions)
    looks = {}
    for n, sighting in enumerate(sightings):
        neighbours = np.array([m for m in sorted(chain) if m != n
                               and abs(positions[m] - positions[n]) <= NEIGHBOUR_WINDOW_MM], int)
        if len(neighbours) < MIN_NEIGHBOURS:
            continue
        shrunk = sighting is not None and bool(
            sighting.area_mm2 < PART_OF_SAC * np.median([sightings[m].area_mm2 for m in neighbours]))
        if n in chain and not shrunk:
            continue
        expected = CanalSighting(_line_through([sightings[m].centre_ras for m in neighbours], positions[neighbours],
                                               positions[n]),
                                 float(np.median([sightings[m].crop_side_mm for m in neighbours])))
        if sighting is None or shrunk or not on_line(sighting, expected):
            looks[n] = expected
    return looks


def _line_through(centres_ras: list[np.ndarray], positions: np.ndarray, position: float) -> np.ndarray:
    """The canal centre at position on the least-squares line through centres (left-right and AP against the
    position along the stack), so that a slice at the end of the stack is not pulled towards its neighbours."""
    design = np.stack([np.ones(len(positions)), positions - position], axis=1)
    intercept = np.linalg.lstsq(design, np.asarray(centres_ras)[:, :2], rcond=None)[0][0]
    return np.array([intercept[0], intercept[1], position])


def _longest_chain(sightings: list[CanalSighting | None], positions: np.ndarray) -> set[int]:
    found = sorted((n for n, sighting in enumerate(sightings) if sighting is not None), key=lambda n: positions[n])
    if not found:
        return set()
    centres = np.array([sightings[n].centre_ras for n in found])
    along = positions[found]
    length, previous = np.ones(len(found), int), np.full(len(found), -1)
    for i in range(1, len(found)):
        links = np.nonzero(_follows(centres[i], centres[:i], along[:i] - along[i]))[0]
        if len(links):
            best = links[np.argmax(length[links])]
            length[i], previous[i] = length[best] + 1, best
    chain, i = set(), int(np.argmax(length))
    while i >= 0:
        chain.add(found[i])
        i = previous[i]
    return chain


def canal_anterior_mm(canal_stack: np.ndarray, layout: AxialLayout) -> np.ndarray:
    """The antero-posterior coordinate (mm, along the slices' in-plane anterior axis) of each slice's canal centroid
    (canal_stack: [slice, row, column] masks); NaN where there is none."""
    anterior_ras = layout.slice_grid(0).in_plane_axes()[0]
    return np.array([layout.slice_grid(s).centroid_ras(canal) @ anterior_ras if canal.any() else np.nan
                     for s, canal in enumerate(canal_stack)])


def front_to_back_blur_mm(canal_stack: np.ndarray, layout: AxialLayout,
                          slice_thickness_mm: float | None = None) -> np.ndarray:
    """Per slice, how far front to back a slice of slice_thickness_mm (None: as thick as the spacing) meets the canal
    (canal_stack: [slice, row, column] masks): how far the canal centre moves front to back over that thickness, on
    the least-squares line through the canal centres within TILT_WINDOW_MM along the stack (a line rather than the
    moves from slice to slice, so that sacs of different shapes at different levels do not read as a tilt). NaN on
    slices without a canal or with fewer than 3 canal centres in the window."""
    anterior_mm = canal_anterior_mm(canal_stack, layout)
    found, index = np.isfinite(anterior_mm), np.arange(len(anterior_mm))
    spacing_mm = layout.slice_spacing_mm
    window_slices = TILT_WINDOW_MM / spacing_mm
    blur = np.full(len(anterior_mm), np.nan)
    for n in np.nonzero(found)[0]:
        near = found & (np.abs(index - n) <= window_slices)
        if near.sum() >= 3:
            blur[n] = abs(np.polyfit(index[near], anterior_mm[near], 1)[0]) / spacing_mm
    return blur * (slice_thickness_mm or spacing_mm)


def tilt_degrees(blur_mm: float, thickness_mm: float) -> float:
    """The spine's tilt against the slice normal that blurs the canal over blur_mm front to back in a slice that
    thick."""
    return math.degrees(math.atan2(blur_mm, thickness_mm))


def thick_slice_warnings(canal_stack: np.ndarray, layout: AxialLayout,
                         slice_thickness_mm: float | None = None) -> list[str]:
    """A warning when slices of slice_thickness_mm (None, unknown: as thick as their spacing) blur the canal over
    BLURRED_OVER_MM or more front to back on the median slice (front_to_back_blur_mm): the spine is tilted against
    the slices, as in an abdominal series or slices not angled to the discs. [] otherwise."""
    blur = front_to_back_blur_mm(canal_stack, layout, slice_thickness_mm)
    blur = blur[np.isfinite(blur)]
    if not len(blur) or np.median(blur) < BLURRED_OVER_MM:
        return []
    median_mm, spacing_mm = float(np.median(blur)), layout.slice_spacing_mm
    thickness_mm = slice_thickness_mm or spacing_mm
    slices = (f"slices {thickness_mm:.1f} mm thick, {spacing_mm:.1f} mm apart," if slice_thickness_mm
              else f"slices {spacing_mm:.1f} mm apart")
    that_thick = "that thick" if slice_thickness_mm else "as thick as that"
    return [f"{slices} through a spine tilted about {tilt_degrees(median_mm, thickness_mm):.0f}° "
            f"against them: a slice {that_thick} blurs the sac over about {median_mm:.1f} mm front to back, so "
            "canal AP and area may read long (slices angled to the discs, or thinner, measure better)"]
