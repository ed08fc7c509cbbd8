"""Every geometric convention of the engine, in one place.

* Files are read with SimpleITK (LPS); everything in the engine is RAS. ``LPS_TO_RAS`` is the only conversion.
* Arrays are in numpy order ``[k, j, i]`` (as SimpleITK and Slicer's ``arrayFromVolume`` give them).
* The *axial stack* is the input array re-ordered, without interpolation, to ``[slice, row, column]`` with rows
  running anterior to posterior and columns from patient right to patient left (radiological display). The slice
  index equals the index along the input array's axial axis.
* A :class:`PlaneGrid` maps 2-D pixel indices ``(row, column)`` of one slice (or of a resized crop of it) to RAS.
  Pixel centres sit at integer indices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
AXIS_NAMES = ("sagittal", "coronal", "axial")  # by the RAS axis a slice normal is closest to
ISOTROPIC_RATIO = 1.5  # spacings within this ratio count as a 3-D isotropic acquisition
# no scan's voxel, nor the step between two slices of a series, is a metre: a size above it is a number of no meaning
MAX_VOXEL_MM = 1000.0
# the largest cosine between an image's rows and columns at right angles, as exports round them (1°): more is a
# sheared grid, which no scanner acquires
MAX_RIGHT_ANGLE_COSINE = math.sin(math.radians(1.0))
SAME_SPACING_TOLERANCE = 0.01  # spacings within this fraction of each other are alike (thickest_axis)
RESLICE_ANGLE_DEG = 30.0  # a 3-D volume tilted more than this from axial is resliced
# a pixel count computed from mm within this of a whole number is that number: 12 mm over 0.75 mm pixels is 16 pixels,
# whether a grid's pixel size reads 0.75 or 0.7499999999999999 (its geometry written as DICOM text and read back)
WHOLE_PIXEL_TOLERANCE = 1e-6


class GeometryError(ValueError):
    """The input cannot be measured as an axial stack; the message says why."""


@dataclass(frozen=True)
class PlaneGrid:
    """Pixel ``(row, column)`` of a 2-D grid → RAS: ``origin + row * row_step + column * column_step``."""

    origin_ras: np.ndarray
    row_step_ras: np.ndarray
    column_step_ras: np.ndarray
    shape: tuple[int, int]

    def to_ras(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        rows, columns = np.asarray(rows, float), np.asarray(columns, float)
        return (self.origin_ras + rows[..., None] * self.row_step_ras + columns[..., None] * self.column_step_ras)

    def to_index(self, points_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project RAS points onto the plane and return fractional (row, column)."""
        solution = self._ras_to_plane @ (np.asarray(points_ras, float).reshape(-1, 3) - self.origin_ras).T
        shape = np.shape(points_ras)[:-1]
        return solution[0].reshape(shape), solution[1].reshape(shape)

    @cached_property
    def _ras_to_plane(self) -> np.ndarray:
        """The steps' 2x3 pseudo-inverse, computed once per grid (to_index runs thousands of times a stack)."""
        return np.linalg.pinv(np.stack([self.row_step_ras, self.column_step_ras], axis=1))

    @property
    def centre_ras(self) -> np.ndarray:
        """The grid's centre (between the middle pixels when a side is even)."""
        return self.to_ras((self.shape[0] - 1) / 2, (self.shape[1] - 1) / 2)

    def centroid_ras(self, mask: np.ndarray) -> np.ndarray:
        """The centroid of a mask's nonzero pixels (pixel → RAS is affine: the mean pixel maps to it)."""
        return self.to_ras(*np.mean(np.nonzero(mask), axis=1))

    def extent_on(self, other: "PlaneGrid") -> tuple[float, float, float, float]:
        """This grid's outer pixel edges on other's pixel indices: row min, row max, column min, column max."""
        rows, columns = other.to_index(self.to_ras(
            np.array([-0.5, -0.5, self.shape[0] - 0.5, self.shape[0] - 0.5]),
            np.array([-0.5, self.shape[1] - 0.5, -0.5, self.shape[1] - 0.5])))
        return float(rows.min()), float(rows.max()), float(columns.min()), float(columns.max())

    def outer_ring(self, depth: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The (row, column) indices of this grid's outermost pixels, depth rings of them: the edge of its field of
        view (built from the perimeter alone: it is asked on every measured slice)."""
        rows, columns = [], []
        for d in range(min(depth, (min(self.shape) + 1) // 2)):
            top, bottom, left, right = d, self.shape[0] - 1 - d, d, self.shape[1] - 1 - d
            across, down = np.arange(left, right + 1), np.arange(top + 1, bottom)
            for row in sorted({top, bottom}):
                rows.append(np.full(len(across), row))
                columns.append(across)
            for column in sorted({left, right}):
                rows.append(down)
                columns.append(np.full(len(down), column))
        return np.concatenate(rows).astype(int), np.concatenate(columns).astype(int)

    @property
    def pixel_area_mm2(self) -> float:
        return float(np.linalg.norm(np.cross(self.row_step_ras, self.column_step_ras)))

    @property
    def pixel_size_mm(self) -> tuple[float, float]:
        return float(np.linalg.norm(self.row_step_ras)), float(np.linalg.norm(self.column_step_ras))

    @property
    def normal_ras(self) -> np.ndarray:
        normal = np.cross(self.row_step_ras, self.column_step_ras)
        return normal / np.linalg.norm(normal)

    def in_plane_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Patient anterior and patient left directions projected into the plane (orthonormal, RAS)."""
        normal = self.normal_ras
        anterior = np.array([0.0, 1.0, 0.0])
        anterior = anterior - anterior.dot(normal) * normal
        if np.linalg.norm(anterior) < 1e-6:  # plane is coronal: fall back to the row direction
            anterior = -self.row_step_ras
        anterior /= np.linalg.norm(anterior)
        left = np.cross(anterior, normal)  # right-handed: anterior x superior-ish normal points left or right
        if left[0] > 0:
            left = -left
        return anterior, left

    def crop(self, row0: float, column0: float, height: float, width: float, out_shape: tuple[int, int]) -> "PlaneGrid":
        """Grid of the region ``[row0, row0+height) x [column0, column0+width)`` (pixel edges) resized to out_shape."""
        scale_row, scale_column = height / out_shape[0], width / out_shape[1]
        first_row = row0 - 0.5 + 0.5 * scale_row
        first_column = column0 - 0.5 + 0.5 * scale_column
        return PlaneGrid(
            origin_ras=self.to_ras(first_row, first_column),
            row_step_ras=self.row_step_ras * scale_row,
            column_step_ras=self.column_step_ras * scale_column,
            shape=(int(out_shape[0]), int(out_shape[1])),
        )


@dataclass(frozen=True)
class FieldOfView:
    """The part of a slice its image shows: the slice's grid, less its padding (bool [row, column], or None for
    none): the pixels a scanner or a reslice filled beyond the imaged area (visibility.padding)."""

    grid: PlaneGrid
    padding: np.ndarray | None = None

    def edge(self, depth: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The (row, column) indices of the shown pixels at the edge of the field of view, depth pixels deep: the
        grid's outermost pixels and those beside padding (reached from it in depth steps up, down, left or right)."""
        rows, columns = self.grid.outer_ring(depth)
        if self.padding is None:
            return rows, columns
        near = self.padding
        for _ in range(depth):
            around = np.pad(near, 1)
            near = near | around[:-2, 1:-1] | around[2:, 1:-1] | around[1:-1, :-2] | around[1:-1, 2:]
        beside_rows, beside_columns = np.nonzero(near & ~self.padding)
        return np.concatenate([rows, beside_rows]), np.concatenate([columns, beside_columns])


@dataclass(frozen=True)
class VolumeGeometry:
    """Size, spacing and IJK→RAS matrix of a 3-D image (IJK in ITK order: i fastest)."""

    size_ijk: tuple[int, int, int]
    ijk_to_ras: np.ndarray  # 4x4

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def directions_ras(self) -> np.ndarray:
        """3x3 whose columns are the unit I, J, K axes in RAS."""
        return self.ijk_to_ras[:3, :3] / self.spacing_mm

    @classmethod
    def from_sitk(cls, image) -> "VolumeGeometry":
        """The geometry of a SimpleITK image (or reader); a negative spacing as its size (a NIfTI pixdim, which
        must be positive: the orientation is its qform's or sform's, and ITK would mirror the axis against it)."""
        direction_lps = np.array(image.GetDirection(), float).reshape(3, 3)
        matrix = np.eye(4)
        matrix[:3, :3] = LPS_TO_RAS @ direction_lps @ np.diag(np.abs(image.GetSpacing()))
        matrix[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin(), float)
        return cls(tuple(int(s) for s in image.GetSize()), matrix)

    def sitk_frame(self) -> tuple[list[float], list[float], list[float]]:
        """Origin, spacing and direction as SimpleITK takes them (LPS)."""
        return ([float(v) for v in LPS_TO_RAS @ self.ijk_to_ras[:3, 3]], [float(s) for s in self.spacing_mm],
                [float(v) for v in (LPS_TO_RAS @ self.directions_ras).ravel()])

    def apply_to_sitk(self, image) -> None:
        """Write this geometry's spacing, origin and direction into a SimpleITK image (LPS)."""
        origin, spacing, direction = self.sitk_frame()
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        image.SetDirection(direction)

    def matches(self, other: "VolumeGeometry", tolerance_mm: float = 1e-3) -> bool:
        return self.size_ijk == other.size_ijk and np.allclose(self.ijk_to_ras, other.ijk_to_ras, atol=tolerance_mm)

    def voxels_on(self, other: "VolumeGeometry", tolerance_mm: float = 1e-3) -> tuple[np.ndarray, np.ndarray] | None:
        """(a signed permutation matrix, a whole offset) that give each of this grid's voxels (i, j, k) as other's:
        where this grid's voxel centres lie on other's, its axes perhaps reordered or reversed (the same image
        reoriented, or a box cut from it or around it, as a segmentation saved cropped to its content); None
        otherwise."""
        to_other = np.linalg.inv(other.ijk_to_ras)
        steps = to_other[:3, :3] @ self.ijk_to_ras[:3, :3]
        permutation = np.round(steps)
        start = to_other[:3, :3] @ self.ijk_to_ras[:3, 3] + to_other[:3, 3]
        offset = np.round(start)
        other_steps = other.ijk_to_ras[:3, :3]
        if (not np.array_equal(np.abs(permutation).sum(axis=0), np.ones(3))
                or not np.array_equal(np.abs(permutation).sum(axis=1), np.ones(3))
                or np.abs(other_steps @ (steps - permutation)).max() * max(*self.size_ijk) > tolerance_mm
                or np.abs(other_steps @ (start - offset)).max() > tolerance_mm):
            return None
        return permutation.astype(int), offset.astype(int)


def grid_fault(geometry: VolumeGeometry) -> str:
    """What makes a volume's geometry, as its header gives it, no scan's: values that are not numbers, voxels of no
    size or a metre or larger, or axes along one direction; "" where it is none of these."""
    unknown = "; the image's geometry is unknown: correct the header, or export the image again"
    if not np.isfinite(geometry.ijk_to_ras).all():
        return ("the header's voxel size, orientation or position holds values that are not numbers (NaN or "
                f"infinite){unknown}")
    if not ((geometry.spacing_mm > 0) & (geometry.spacing_mm <= MAX_VOXEL_MM)).all():
        sizes = " × ".join(f"{size:.4g}" for size in geometry.spacing_mm)
        return f"the header gives voxels of {sizes} mm, of no scan (a number of no meaning?){unknown}"
    if abs(np.linalg.det(geometry.directions_ras)) < MAX_RIGHT_ANGLE_COSINE:
        return f"the header's orientation lays two of the image's axes along one direction{unknown}"
    return ""


def ras_to_lps(points_ras: np.ndarray) -> np.ndarray:
    return np.asarray(points_ras, float) @ LPS_TO_RAS.T


@dataclass(frozen=True)
class AxialLayout:
    """How an input array ``[k, j, i]`` is re-ordered into the axial stack ``[slice, row, column]``."""

    slice_axis: int
    row_axis: int
    column_axis: int
    flip_rows: bool
    flip_columns: bool
    geometry: VolumeGeometry

    @classmethod
    def from_geometry(cls, geometry: VolumeGeometry) -> "AxialLayout":
        if fault := grid_fault(geometry):
            raise GeometryError(fault)
        directions = geometry.directions_ras
        # numpy axis a is ITK axis 2 - a
        axis_direction = {a: directions[:, 2 - a] for a in range(3)}
        size = {a: geometry.size_ijk[2 - a] for a in range(3)}
        spacing = {a: geometry.spacing_mm[2 - a] for a in range(3)}
        single = [a for a in range(3) if size[a] == 1]
        slice_axis = single[0] if len(single) == 1 else max(range(3), key=lambda a: abs(axis_direction[a][2]))
        if len(single) != 1 and max(spacing.values()) / min(spacing.values()) > ISOTROPIC_RATIO:
            thickest = thickest_axis(spacing)
            if thickest is not None:
                slice_axis = thickest  # the acquisition's own slices: checked below
        normal = axis_direction[slice_axis]
        if not is_axial_normal(normal):
            kind = AXIS_NAMES[int(np.argmax(np.abs(normal)))]
            raise GeometryError(f"{kind} stack, {spacing[slice_axis]:.1f} mm slices: load the axial series")
        row_axis, column_axis = sorted((a for a in range(3) if a != slice_axis),
                                       key=lambda a: -abs(axis_direction[a][1]))
        if (cosine := abs(float(axis_direction[row_axis] @ axis_direction[column_axis]))) > MAX_RIGHT_ANGLE_COSINE:
            raise GeometryError(f"the image's rows and columns are {math.degrees(math.acos(cosine)):.0f}° apart, not "
                                "at right angles (a sheared grid, which no scanner acquires): the networks would see "
                                "the anatomy sheared, and the masks could not be saved on its grid; resample it onto "
                                "a grid at right angles")
        return cls(
            slice_axis=slice_axis,
            row_axis=row_axis,
            column_axis=column_axis,
            flip_rows=bool(axis_direction[row_axis][1] > 0),  # rows must run anterior → posterior
            flip_columns=bool(axis_direction[column_axis][0] > 0),  # columns must run patient right → left
            geometry=geometry,
        )

    @property
    def stack_shape(self) -> tuple[int, int, int]:
        size = {a: self.geometry.size_ijk[2 - a] for a in range(3)}
        return size[self.slice_axis], size[self.row_axis], size[self.column_axis]

    def to_stack(self, array: np.ndarray) -> np.ndarray:
        stack = np.transpose(array, (self.slice_axis, self.row_axis, self.column_axis))
        if self.flip_rows:
            stack = stack[:, ::-1, :]
        if self.flip_columns:
            stack = stack[:, :, ::-1]
        return stack

    def from_stack(self, stack: np.ndarray) -> np.ndarray:
        if self.flip_rows:
            stack = stack[:, ::-1, :]
        if self.flip_columns:
            stack = stack[:, :, ::-1]
        return np.transpose(stack, np.argsort((self.slice_axis, self.row_axis, self.column_axis)))

    def stack_index_to_ras(self) -> np.ndarray:
        """4x4 matrix mapping (slice, row, column, 1) of the stack to RAS."""
        order = (self.slice_axis, self.row_axis, self.column_axis)
        return _numpy_index_to_ras(self.geometry) @ _reordered_index_map(order, (False, self.flip_rows,
                                                                                  self.flip_columns),
                                                                         self.stack_shape)

    def slice_grid(self, slice_index: int) -> PlaneGrid:
        matrix = self.stack_index_to_ras()
        n_slices, n_rows, n_columns = self.stack_shape
        return PlaneGrid(
            origin_ras=matrix[:3, 3] + slice_index * matrix[:3, 0],
            row_step_ras=matrix[:3, 1].copy(),
            column_step_ras=matrix[:3, 2].copy(),
            shape=(n_rows, n_columns),
        )

    @property
    def slice_spacing_mm(self) -> float:
        """The distance between neighbouring slices along their normal."""
        return abs(float(self.stack_index_to_ras()[:3, 0] @ self.slice_grid(0).normal_ras))

    def slice_position_mm(self, slice_index: int) -> float:
        """Superior (S) coordinate of the slice centre."""
        return float(self.slice_grid(slice_index).centre_ras[2])


def _numpy_index_to_ras(geometry: VolumeGeometry) -> np.ndarray:
    """4x4 matrix mapping a numpy index (k, j, i, 1) to RAS."""
    return geometry.ijk_to_ras @ np.eye(4)[[2, 1, 0, 3]]


def _reordered_index_map(order: tuple[int, ...], flips: tuple[bool, ...], new_shape: tuple[int, ...]) -> np.ndarray:
    """4x4 matrix from an index of ``flip(transpose(array, order))`` to the index of the original array."""
    matrix = np.zeros((4, 4))
    matrix[3, 3] = 1.0
    for new_axis, old_axis in enumerate(order):
        matrix[old_axis, new_axis] = -1.0 if flips[new_axis] else 1.0
        matrix[old_axis, 3] = new_shape[new_axis] - 1 if flips[new_axis] else 0.0
    return matrix


def reordered(array: np.ndarray, geometry: VolumeGeometry, order: tuple[int, ...],
              flips: tuple[bool, ...]) -> tuple[np.ndarray, VolumeGeometry]:
    """The same physical image stored with its numpy axes transposed by ``order`` and then flipped."""
    new = np.transpose(array, order)
    for axis, flip in enumerate(flips):
        if flip:
            new = np.flip(new, axis)
    numpy_to_ras = _numpy_index_to_ras(geometry) @ _reordered_index_map(order, flips, new.shape)
    ijk_to_ras = numpy_to_ras @ np.eye(4)[[2, 1, 0, 3]]
    return np.ascontiguousarray(new), VolumeGeometry(tuple(int(n) for n in new.shape[::-1]), ijk_to_ras)


def floor_pixels(count: float) -> int:
    """The whole pixels at or below a pixel count (an index or a length in pixels), float rounding aside
    (WHOLE_PIXEL_TOLERANCE)."""
    return int(np.floor(count + WHOLE_PIXEL_TOLERANCE))


def ceil_pixels(count: float) -> int:
    """The whole pixels at or above a pixel count, float rounding aside (WHOLE_PIXEL_TOLERANCE)."""
    return int(np.ceil(count - WHOLE_PIXEL_TOLERANCE))


def thickest_axis(spacing_mm: dict[int, float]) -> int | None:
    """The axis (of spacing_mm, by axis) whose spacing is the thickest, where no other's is alike
    (SAME_SPACING_TOLERANCE): a volume that is not 3-D isotropic was acquired in slices along it. None where two
    share it: a 3-D acquisition whose slices lie closer than its pixels' sides (one interpolated between its slices),
    whose slices are then told by their direction alone."""
    thickest = max(spacing_mm, key=spacing_mm.__getitem__)
    alike = [axis for axis in spacing_mm
             if math.isclose(spacing_mm[axis], spacing_mm[thickest], rel_tol=SAME_SPACING_TOLERANCE)]
    return thickest if len(alike) == 1 else None


def is_axial_normal(normal: np.ndarray) -> bool:
    """A slice normal (RAS or LPS) within 45° of the superior-inferior axis: the slices are axial."""
    return bool(abs(normal[2]) >= np.cos(np.radians(45.0)) * np.linalg.norm(normal))


def needs_reslice(geometry: VolumeGeometry) -> bool:
    """A near-isotropic 3-D volume whose closest-to-axial axis is tilted more than RESLICE_ANGLE_DEG."""
    spacing = geometry.spacing_mm
    if min(geometry.size_ijk) == 1 or spacing.max() / spacing.min() > ISOTROPIC_RATIO:
        return False
    tilt = np.degrees(np.arccos(np.abs(geometry.directions_ras[2, :]).max()))
    return bool(tilt > RESLICE_ANGLE_DEG)


def resliced_geometry(source: VolumeGeometry) -> VolumeGeometry:
    """The grid a volume that needs_reslice is resampled onto: axes along L, P and S (as an LPS image's), the
    source's finest spacing, holding all its corners."""
    spacing = float(source.spacing_mm.min())
    corners = np.array([[i, j, k, 1] for i in (0, source.size_ijk[0] - 1) for j in (0, source.size_ijk[1] - 1)
                        for k in (0, source.size_ijk[2] - 1)], float)
    corners_lps = (source.ijk_to_ras @ corners.T).T[:, :3] @ LPS_TO_RAS
    low_lps, high_lps = corners_lps.min(axis=0), corners_lps.max(axis=0)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS * spacing
    matrix[:3, 3] = LPS_TO_RAS @ low_lps
    return VolumeGeometry(tuple(ceil_pixels((h - lo) / spacing) + 1 for lo, h in zip(low_lps, high_lps)), matrix)


def stack_layout(source: VolumeGeometry) -> AxialLayout:
    """The axial stack a volume of this geometry is measured as (on its resliced grid when it needs_reslice),
    without its voxels."""
    return AxialLayout.from_geometry(resliced_geometry(source) if needs_reslice(source) else source)
