"""Per-slice measurements from masks of the canal (thecal sac) and the left/right neural foramina.

Definitions (also in the README):

* Masks may be binary or soft (0..1). Only the largest connected component (at 0.5) of each structure is measured.
* A *chord* along a line is the longest run where the bilinearly interpolated mask is >= 0.5. Each end is located
  from its edge ramp: the ramp's area divided by the local plateau value, measured back from the plateau. For a
  binary mask that is the 0.5 crossing; for a partial-volume (area-fraction) mask it is the exact edge; a soft
  interior below 1 (network probabilities) does not shrink the chord. The ruler's endpoints are these two edge
  points (on the mask boundary) and its length is the reported number.
* ``canal_ap_mm``: chord through the canal centroid along the patient's antero-posterior axis projected into the
  slice plane (the direction a radiologist draws on the axial view). ``canal_transverse_mm``: the same along the
  patient's left-right axis.
* ``canal_area_mm2``: sum of the soft mask times the pixel area (partial volume counts, as in SCT).
* ``*_foramen_width_mm``: the narrowest gap of the foramen. The foramen's axis runs from the canal centroid to the
  foramen centroid (its principal axis when there is no canal); chords perpendicular to that axis are taken every
  quarter pixel; between the widest chord of the inner half and the widest chord of the outer half, the shortest one
  is the narrowest gap (so the rounded tips of a mask never count as a gap); of a stretch of equally short chords
  (within TIE_MM: parallel walls), the middle one.
* A structure that is absent gives NaN, never 0.
* ``canal_confidence``, ``left_foramen_confidence``, ``right_foramen_confidence``: the mean of each mask over its
  measured region (where it is >= 0.5): network 2's average probability there, 1 for a mask drawn or edited by hand.
  ``check`` names the structures whose confidence is below CHECK_BELOW (e.g. "canal, left foramen"): what the
  network was unsure of, to look at before trusting its numbers; the canal where the segmenter found its outline
  to follow no edge clearer than the image noise (``canal_edge_to_noise``, see visibility); the canal off the
  line about which the image around it is mirror-symmetric, the spine's axis (``canal_off_axis_mm``, see
  symmetry): another structure, such as a vessel in front of the spine; the canal whose area is much larger than
  the ellipse two perpendicular chords through its centroid span (``canal_area_to_chords``, MAX_AREA_TO_CHORDS: an
  outline of two lobes, joined at a neck the chords cross); a foramen network 2 did not find on a slice where it
  found the other side's (unmatched_foramen: one obliterated, or one missed); and the structures the edge of the
  image cuts (``cut_by_field_of_view``: the measured region reaches the slice's outermost pixels, the padding a
  scanner or a reslice filled beyond the imaged area, or the edge of network 2's crop; a foramen's comes within a
  pixel of the slice's edge or padding, EDGE_DEPTH_PX), whose numbers are those of the part in view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .geometry import AxialLayout, FieldOfView, PlaneGrid
from .symmetry import off_axis
from .visibility import faint

STRUCTURES = ("canal", "left_foramen", "right_foramen")
MEASUREMENT_COLUMNS = ("canal_ap_mm", "canal_transverse_mm", "canal_area_mm2",
                       "left_foramen_width_mm", "right_foramen_width_mm")
RULER_TITLES = {"canal_ap_mm": "Canal AP", "canal_transverse_mm": "Canal transverse",
                "left_foramen_width_mm": "Left foramen", "right_foramen_width_mm": "Right foramen"}
SAMPLES_PER_PIXEL = 8
TIE_MM = 0.05  # foramen chords this close to the shortest are equally short
# chosen for the shipped segmenter's probabilities (averaged with the mirror image's): below it, on 300 synthetic
# validation slices, the canal is to check on 25, which hold 20 of their 36 gross failures (canal Dice below 0.8), and
# 64 of 403 reported foramina, 41 % of them within 2 mm of a true one (the others 94 %), 28 of the 38 reported where
# there is none: benchmarks/evaluate_synthetic.py --validation --count 300 --check-below 0.95,0.94,0.93,0.92,0.9
CHECK_BELOW = 0.93
# how near the edge of the slice's field of view (in its pixels) a structure's measured region must come to be cut by
# it. A foramen opens outward: network 2's outline of one the edge cuts stops about a pixel short of it (on the real
# validation images, 11 reported foramina of the SCT lumbar T2, 38 mm wide, one pixel from its edge, no other within
# 6 pixels). A canal is closed: its wall may lie a pixel inside the edge (on that T2 the same rule would add 53
# canals, most of those looked at whole).
EDGE_DEPTH_PX = {"canal": 1, "left_foramen": 2, "right_foramen": 2}
# the canal's area over the ellipse two perpendicular chords through its centroid span (canal_area_to_chords), above
# which the canal is to check: about 1 for one round outline (a trefoil 1.02), more where the outline has two lobes
# and the chords through its neck miss part of them. Of two pairs, the one whose ellipse is smaller counts: its AP and
# transverse rulers, and its chords along its principal axes, which cross the neck of two lobes joined along a
# diagonal (both rulers then run through both lobes, and the rulers' ellipse is about the outline's area). On 1 000
# synthetic validation slices (seed 2 000 000, shipped networks) the canals found in place (Dice 0.8 or more) lie at
# 0.82-1.43 (99th percentile 1.16; by the rulers alone 0.82-1.41); 1.5, above them all, flags none of them, and the 2
# canals at or above it are gross failures, to check already. I chose it after seeing a real canal of two lobes at 1.9
# (the SCT lumbar T2's slice 96, 414 mm², not to check before)
MAX_AREA_TO_CHORDS = 1.5
CONFIDENCE_COLUMNS = tuple(f"{name}_confidence" for name in STRUCTURES)
# what the measurement found beside the values (SliceMeasurement.found), by column
FOUND_COLUMNS = (*CONFIDENCE_COLUMNS, "canal_edge_to_noise", "canal_off_axis_mm", "canal_area_to_chords",
                 "cut_by_field_of_view", "check")
STRUCTURE_WORDS = {name: name.replace("_", " ") for name in STRUCTURES}  # "left_foramen" → "left foramen"
# what the check column names, for the command line and the table (the module's status line keeps its own copy,
# a literal inside _() for translation)
CHECK_REASONS = ("what the network was unsure of, the image barely shows, lies off the spine's axis, is not one "
                 "round outline, or the edge of the image cuts, and a foramen not found where the other side's is")
OTHER_FORAMEN = {"left_foramen": "right_foramen", "right_foramen": "left_foramen"}


@dataclass(frozen=True)
class Ruler:
    """A measured distance with its two endpoints in RAS; ``length_mm`` is the distance between them."""

    start_ras: np.ndarray
    end_ras: np.ndarray

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.end_ras - self.start_ras))


@dataclass
class SliceMeasurement:
    slice_index: int
    z_mm: float
    values: dict[str, float] = field(default_factory=lambda: {name: float("nan") for name in MEASUREMENT_COLUMNS})
    rulers: dict[str, Ruler] = field(default_factory=dict)
    confidences: dict[str, float] = field(default_factory=lambda: {name: float("nan") for name in CONFIDENCE_COLUMNS})
    canal_edge_to_noise: float = float("nan")  # visibility.canal_edge_to_noise (NaN: not measured, e.g. a drawn mask)
    canal_off_axis_mm: float = float("nan")  # symmetry.canal_off_axis_mm (NaN: not judged, e.g. a drawn mask)
    canal_area_to_chords: float = float("nan")  # area_to_chords of the canal as measured (NaN: no canal)
    cut_by_field_of_view: frozenset[str] = frozenset()  # the STRUCTURES the edge of the image cuts (cut_by_edge)
    level: str = ""  # the slice's vertebral level as the user named it (e.g. "L4-L5"); nothing in the image gives it
    image_number: str = ""  # the DICOM image the slice is, as a viewer numbers it (AxialVolume.image_numbers)

    @property
    def check(self) -> str:
        """The structures to check (is_to_check), e.g. "canal, left foramen" ("" for none)."""
        return structure_words(name for name in STRUCTURES if self.is_to_check(name))

    def is_to_check(self, name: str) -> bool:
        """Whether check names this structure (one of STRUCTURES)."""
        return structure_to_check(name, self.confidences, self.canal_edge_to_noise, cut=self.cut_by_field_of_view,
                                  canal_off_axis_mm=self.canal_off_axis_mm,
                                  canal_area_to_chords=self.canal_area_to_chords)

    def found(self) -> dict[str, float | str]:
        """What the measurement found beside the values, by column (FOUND_COLUMNS; cut_by_field_of_view worded as
        the check column words structures)."""
        return {**self.confidences, "canal_edge_to_noise": self.canal_edge_to_noise,
                "canal_off_axis_mm": self.canal_off_axis_mm, "canal_area_to_chords": self.canal_area_to_chords,
                "cut_by_field_of_view": structure_words(self.cut_by_field_of_view), "check": self.check}

    def __getattr__(self, name: str) -> float:
        if name in MEASUREMENT_COLUMNS:
            return self.values[name]
        raise AttributeError(name)


def kept_confidence(kept: np.ndarray) -> float:
    """The mean of a mask reduced to its largest component (largest_component) over that region at >= 0.5 (NaN
    without one): how sure network 2 was of what it found."""
    region = kept >= 0.5
    return float(kept[region].mean()) if region.any() else float("nan")


def doubted(confidence: float, below: float = CHECK_BELOW) -> bool:
    """Whether a structure was found with a confidence below CHECK_BELOW (or another cut-off; False where none was
    found)."""
    return confidence < below


def structure_to_check(name: str, confidences: dict[str, float], canal_edge_to_noise: float = float("nan"),
                       below: float = CHECK_BELOW, cut: frozenset[str] = frozenset(),
                       canal_off_axis_mm: float = float("nan"), canal_area_to_chords: float = float("nan")) -> bool:
    """Whether a structure was found with a confidence below CHECK_BELOW (or below), is a canal whose outline
    follows no edge clearer than the image noise (visibility.faint), that lies off the spine's axis
    (symmetry.off_axis) or that is not one round outline (misshapen), or is one the edge of the image cuts (in
    cut); or is a foramen not found where the other side's was (unmatched_foramen)."""
    return (doubted(confidences[f"{name}_confidence"], below)
            or (name == "canal" and (faint(canal_edge_to_noise) or off_axis(canal_off_axis_mm)
                                     or misshapen(canal_area_to_chords)))
            or name in cut or unmatched_foramen(name, confidences))


def unmatched_foramen(name: str, confidences: dict[str, float]) -> bool:
    """Whether name is a foramen network 2 did not find on a slice where it found the other side's (its
    confidence below 1: a mask drawn or edited by hand has 1, and its absent foramen is the user's call). At a
    pedicle neither side has a foramen and network 2 mostly finds neither; on a disc or mid-body slice a foramen
    not found is most often obliterated, the worst foraminal stenosis, which has no width to grade, or one missed.
    On the 1 000 synthetic held-out slices (benchmarks/evaluate_synthetic.py --precision float32 prints these
    counts) 179 foramina are so flagged: 105 obliterated, 43 present and missed, 31 where the slice has none."""
    other = OTHER_FORAMEN.get(name)
    return (other is not None and math.isnan(confidences[f"{name}_confidence"])
            and confidences[f"{other}_confidence"] < 1.0)


def area_to_chords(values: dict[str, float], principal_chords_mm: tuple[float, float]) -> float:
    """The canal's area over the smallest ellipse (π/4 · one chord · the other) of two pairs of perpendicular chords
    through its centroid: its AP and transverse rulers (values), and its chords along its principal axes
    (measure_canal); NaN without a canal."""
    pairs = ((values["canal_ap_mm"], values["canal_transverse_mm"]), principal_chords_mm)
    ellipses = [np.pi / 4 * first * second for first, second in pairs if first > 0 and second > 0]
    return float(values["canal_area_mm2"] / min(ellipses)) if ellipses else float("nan")


def misshapen(canal_area_to_chords: float) -> bool:
    """Whether a canal's area is MAX_AREA_TO_CHORDS times the ellipse of its chords or more (area_to_chords): not
    one round outline (False where there is no canal)."""
    return canal_area_to_chords >= MAX_AREA_TO_CHORDS


def structure_words(names) -> str:
    """Structure names as the check column says them, in STRUCTURES order: "canal, left foramen" ("" for none)."""
    names = set(names)
    return ", ".join(STRUCTURE_WORDS[name] for name in STRUCTURES if name in names)


def structures_in(words: str) -> frozenset[str]:
    """The structures a structure_words text names."""
    said = {word.strip() for word in words.split(",")}
    return frozenset(name for name in STRUCTURES if STRUCTURE_WORDS[name] in said)


def describe_checks(checks: dict[int, str]) -> str:
    """Slice → its to_check text, said by structure: "the canal on slice 3; the left foramen on slices 3, 7"."""
    parts = []
    for name, structure in STRUCTURE_WORDS.items():
        on = [str(n) for n, what in checks.items() if name in structures_in(what)]
        if on:
            parts.append(f"the {structure} on slice{'s' if len(on) > 1 else ''} {', '.join(on)}")
    return "; ".join(parts)


def bilinear(image: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Sample a 2-D array at fractional indices; zero outside."""
    return ndimage.map_coordinates(np.asarray(image, float), [rows, columns], order=1, mode="constant", cval=0.0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected component (at 0.5) of a soft mask, with its soft rim."""
    mask = np.clip(np.nan_to_num(np.asarray(mask, float)), 0.0, 1.0)
    labelled, count = ndimage.label(mask >= 0.5)
    if count == 0:
        return np.zeros_like(mask)
    keep = labelled == (int(np.argmax(np.bincount(labelled.ravel())[1:])) + 1 if count > 1 else 1)
    rim = keep.copy()  # one step of 4-neighbour dilation (ndimage.binary_dilation's default, several times slower)
    rim[1:] |= keep[:-1]
    rim[:-1] |= keep[1:]
    rim[:, 1:] |= keep[:, :-1]
    rim[:, :-1] |= keep[:, 1:]
    return np.where(rim, mask, 0.0)


def _in_plane_frame(grid: PlaneGrid) -> np.ndarray:
    """2x2 matrix taking (row, column) pixel offsets to in-plane mm along (anterior, left)."""
    anterior, left = grid.in_plane_axes()
    steps = np.stack([grid.row_step_ras, grid.column_step_ras], axis=1)  # 3x2
    return np.stack([anterior @ steps, left @ steps])


class _Plane:
    """A slice's mask sampled in in-plane millimetres: p_mm = frame @ (row, column)."""

    def __init__(self, mask: np.ndarray, grid: PlaneGrid):
        self.mask = mask
        self.grid = grid
        self.frame = _in_plane_frame(grid)
        self.inverse = np.linalg.inv(self.frame)
        self.step_mm = min(grid.pixel_size_mm) / SAMPLES_PER_PIXEL

    def sample(self, points_mm: np.ndarray) -> np.ndarray:
        index = points_mm @ self.inverse.T
        return bilinear(self.mask, index[..., 0].ravel(), index[..., 1].ravel()).reshape(points_mm.shape[:-1])

    def centroid_mm(self, weights: np.ndarray) -> np.ndarray:
        rows, columns = np.indices(weights.shape)
        total = weights.sum()
        return self.frame @ np.array([(rows * weights).sum() / total, (columns * weights).sum() / total])

    def to_ras(self, point_mm: np.ndarray) -> np.ndarray:
        row, column = self.inverse @ point_mm
        return self.grid.to_ras(row, column)

    def pixel_points_mm(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, columns = np.nonzero(weights)
        return np.stack([rows, columns], axis=1) @ self.frame.T, weights[rows, columns]

    def chords(self, centres_mm: np.ndarray, direction: np.ndarray, half_length_mm: float):
        """Chord along ``direction`` through each centre: (lengths, starts_mm, ends_mm); zero length and NaN ends
        where the line misses the mask."""
        t = np.arange(-half_length_mm, half_length_mm + self.step_mm, self.step_mm)
        values = self.sample(centres_mm[:, None, :] + t[None, :, None] * direction)
        lengths = np.zeros(len(centres_mm))
        starts = np.full((len(centres_mm), 2), np.nan)
        ends = np.full((len(centres_mm), 2), np.nan)
        hit, first, last = _longest_runs(values >= 0.5)
        if len(hit):
            t0, t1 = _edges(t, values[hit], first, last)
            lengths[hit] = t1 - t0
            starts[hit] = centres_mm[hit] + t0[:, None] * direction
            ends[hit] = centres_mm[hit] + t1[:, None] * direction
        return lengths, starts, ends


def _longest_runs(inside: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row of a boolean array that has a run of True: the row, and the first and last sample of its
    longest run (the first of equally long ones)."""
    padded = np.zeros((inside.shape[0], inside.shape[1] + 2), bool)
    padded[:, 1:-1] = inside
    rows, first = np.nonzero(~padded[:, :-1] & padded[:, 1:])
    _, last = np.nonzero(padded[:, :-1] & ~padded[:, 1:])  # same rows, in the same order
    last = last - 1
    order = np.lexsort((np.arange(len(rows)), first - last, rows))
    rows, first, last = rows[order], first[order], last[order]
    keep = np.flatnonzero(np.diff(rows, prepend=-1))
    return rows[keep], first[keep], last[keep]


def _next_true(flags: np.ndarray) -> np.ndarray:
    """Per row, the index of the first True at or after each position (the row length where there is none)."""
    index = np.where(flags, np.arange(flags.shape[1]), flags.shape[1])
    return np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1]


def _previous_true(flags: np.ndarray) -> np.ndarray:
    """Per row, the index of the last True at or before each position (-1 where there is none)."""
    return np.maximum.accumulate(np.where(flags, np.arange(flags.shape[1]), -1), axis=1)


def _edges(t: np.ndarray, rows: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel ends of one run per row (first..last samples): from each end's outer sample, climb inward to the
    local plateau, walk outward down the ramp to zero; the edge lies ramp-area / plateau before the plateau. Exact
    for partial-volume (area-fraction) edges, the 0.5 crossing for binary masks, and robust to soft interiors
    below 1."""
    n = np.arange(len(rows))
    falls = np.zeros(rows.shape, bool)  # falls[k]: the next sample is lower
    falls[:, :-1] = rows[:, 1:] < rows[:, :-1]
    rises = np.zeros(rows.shape, bool)  # rises[k]: the previous sample is lower
    rises[:, 1:] = rows[:, :-1] < rows[:, 1:]
    positive = rows > 1e-6
    ramp_down_left = np.zeros(rows.shape, bool)  # the sample before k is on a ramp falling away from k
    ramp_down_left[:, 1:] = positive[:, :-1] & (rows[:, :-1] <= rows[:, 1:])
    ramp_down_right = np.zeros(rows.shape, bool)
    ramp_down_right[:, :-1] = positive[:, 1:] & (rows[:, 1:] <= rows[:, :-1])
    plateau = (np.minimum(_next_true(falls)[n, first], last), np.maximum(_previous_true(rises)[n, last], first))
    foot = (_previous_true(~ramp_down_left)[n, first], _next_true(~ramp_down_right)[n, last])
    summed = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(rows, axis=1)], axis=1)
    step = t[1] - t[0]
    result = []
    for top, bottom, outward in zip(plateau, foot, (-1, +1)):
        low, high = np.minimum(top, bottom), np.maximum(top, bottom)
        area = (summed[n, high + 1] - summed[n, low] - 0.5 * (rows[n, low] + rows[n, high])) * step
        result.append(t[top] + outward * np.where(high > low, area, 0.0) / rows[n, top])
    return result[0], result[1]


def measure_canal(mask: np.ndarray, grid: PlaneGrid
                  ) -> tuple[dict[str, float], dict[str, Ruler], np.ndarray | None, tuple[float, float]]:
    """AP, transverse and area of the canal (its mask reduced to its largest component); also returns the centroid
    in in-plane mm (None if absent) and the lengths of the chords through it along the mask's principal axes (for
    area_to_chords; NaN if absent)."""
    values = {"canal_ap_mm": np.nan, "canal_transverse_mm": np.nan, "canal_area_mm2": np.nan}
    if mask.max() < 0.5:
        return values, {}, None, (np.nan, np.nan)
    plane = _Plane(mask, grid)
    centroid = plane.centroid_mm(mask)
    points, weights = plane.pixel_points_mm(mask)
    reach = float(np.linalg.norm(points - centroid, axis=1).max()) + 2.0 * max(grid.pixel_size_mm)
    values["canal_area_mm2"] = float(mask.sum() * grid.pixel_area_mm2)
    rulers = {}
    for name, direction in (("canal_ap_mm", np.array([1.0, 0.0])), ("canal_transverse_mm", np.array([0.0, 1.0]))):
        lengths, starts, ends = plane.chords(centroid[None], direction, reach)
        if lengths[0] > 0:
            rulers[name] = Ruler(plane.to_ras(starts[0]), plane.to_ras(ends[0]))
            values[name] = rulers[name].length_mm
    minor, major = _principal_axes(points - centroid, weights).T
    principal = tuple(float(plane.chords(centroid[None], axis, reach)[0][0]) for axis in (minor, major))
    return values, rulers, centroid, principal


def _principal_axes(centred_mm: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The principal axes of weighted points about their centroid (2x2, unit columns): the minor axis, then the
    major."""
    return np.linalg.eigh((centred_mm * weights[:, None]).T @ centred_mm)[1]


def measure_foramen(mask: np.ndarray, grid: PlaneGrid, canal_centroid_mm: np.ndarray | None) -> Ruler | None:
    """Narrowest gap of one foramen (its mask reduced to its largest component; see the module docstring), or None
    when the foramen is absent."""
    if mask.max() < 0.5:
        return None
    plane = _Plane(mask, grid)
    centroid = plane.centroid_mm(mask)
    points, weights = plane.pixel_points_mm(mask)
    axis = None
    if canal_centroid_mm is not None and np.linalg.norm(centroid - canal_centroid_mm) > 1e-6:
        axis = (centroid - canal_centroid_mm) / np.linalg.norm(centroid - canal_centroid_mm)
    if axis is None:
        axis = _principal_axes(points - centroid, weights)[:, -1]
    across = np.array([-axis[1], axis[0]])
    margin = 2.0 * max(grid.pixel_size_mm)
    along = (points - centroid) @ axis
    reach = float(np.abs((points - centroid) @ across).max()) + margin
    positions = np.arange(along.min() - margin, along.max() + margin, plane.step_mm * 2)
    lengths, starts, ends = plane.chords(centroid + positions[:, None] * axis, across, reach)
    present = np.flatnonzero(lengths > 0)
    if len(present) == 0:
        return None
    first, last = present[0], present[-1]
    middle = (first + last) // 2
    widest_inner = first + int(np.argmax(lengths[first:middle + 1]))
    widest_outer = middle + int(np.argmax(lengths[middle:last + 1]))
    span = lengths[widest_inner:widest_outer + 1]
    narrowest = widest_inner + _middle_of_shortest(np.where(span > 0, span, np.inf))
    return Ruler(plane.to_ras(starts[narrowest]), plane.to_ras(ends[narrowest]))


def _middle_of_shortest(lengths: np.ndarray) -> int:
    """Index of the shortest chord; where a stretch of neighbouring chords is as short (within TIE_MM: a channel
    with parallel walls), the middle of the first such stretch, not whichever rounding makes shortest."""
    ties = np.flatnonzero(lengths <= lengths.min() + TIE_MM)
    breaks = np.flatnonzero(np.diff(ties) > 1)
    stretch = ties[:breaks[0] + 1] if len(breaks) else ties
    return int(stretch[len(stretch) // 2])


def cut_by_edge(kept: dict[str, np.ndarray], grid: PlaneGrid, field_of_view: FieldOfView | None = None
                ) -> frozenset[str]:
    """The structures whose measured region (>= 0.5) reaches the outermost pixels of grid or the edge of the slice's
    field of view (its outermost pixels and those beside its padding, EDGE_DEPTH_PX deep; the mask sampled at their
    centres, as the slice's labels are): the image does not show the rest of them."""
    present = {name: mask for name, mask in kept.items() if mask.max() >= 0.5}
    field_of_view = FieldOfView(grid) if field_of_view is None else field_of_view
    grid_edge = grid.outer_ring()  # of network 2's crop, where grid is one
    view_edges = {depth: grid.to_index(field_of_view.grid.to_ras(*field_of_view.edge(depth)))
                  for depth in {EDGE_DEPTH_PX[name] for name in present}}  # once for both foramina
    return frozenset(name for name, mask in present.items() if any(
        (bilinear(mask, rows, columns) >= 0.5).any() for rows, columns in (grid_edge, view_edges[EDGE_DEPTH_PX[name]])))


def measure_slice(masks: dict[str, np.ndarray], grid: PlaneGrid, slice_index: int = 0,
                  z_mm: float = float("nan"), canal_edge_to_noise: float = float("nan"),
                  field_of_view: FieldOfView | None = None, canal_off_axis_mm: float = float("nan"),
                  image_number: str = "") -> SliceMeasurement:
    """Measure one slice from masks keyed by :data:`STRUCTURES` (missing keys count as absent) on grid, the slice's
    own or a crop of it, and the slice's field_of_view (None: grid's); canal_edge_to_noise and canal_off_axis_mm
    are the segmenter's (see visibility, symmetry); image_number: the DICOM image the slice is, if any."""
    empty = np.zeros(grid.shape)
    kept = {name: largest_component(masks.get(name, empty)) for name in STRUCTURES}
    confidences = {f"{name}_confidence": kept_confidence(kept[name]) for name in STRUCTURES}
    result = SliceMeasurement(slice_index, z_mm, confidences=confidences, canal_edge_to_noise=canal_edge_to_noise,
                              canal_off_axis_mm=canal_off_axis_mm,
                              cut_by_field_of_view=cut_by_edge(kept, grid, field_of_view), image_number=image_number)
    canal_values, canal_rulers, canal_centroid, principal_chords_mm = measure_canal(kept["canal"], grid)
    result.values.update(canal_values)
    result.canal_area_to_chords = area_to_chords(canal_values, principal_chords_mm)
    result.rulers.update(canal_rulers)
    for side in ("left", "right"):
        ruler = measure_foramen(kept[f"{side}_foramen"], grid, canal_centroid)
        if ruler is not None:
            result.rulers[f"{side}_foramen_width_mm"] = ruler
            result.values[f"{side}_foramen_width_mm"] = ruler.length_mm
    return result


def masks_from_labels(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Split a label slice (1 canal, 2 left foramen, 3 right foramen) into binary masks."""
    return {name: (labels == value).astype(float) for value, name in enumerate(STRUCTURES, start=1)}


def foramina_swapped(stack_labels: np.ndarray, layout: AxialLayout) -> tuple[int, int]:
    """(slices whose labels ([slice, row, column]) hold both foramina, of which the left foramen (2) lies on the
    patient's right of the right one (3)): labelled by the image's sides, where not 0."""
    both = swapped = 0
    for s in range(len(stack_labels)):
        left_foramen, right_foramen = stack_labels[s] == 2, stack_labels[s] == 3
        if left_foramen.any() and right_foramen.any():
            grid = layout.slice_grid(s)
            _, left = grid.in_plane_axes()
            both += 1
            swapped += float((grid.centroid_ras(left_foramen) - grid.centroid_ras(right_foramen)) @ left) < 0
    return both, swapped
