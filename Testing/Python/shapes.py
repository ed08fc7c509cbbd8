"""Analytic shapes rasterised on plane grids, binary or anti-aliased (area fraction)."""
from __future__ import annotations

import math

import numpy as np

from SpinalStenosisLib.geometry import PlaneGrid


def axial_grid(pixel_mm=(0.5, 0.5), shape=(160, 160), rotation_deg=0.0, tilt_deg=0.0,
               centre_ras=(0.0, 0.0, 0.0)) -> PlaneGrid:
    """Canonical axial grid (rows A→P, columns R→L) rotated in plane and tilted about the L-R axis."""
    a, t = np.radians(rotation_deg), np.radians(tilt_deg)
    spin = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    tilt = np.array([[1.0, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    row_step = tilt @ spin @ np.array([0.0, -pixel_mm[0], 0.0])
    column_step = tilt @ spin @ np.array([-pixel_mm[1], 0.0, 0.0])
    origin = np.asarray(centre_ras, float) - (shape[0] - 1) / 2 * row_step - (shape[1] - 1) / 2 * column_step
    return PlaneGrid(origin, row_step, column_step, shape)


def in_plane_coordinates(grid: PlaneGrid, rows, columns):
    """(lateral-left, anterior) mm of pixel positions, in the grid's own patient-aligned in-plane frame."""
    anterior, left = grid.in_plane_axes()
    points = grid.to_ras(rows, columns) - grid.to_ras((grid.shape[0] - 1) / 2, (grid.shape[1] - 1) / 2)
    return points @ left, points @ anterior


def rasterise(inside, grid: PlaneGrid, soft: bool = False, samples: int = 12) -> np.ndarray:
    """Mask of inside(x_left_mm, y_anterior_mm) on grid: binary (pixel centres) or area fraction."""
    if not soft:
        rows, columns = np.indices(grid.shape)
        return inside(*in_plane_coordinates(grid, rows, columns)).astype(float)
    offsets = (np.arange(samples) + 0.5) / samples - 0.5
    total = np.zeros(grid.shape)
    rows, columns = np.indices(grid.shape)
    for dr in offsets:
        for dc in offsets:
            total += inside(*in_plane_coordinates(grid, rows + dr, columns + dc))
    return total / samples ** 2


def ellipse(cx, cy, a, b, angle_deg=0.0):
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))

    def inside(x, y):
        u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0

    return inside


def trefoil(radius, depth):
    """r(phi) = R (1 - depth sin 3 phi): three lobes, one pointing posterior."""

    def inside(x, y):
        return np.hypot(x, y) <= radius * (1 - depth * np.sin(3 * np.arctan2(y, x)))

    return inside


def bow_tie(cx, cy, waist, slope, length, angle_deg=0.0):
    """Channel along angle_deg (from the +left axis) through (cx, cy): half-width waist/2 + slope |u|."""
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))

    def inside(x, y):
        u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
        return (np.abs(u) <= length / 2) & (np.abs(v) <= waist / 2 + slope * np.abs(u))

    return inside


VENA_CAVA_LEFT_MM = -22.0  # in front of the spine, on the patient's right; the aorta mirrors it on the left


def spine(grid, turned_deg=0.0, vessel_level=700.0, vena_cava_mm=(9.0, 7.0)):
    """A lumbar slice symmetric about x = 0 (in-plane mm, left and anterior) but for its vena cava (semi-axes
    vena_cava_mm) and aorta (round, as large), turned by turned_deg in the plane: body outline, vertebral body, sac,
    laminae, spinous process, paraspinal muscles, psoas, vena cava and aorta. The image, the sac and the vena
    cava."""
    c, s = math.cos(math.radians(turned_deg)), math.sin(math.radians(turned_deg))

    def turned(shape):
        return lambda x, y: shape(c * x + s * y, -s * x + c * y)

    sac, vena_cava = ellipse(0, 0, 10, 7), ellipse(VENA_CAVA_LEFT_MM, 52, *vena_cava_mm)
    parts = [(ellipse(0, 20, 150, 110), 300), (ellipse(0, 30, 22, 18), 250), (sac, 900),
             (ellipse(-14, -12, 5, 12, 30), 80), (ellipse(14, -12, 5, 12, -30), 80), (ellipse(0, -28, 3, 14), 80),
             (ellipse(-28, -30, 16, 20), 450), (ellipse(28, -30, 16, 20), 450), (ellipse(-35, 25, 12, 15), 500),
             (ellipse(35, 25, 12, 15), 500), (vena_cava, vessel_level),
             (ellipse(-VENA_CAVA_LEFT_MM, 52, *[float(np.mean(vena_cava_mm))] * 2), vessel_level)]
    image = np.random.default_rng(3).normal(0.0, 15.0, grid.shape)
    for shape, level in parts:
        inside = rasterise(turned(shape), grid)
        image = image * (1 - inside) + level * inside
    return image, rasterise(turned(sac), grid) > 0, rasterise(turned(vena_cava), grid) > 0


def two_lobes(shape: tuple[int, int], row: float, column: float) -> np.ndarray:
    """A pixel mask of two discs (radius 8) 12 pixels up-left and down-right of (row, column), joined by a neck 5
    pixels wide through it: a canal of two lobes that rulers through its centroid miss."""
    rows, columns = np.indices(shape)
    up, left = rows - row, columns - column
    return (((up + 12) ** 2 + (left + 12) ** 2 <= 8 ** 2) | ((up - 12) ** 2 + (left - 12) ** 2 <= 8 ** 2)
            | ((np.abs(up - left) <= 2) & (np.abs(up) <= 12)))
