"""The canal is a tube: a slice whose canal is missing, or lies off the line its neighbours draw, is looked at
again where its neighbours put the canal (the stack-level prior SCT gets from a centreline)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import PlaneGrid
from .measurement import largest_component

NEIGHBOUR_WINDOW_MM = 40.0  # slices this close along the stack say where a slice's canal should be
MIN_NEIGHBOURS = 2
OFF_LINE_MM = 8.0  # left-right; about half a lumbar canal's width: a canal centre farther off is on something else


@dataclass(frozen=True)
class CanalSighting:
    """Where a slice's canal is (centroid, RAS) and the side of the network-2 crop it was found in."""

    centre_ras: np.ndarray
    crop_side_mm: float

    @classmethod
    def of(cls, canal: np.ndarray, grid: PlaneGrid) -> "CanalSighting | None":
        """The sighting of a canal mask (probabilities) on a network-2 crop grid; None without a canal."""
        region = largest_component(canal) >= 0.5
        if not region.any():
            return None
        return cls(grid.to_ras(*np.nonzero(region)).mean(axis=0), grid.shape[0] * grid.pixel_size_mm[0])


def on_line(sighting: CanalSighting, expected: CanalSighting) -> bool:
    return abs(float(sighting.centre_ras[0] - expected.centre_ras[0])) <= OFF_LINE_MM


def second_looks(sightings: list[CanalSighting | None], positions_mm: list[float]) -> dict[int, CanalSighting]:
    """Slices to look at again → where their canal should be. The line is the longest chain of sightings, in order
    along the stack (superior coordinate), whose neighbours are within OFF_LINE_MM left-right of each other (so a
    run of finds on a kidney or bowel cannot outvote the spine). A slice off that chain, with at least
    MIN_NEIGHBOURS chain slices within NEIGHBOUR_WINDOW_MM, is expected at their median centre and crop side."""
    positions = np.asarray(positions_mm, float)
    chain = _longest_chain(sightings, positions)
    looks = {}
    for n, sighting in enumerate(sightings):
        neighbours = [m for m in chain if m != n and abs(positions[m] - positions[n]) <= NEIGHBOUR_WINDOW_MM]
        if n in chain or len(neighbours) < MIN_NEIGHBOURS:
            continue
        centre = np.median([sightings[m].centre_ras for m in neighbours], axis=0)
        centre[2] = positions[n]
        expected = CanalSighting(centre, float(np.median([sightings[m].crop_side_mm for m in neighbours])))
        if sighting is None or not on_line(sighting, expected):
            looks[n] = expected
    return looks


def _longest_chain(sightings: list[CanalSighting | None], positions: np.ndarray) -> set[int]:
    found = sorted((n for n, sighting in enumerate(sightings) if sighting is not None), key=lambda n: positions[n])
    if not found:
        return set()
    x = np.array([sightings[n].centre_ras[0] for n in found])
    length, previous = np.ones(len(found), int), np.full(len(found), -1)
    for i in range(1, len(found)):
        links = np.nonzero(np.abs(x[:i] - x[i]) <= OFF_LINE_MM)[0]
        if len(links):
            best = links[np.argmax(length[links])]
            length[i], previous[i] = length[best] + 1, best
    chain, i = set(), int(np.argmax(length))
    while i >= 0:
        chain.add(found[i])
        i = previous[i]
    return chain
