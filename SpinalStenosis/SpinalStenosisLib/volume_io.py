"""Read images (NIfTI, NRRD, MHA, DICOM series folder) into axial stacks and write label images back."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .geometry import AxialLayout, GeometryError, LPS_TO_RAS, VolumeGeometry, is_axial_normal, needs_reslice

LABEL_VALUES = {1: "canal", 2: "left_foramen", 3: "right_foramen"}
MAX_VOXELS_IN_MEMORY = 256 * 1024 * 1024  # larger volumes are read slice by slice
SAME_ORIENTATION_DEG = 1.0  # DICOM slices whose normals differ more than this belong to differently angled blocks
EVEN_SPACING_TOLERANCE = 0.1  # a gap differing from the median by more than this fraction of it is uneven


class InputError(ValueError):
    """The input file cannot be used; the message is meant for the user."""


def _sitk():
    import SimpleITK as sitk  # deferred: Slicer loads the module before dependencies are checked

    return sitk


def _dicom_series_files(folder: Path) -> list[str]:
    """The files of the series to measure in a DICOM folder (e.g. a whole study): of the series whose slices are
    axial, the one with the most slices; when none is axial, the largest (the geometry check then says why)."""
    sitk = _sitk()
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise InputError(f"{folder}: no DICOM series in this folder")
    series = [sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids]
    axial = [files for files in series if _has_axial_slices(files[0])]
    return max(axial or series, key=len)


def _has_axial_slices(path: str) -> bool:
    try:
        _, header = _reader_for(Path(path))
    except InputError:
        return False
    return header.GetDimension() == 3 and is_axial_normal(VolumeGeometry.from_sitk(header).directions_ras[:, 2])


def _reader_for(path: Path):
    sitk = _sitk()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(_dicom_series_files(path))
        reader.MetaDataDictionaryArrayUpdateOn()  # each file's header, kept for dicom_series_warnings
        return reader, None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError(f"{path}: not an image SimpleITK can read") from None
    return reader, reader


def _check_header(path: Path, dimension: int, components: int, size: tuple[int, ...]) -> None:
    if components != 1:
        raise InputError(f"{path}: {components}-component (e.g. RGB) image; a grey-scale MR image is needed")
    if dimension == 2:
        raise InputError(f"{path}: 2-D image without slice geometry; save the axial series as a 3-D volume")
    if dimension != 3:
        raise InputError(f"{path}: {dimension}-D image; a 3-D axial stack is needed")
    if min(size) == 0:
        raise InputError(f"{path}: empty image ({'x'.join(map(str, size))} voxels)")


def _read_whole(path: Path, reader=None):
    """The whole image, read by reader (by default a new one for path)."""
    reader = reader or _reader_for(path)[0]
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(f"{path}: cannot be read ({str(error).strip().splitlines()[-1]})") from None
    _check_header(path, image.GetDimension(), image.GetNumberOfComponentsPerPixel(), image.GetSize())
    return image


@dataclass
class AxialVolume:
    """An input volume seen as an axial stack ``[slice, row, column]`` (see :mod:`geometry`)."""

    layout: AxialLayout
    source_geometry: VolumeGeometry  # the input file's own grid (differs from layout.geometry when resliced)
    read_slice: Callable[[int], np.ndarray]
    to_source_grid: Callable[[np.ndarray], np.ndarray]  # stack labels → input array [k, j, i]
    from_source_grid: Callable[[np.ndarray], np.ndarray]  # input labels [k, j, i] → stack labels
    warnings: list[str] = field(default_factory=list)  # what the user must know about how the input was read

    @property
    def n_slices(self) -> int:
        return self.layout.stack_shape[0]

    def stack(self) -> np.ndarray:
        return np.stack([self.read_slice(s) for s in range(self.n_slices)])


def _checked_float(path: Path, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InputError(f"{path}: the image contains NaN or infinite voxels")
    return array


def open_axial(path: Path | str, max_voxels_in_memory: int = MAX_VOXELS_IN_MEMORY) -> AxialVolume:
    """Open an image file or DICOM folder as an axial stack; reslice a tilted 3-D volume to axial."""
    path = Path(path)
    reader, file_reader = _reader_for(path)
    if file_reader is not None:
        size = file_reader.GetSize()
        _check_header(path, file_reader.GetDimension(), file_reader.GetNumberOfComponents(), size)
        geometry = VolumeGeometry.from_sitk(file_reader)  # the reader has the image's geometry getters
        if int(np.prod(size)) > max_voxels_in_memory and not needs_reslice(geometry):
            return _streamed(path, geometry)
    volume = _axial_from_image(path, _read_whole(path, reader))
    if file_reader is None:
        volume.warnings = dicom_series_warnings(reader)
    return volume


def dicom_series_warnings(series_reader) -> list[str]:
    """What SimpleITK's one-stack reading gets wrong about a DICOM series (read by series_reader, with its files'
    headers kept): slices in differently angled blocks (one block per disc is common for lumbar axial T2) or unevenly
    spaced. It reads them as one stack of parallel, evenly spaced slices; the in-plane measurements hold, the slice
    positions do not."""
    normals, positions = [], []
    for n in range(len(series_reader.GetFileNames())):
        if not (series_reader.HasMetaDataKey(n, "0020|0037") and series_reader.HasMetaDataKey(n, "0020|0032")):
            return []
        cosines = np.array([float(v) for v in series_reader.GetMetaData(n, "0020|0037").split("\\")])
        normals.append(np.cross(cosines[:3], cosines[3:]))
        positions.append(np.array([float(v) for v in series_reader.GetMetaData(n, "0020|0032").split("\\")]))
    orientations: list[np.ndarray] = []
    for normal in normals:
        if all(abs(float(normal @ seen)) < np.cos(np.radians(SAME_ORIENTATION_DEG)) for seen in orientations):
            orientations.append(normal)
    consequence = ("SimpleITK reads it as one stack of parallel, evenly spaced slices: the in-plane measurements "
                   "hold, but z_mm and the places of the rulers and masks along the spine do not; load the series "
                   "in 3D Slicer for exact positions")
    if len(orientations) > 1:
        return [f"the DICOM series has slices at {len(orientations)} different angles (angled blocks); {consequence}"]
    gaps = np.diff(sorted(float(p @ normals[0]) for p in positions))
    if len(gaps) and np.abs(gaps - np.median(gaps)).max() > EVEN_SPACING_TOLERANCE * abs(np.median(gaps)):
        return [f"the DICOM series' slices are unevenly spaced ({gaps.min():.1f}-{gaps.max():.1f} mm apart, or a "
                f"slice is missing); {consequence}"]
    return []


def axial_from_array(voxels: np.ndarray, geometry: VolumeGeometry, name: str = "volume") -> AxialVolume:
    """An in-memory volume (array [k, j, i]) as an axial stack, e.g. a Slicer volume node's voxels."""
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.asarray(voxels, np.float32))
    geometry.apply_to_sitk(image)
    return _axial_from_image(Path(name), image)


def _axial_from_image(path: Path, image) -> AxialVolume:
    sitk = _sitk()
    source = VolumeGeometry.from_sitk(image)
    if needs_reslice(source):
        return _resliced(path, image, source)
    layout = _layout(path, source)
    stack = layout.to_stack(_checked_float(path, sitk.GetArrayFromImage(image)))
    return AxialVolume(layout, source, lambda s: stack[s], layout.from_stack, layout.to_stack)


def _layout(path: Path, geometry: VolumeGeometry) -> AxialLayout:
    try:
        return AxialLayout.from_geometry(geometry)
    except GeometryError as error:
        raise InputError(f"{path.name}: {error}") from None


def _streamed(path: Path, geometry: VolumeGeometry) -> AxialVolume:
    sitk = _sitk()
    layout = _layout(path, geometry)
    itk_axis = 2 - layout.slice_axis

    def read_slice(slice_index: int) -> np.ndarray:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        index, size = [0, 0, 0], list(geometry.size_ijk)
        index[itk_axis], size[itk_axis] = slice_index, 1
        reader.SetExtractIndex(index)
        reader.SetExtractSize(size)
        return layout.to_stack(_checked_float(path, sitk.GetArrayFromImage(reader.Execute())))[0]

    return AxialVolume(layout, geometry, read_slice, layout.from_stack, layout.to_stack)


def _resliced(path: Path, image, source: VolumeGeometry) -> AxialVolume:
    """Resample a tilted near-isotropic 3-D volume onto an RAS-aligned axial grid (and labels back, nearest)."""
    sitk = _sitk()
    spacing = float(source.spacing_mm.min())
    corners = np.array([[i, j, k, 1] for i in (0, source.size_ijk[0] - 1) for j in (0, source.size_ijk[1] - 1)
                        for k in (0, source.size_ijk[2] - 1)], float)
    corners_ras = (source.ijk_to_ras @ corners.T).T[:, :3]
    # LPS-aligned output grid: i along L, j along P, k along S
    low_lps = (corners_ras @ LPS_TO_RAS).min(axis=0)
    high_lps = (corners_ras @ LPS_TO_RAS).max(axis=0)
    size = [int(np.ceil((h - lo) / spacing)) + 1 for lo, h in zip(low_lps, high_lps)]
    axial = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, [float(v) for v in low_lps],
                          [spacing] * 3, [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], 0.0, sitk.sitkFloat32)
    geometry = VolumeGeometry.from_sitk(axial)
    layout = _layout(path, geometry)
    stack = layout.to_stack(_checked_float(path, sitk.GetArrayFromImage(axial)))

    def to_source_grid(stack_labels: np.ndarray) -> np.ndarray:
        labels = sitk.GetImageFromArray(layout.from_stack(stack_labels).astype(np.uint8))
        geometry.apply_to_sitk(labels)
        back = sitk.Resample(labels, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        return sitk.GetArrayFromImage(back)

    def from_source_grid(source_labels: np.ndarray) -> np.ndarray:
        labels = sitk.GetImageFromArray(np.asarray(source_labels, np.uint8))
        source.apply_to_sitk(labels)
        resampled = sitk.Resample(labels, axial, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        return layout.to_stack(sitk.GetArrayFromImage(resampled))

    return AxialVolume(layout, source, lambda s: stack[s], to_source_grid, from_source_grid)


def read_labels(path: Path | str, expected: VolumeGeometry) -> np.ndarray:
    """Read a label image (1 canal, 2 left foramen, 3 right foramen) that must lie on the input's grid."""
    sitk = _sitk()
    path = Path(path)
    image = _read_whole(path)
    geometry = VolumeGeometry.from_sitk(image)
    if not geometry.matches(expected, tolerance_mm=1e-2):
        raise InputError(f"{path.name}: labels are on a different grid than the image "
                         f"({'x'.join(map(str, geometry.size_ijk))} vs {'x'.join(map(str, expected.size_ijk))} "
                         "voxels or another origin/spacing/direction)")
    array = sitk.GetArrayFromImage(image)
    if not np.isfinite(array).all() or not np.all(np.mod(array, 1) == 0):
        raise InputError(f"{path.name}: label values must be whole numbers 0-3")
    unknown = sorted(set(np.unique(array).astype(int).tolist()) - {0, *LABEL_VALUES})
    if unknown:
        raise InputError(f"{path.name}: unknown label values {unknown}; expected 1 canal, 2 left foramen, "
                         "3 right foramen")
    return array.astype(np.uint8)


def write_labels(path: Path | str, labels: np.ndarray, geometry: VolumeGeometry) -> None:
    """Write a uint8 label array ``[k, j, i]`` with the given geometry."""
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.asarray(labels, dtype=np.uint8))
    geometry.apply_to_sitk(image)
    sitk.WriteImage(image, str(path), True)


def write_image(path: Path | str, voxels: np.ndarray, geometry: VolumeGeometry) -> None:
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.asarray(voxels))
    geometry.apply_to_sitk(image)
    sitk.WriteImage(image, str(path), True)
