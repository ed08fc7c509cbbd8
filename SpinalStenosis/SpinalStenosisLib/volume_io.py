"""Read images (NIfTI, NRRD, MHA, DICOM series folder) into axial stacks and write label images back."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .dicom_series import (SeriesChoice, SlicePlanes, chosen_series, frame_planes, header_fault, header_gaps,
                           header_reader, header_value, is_dicom, is_dicom_file, itk_warnings_hidden, mixed_pixel_grids,
                           named_region, one_image_per_position, one_position_warnings, one_stack_warnings,
                           rescale_fault, series_beside_warnings, shown_inverted, slice_planes, slice_thickness_mm,
                           stack_blocks, uneven_spacing)
from .geometry import AxialLayout, GeometryError, VolumeGeometry, grid_fault, needs_reslice, resliced_geometry
from .image_files import (EXIF_TURNS, as_displayed, displayed_turn, exif_orientation, header_warnings, mirrored_axes,
                          misnamed_fault, negative_size_text, stored_voxel_fault, voxel_fault)
from .visibility import padding_value

LABEL_VALUES = {1: "canal", 2: "left_foramen", 3: "right_foramen"}
# each label value's segment in a Slicer segmentation (scene.SEGMENTS): its ID and name
SEGMENT_IDS_AND_NAMES = {1: ("SpinalCanal", "Spinal canal"), 2: ("LeftNeuralForamen", "Left neural foramen"),
                         3: ("RightNeuralForamen", "Right neural foramen")}
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")  # images without patient geometry
IMAGE_SUFFIXES = (*PICTURE_SUFFIXES, ".nii", ".gz", ".hdr", ".nrrd", ".nhdr", ".mha", ".mhd")
MAX_VOXELS_IN_MEMORY = 256 * 1024 * 1024  # larger volumes are read slice by slice
MAX_PIXEL_MM = 10.0  # the largest pixel --pixel-mm takes: beyond it a picture holds no measurable canal
COLOURS = ("red", "green", "blue")
SAME_IMAGE_CORRELATION = 0.98  # colour channels this alike are one image (grey saved in colour, or a lossy copy)
BLEND_PIXELS = 1_000_000  # a sample this large tells a blend of colour channels (_blends)
NON_FINITE_WARNING = ("the image has voxels that hold no number (NaN or infinite, as a resampling tool may fill beyond "
                      "the imaged area): they were measured as 0")
WRAPPED_BYTES_WARNING = ("the image is stored as signed 8-bit integers, some below 0: 8-bit data (0-255) written as "
                         "signed, its brighter half wrapped below 0; they were read as unsigned (0-255)")


class InputError(ValueError):
    """The input file cannot be used; the message is meant for the user."""


def input_name(path: Path | str) -> str:
    """An input's name without its image suffix (a DICOM folder's name as it is, a DICOMDIR's folder's): names its
    output folder among several inputs and its volume in a scene."""
    path = _study_folder(Path(path).resolve())
    return path.name if path.is_dir() else path.name[:len(path.name) - len(image_suffix(path.name))]


def image_suffix(name: str) -> str:
    """A file name's image suffix: ".nii.gz" for a gzipped NIfTI file, else its last suffix ("" without one)."""
    return name[-len(".nii.gz"):] if name.lower().endswith(".nii.gz") else Path(name).suffix


def _study_folder(path: Path) -> Path:
    """The input path as read: a DICOMDIR file (a CD's index of its study) stands for its folder, which holds the
    study."""
    return path.parent if path.name.upper() == "DICOMDIR" and path.is_file() else path


def openable(path: Path | str) -> Path:
    """An input's path as read (_study_folder); an InputError where it, or the name of a folder or DICOM file in its
    folder, holds bytes that are not UTF-8 (not_utf8), which SimpleITK cannot open, or where it is neither a file nor
    a folder (a device or a pipe, which reading would wait on for ever)."""
    path = _study_folder(Path(path))
    if shown := not_utf8(path):
        raise InputError(f"{shown}: the path holds bytes that are not UTF-8 (a name written on another system, as a "
                         "ZIP archive made on Windows may unpack?), which SimpleITK cannot open; rename it")
    if path.exists() and not path.is_file() and not path.is_dir():
        raise InputError(f"{path}: neither a file nor a folder (a device, a pipe or a socket): give an image file or "
                         "a DICOM folder")
    if path.is_dir() and (names := [shown for inner in path.rglob("*") if (shown := not_utf8(inner.name))
                                    and (inner.is_dir() or is_dicom_file(inner))]):
        raise InputError(f"{path}: {len(names)} of the names in it hold bytes that are not UTF-8 (e.g. {names[0]}: "
                         "written on another system, as a ZIP archive made on Windows may unpack?), which SimpleITK "
                         "cannot open; rename them")
    return path


def not_utf8(path: Path | str) -> str:
    """A path (or name) shown with its bytes that are not UTF-8 escaped, where it holds any: SimpleITK cannot take
    such a path, and the process aborts; "" for any other."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return ""


def _sitk():
    import SimpleITK as sitk  # deferred: Slicer loads the module before dependencies are checked

    return sitk


def _chosen_series(folder: Path, series: str | None = None) -> SeriesChoice:
    """The series to measure in a DICOM folder, among those answering to series (see
    :func:`dicom_series.chosen_series`)."""
    try:
        choice = chosen_series(folder, series)
    except ValueError as error:
        raise InputError(f"{folder}: {error}") from None
    if not choice.files:
        images = sorted(path.name for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
        hint = (f"; it holds an image file: give it as the input ({folder / images[0]})" if len(images) == 1 else
                f"; it holds {len(images)} image files ({images[0]}, ...): give them as inputs, each is measured "
                f"on its own (e.g. {folder / ('*' + image_suffix(images[0]))})" if images else "")
        unread = "".join(f"; {warning}" for warning in choice.warnings)  # DICOM files it cannot read
        raise InputError(f"{folder}: no DICOM series in this folder or its subfolders{hint}{unread}")
    return choice


def _dicom_images(path: Path, series: str | None = None, image_set: str | None = None
                  ) -> tuple[SeriesChoice, SlicePlanes | None] | None:
    """The DICOM images to measure at path, with their slice planes (each header read once; None when a file has
    none), one image at each slice position (_one_set): the series a folder holds (_chosen_series), or the frames
    of a multi-frame DICOM file (dicom_series.frame_planes); None for another file."""
    if path.is_dir():
        choice = _chosen_series(path, series)
        return _one_set(path, choice, slice_planes(choice.files), image_set)
    if not path.is_file():
        return None  # reading it says why
    frames = frame_planes(str(path)) if series is None else None
    if frames is not None:
        return _one_set(path, SeriesChoice([str(path)], []), frames, image_set)
    if series is not None or image_set is not None:
        chosen = ("a series is chosen in a DICOM folder" if series is not None
                  else "an image set is chosen in a DICOM folder or multi-frame file")
        raise InputError(f"{path}: {chosen}; this is a file")
    return None


def _one_set(path: Path, choice: SeriesChoice, planes: SlicePlanes | None, image_set: str | None = None
             ) -> tuple[SeriesChoice, SlicePlanes | None]:
    """Of a series' images (its files, or its multi-frame files' frames) with their planes, one at each slice
    position: those of image_set, or the preferred ones (dicom_series.one_image_per_position)."""
    if planes is None:
        if image_set is not None:
            raise InputError(f"{path}: --image-set {image_set!r}: the series' files do not each give one slice's "
                             "position, so its images at each position cannot be told apart")
        return choice, None
    if planes.header_fault:
        raise InputError(f"{path}: {planes.header_fault}")
    try:
        kept_planes, kept, warnings = one_image_per_position(planes, image_set)
    except ValueError as error:
        raise InputError(f"{path}: {error}") from None
    files = choice.files if planes.frames is not None else [choice.files[n] for n in kept]
    return SeriesChoice(files, choice.warnings + warnings), kept_planes


def _check_pixel_grids(folder: Path, planes: SlicePlanes, files: list[int]) -> None:
    """An InputError where these files of the series (indices) are not on one pixel grid: SimpleITK cannot stack
    them."""
    if reason := mixed_pixel_grids(planes, files):
        raise InputError(f"{folder}: the DICOM series cannot be read as a stack: {reason}; save each part as a "
                         "series of its own")


def _is_archive(path: Path) -> bool:
    """Whether the file at path is a ZIP or tar archive (by its contents, whatever its name)."""
    import tarfile
    import zipfile

    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def _grey_with_alpha(path: Path) -> bool:
    """Whether a picture file is grey with an alpha channel (Pillow's mode LA), which SimpleITK cannot read."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return picture.mode in ("LA", "La")
    except OSError:
        return False


def _reader_for(path: Path):
    """A reader of the image file at path (its header read), or of the series to measure in a DICOM folder."""
    sitk = _sitk()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return _series_reader(_chosen_series(path).files)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with itk_warnings_hidden():  # as _read
            reader.ReadImageInformation()
    except RuntimeError as error:
        reason = _itk_reason(error)
        unknown_format = reason.startswith("Unable to determine ImageIO reader")  # the message says it already
        detail = "" if unknown_format else f" ({reason})"
        if unknown_format and _is_archive(path):
            detail = ("; it is an archive (as a PACS or a web viewer exports a study): unpack it and give the folder "
                      "it holds (a DICOM series or study) or the image file in it")
        elif path.suffix.lower() in PICTURE_SUFFIXES and _grey_with_alpha(path):
            raise InputError(f"{path}: a grey picture with an alpha channel (transparency), which SimpleITK cannot "
                             "read: save it without one (grey or RGB)") from None
        elif unknown_format and (misnamed := misnamed_fault(path)):
            raise InputError(f"{path}: {misnamed}") from None
        elif unknown_format and is_dicom_file(path):
            raise InputError(f"{path}: a DICOM file, but not an image SimpleITK can read (damaged, or a copy cut "
                             "short; or not an image, as a report or a presentation state)") from None
        elif fault := rescale_fault(path):
            raise InputError(f"{path}: {fault}") from None
        elif fault := voxel_fault(path):  # an NRRD header whose data file is missing
            raise InputError(f"{path}: {fault}; copy it again") from None
        raise InputError(f"{path}: not an image SimpleITK can read{detail}") from None
    if fault := voxel_fault(path, reader):
        raise InputError(f"{path}: {fault}; copy it again")
    if is_dicom_file(path) and (fault := header_fault(reader, path)):
        raise InputError(f"{path}: {fault}")
    return reader


def stored_file_findings(path: Path, volume: AxialVolume) -> tuple[str, list[str]]:
    """What measure finds in the image file at path that volume was read from by another reader, such as the file
    a 3D Slicer volume was loaded from, which Slicer's ITK reader loads without a word: what is wrong with its voxels
    (a NIfTI, MetaImage or NRRD file, or a picture, cut short or damaged: image_files.voxel_fault), and what its
    header leaves unsure (image_files.header_warnings) while the volume still lies as the file gives it (not moved,
    resampled or given other spacing since); ("", []) for a file that cannot be read or named to SimpleITK
    (not_utf8)."""
    if not path.is_file() or not_utf8(path):
        return "", []
    stat = path.stat()
    if fault := stored_voxel_fault(str(path), stat.st_mtime_ns, stat.st_size):
        return fault, []
    with itk_warnings_hidden():
        reader = header_reader(path)
    if reader is None or reader.GetDimension() != 3:
        return "", []
    as_header = VolumeGeometry.from_sitk(reader)
    if mirrored := mirrored_axes(reader):
        as_itk = VolumeGeometry(as_header.size_ijk, as_header.ijk_to_ras @ np.diag(
            [-1.0 if axis in mirrored else 1.0 for axis in range(3)] + [1.0]))
        if as_itk.matches(volume.source_geometry):
            return "", [f"the volume was loaded from {path.name}, whose header {negative_size_text(reader)}: the left "
                        "and right sides may be swapped; correct the header, or check which foramen is left and which "
                        "is right"]
    if not as_header.matches(volume.source_geometry):
        return "", []
    return "", header_warnings(path, reader, 2 - volume.layout.slice_axis)


def _itk_reason(error: RuntimeError) -> str:
    """What a SimpleITK error says went wrong: its line that says so ("ITK ERROR: ...", without that prefix; a
    matrix may follow it on lines of its own), or its last line where none does or that one ends in a colon (the
    reader's own trail follows it, the cause last, as NRRD's "fread got only ...")."""
    lines = str(error).strip().splitlines()
    line = next((line for line in lines if line.startswith(("ITK ERROR:", "sitk::ERROR:"))), lines[-1])
    line = lines[-1] if line.endswith(":") else line
    for prefix in ("ITK ERROR:", "sitk::ERROR:"):
        line = line.removeprefix(prefix)
    return re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", line.strip())  # the ITK object's name and address


def _read_images(path: Path, files: list[str], planes: SlicePlanes | None, images: list[int] | None = None,
                 pixel_mm: float | None = None, frame_voxels: dict[int, np.ndarray] | None = None) -> AxialVolume:
    """A series' images (its files, or its multi-frame files' frames; those at the indices images, by default all)
    read as one stack and checked (_checked_volume), each slice numbered as its image (with_image_numbers).
    frame_voxels: the multi-frame files' voxels as _frame_voxels read them, if read already."""
    if images is None:
        images = list(range(planes.n_images if planes is not None else len(files)))
    if planes is not None and planes.frames is not None:
        along = planes.normals[images[0]]  # the frames in order along it, as SimpleITK stacks a series' files
        images = sorted(images, key=lambda n: float(planes.positions[n] @ along))
        frames = planes.of_files(images)
        voxels = frame_voxels if frame_voxels is not None else _frame_voxels(path, files, frames)
        image = _checked_volume(path, _stacked_frames(voxels, frames), pixel_mm)
    else:
        image = _read_whole(path, _series_reader([files[n] for n in images]), pixel_mm)
    numbers = [planes.image_numbers[n] for n in images] if planes is not None else []
    if planes is not None and planes.shown_inverted:
        image = _from_lowest(image)
    return with_image_numbers(_axial_from_image(path, image), numbers)


def _from_lowest(image):
    """An image (SimpleITK) in float32, less its lowest value: a DICOM image stored MONOCHROME1, which SimpleITK
    reads as it is shown but below 0 (dicom_series.shown_inverted), from 0 up, as an MR image is."""
    sitk = _sitk()
    floats = sitk.Cast(image, sitk.sitkFloat32)
    return floats - float(sitk.GetArrayViewFromImage(floats).min())


def _frame_voxels(path: Path, files: list[str], planes: SlicePlanes) -> dict[int, np.ndarray]:
    """The voxels of the input's multi-frame DICOM files that hold planes' frames, by file index: [frame, row,
    column] ([..., channel] in colour)."""
    return {file: _sitk().GetArrayFromImage(_read(path, _series_reader([files[file]])))
            for file in dict.fromkeys(file for file, _ in planes.frames)}


def _stacked_frames(voxels: dict[int, np.ndarray], planes: SlicePlanes):
    """The frames (planes.frames, in order along their normal) of multi-frame files (their voxels, _frame_voxels)
    as one stack: as far apart as the first and last over their number, oriented as the first
    (dicom_series.stack_blocks and one_stack_warnings say where that is wrong)."""
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.stack([voxels[file][frame] for file, frame in planes.frames]),
                                   isVector=voxels[planes.frames[0][0]].ndim == 4)
    offsets_mm = planes.positions @ planes.normals[0]
    gap_mm = (offsets_mm[-1] - offsets_mm[0]) / max(len(offsets_mm) - 1, 1)
    image.SetSpacing((*map(float, planes.pixel_mm[0]), float(gap_mm) if gap_mm > 0 else planes.thickness_mm or 1.0))
    image.SetOrigin(tuple(float(v) for v in planes.positions[0]))
    image.SetDirection(tuple(float(v) for v in planes.directions[0].ravel()))
    return image


def with_image_numbers(volume: AxialVolume, image_numbers: list[str]) -> AxialVolume:
    """The volume read from a series' images (image_numbers: each one's, in the order read; "" where unknown), each
    slice numbered as its image (AxialVolume.image_numbers; a colour composite's channels too) where its slices are
    those images: stacked along the array's third axis, not resliced; and some number is known."""
    layout = volume.layout
    if (len(image_numbers) == volume.n_slices and any(image_numbers) and layout.slice_axis == 0
            and layout.geometry.matches(volume.source_geometry)):
        for numbered in (volume, *volume.colour_channels.values()):
            numbered.image_numbers = image_numbers
    return volume


def _series_reader(files: list[str]):
    """A reader of a DICOM series' files as one stack; of one file (a slice, or a multi-frame file) as it is."""
    sitk = _sitk()
    if len(files) == 1:
        reader = sitk.ImageFileReader()
        reader.SetFileName(files[0])
        return reader
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader


def _check_components(name: str, components: int) -> None:
    """An InputError for an image whose pixels are neither grey nor colour (RGB or RGBA)."""
    if components not in (1, 3, 4):
        complex_parts = " (a complex image's real and imaginary parts? give its magnitude)" if components == 2 else ""
        raise InputError(f"{name}: {components}-component image; a grey-scale (or RGB) MR image is needed"
                         + complex_parts)


def _check_header(path: Path, dimension: int, components: int, size: tuple[int, ...],
                  pixel_mm: float | None = None) -> None:
    _check_components(str(path), components)
    if pixel_mm is not None and not 0 < pixel_mm <= MAX_PIXEL_MM:
        raise InputError(f"{path}: --pixel-mm must be a positive size in mm, at most {MAX_PIXEL_MM:g} (an axial MR's "
                         "pixels are about 0.2-2 mm)")
    if dimension == 2 and pixel_mm is None:
        raise InputError(f"{path}: 2-D image without slice geometry; save the axial series as a 3-D volume, or give "
                         "--pixel-mm to measure it as one axial slice as displayed (anterior at the top, the "
                         "patient's left on the right)")
    if dimension == 3 and path.suffix.lower() in PICTURE_SUFFIXES:
        raise InputError(f"{path}: a stack of {size[2]} pictures ({path.suffix} pages) has no patient geometry (its "
                         "spacing is not the scan's, and it has no orientation); save the axial series as NIfTI, "
                         "NRRD or DICOM, or each page as a 2-D image to measure with --pixel-mm")
    if dimension >= 3 and pixel_mm is not None:
        raise InputError(f"{path}: a 3-D image has its own geometry; --pixel-mm is for 2-D images only")
    if dimension == 4 and size[3] > 1:
        raise InputError(f"{path}: a 4-D image of {size[3]} volumes (echoes, time points or diffusion directions?); "
                         "a 3-D axial stack is needed: give one of them")
    if dimension not in (2, 3, 4):
        raise InputError(f"{path}: {dimension}-D image; a 3-D axial stack is needed")
    if min(size) == 0:
        raise InputError(f"{path}: empty image ({'x'.join(map(str, size))} voxels)")


def _read(path: Path, reader):
    """The image reader reads (an InputError naming path where it cannot), ITK's warnings not shown: what they say
    the input's warnings say in the user's terms (a series' uneven slices: one_stack_warnings, uneven_spacing; a
    NIfTI sform's "unexpected scales": _sform_voxel_size_warnings)."""
    with itk_warnings_hidden():
        try:
            image = reader.Execute()
        except RuntimeError as error:
            files = reader.GetFileNames() if hasattr(reader, "GetFileNames") else [str(path)]  # a series' or one
            if fault := next((fault for file in files if (fault := rescale_fault(file))), ""):
                raise InputError(f"{path}: {fault}") from None
            raise InputError(f"{path}: cannot be read ({_itk_reason(error)})") from None
    if mirrored_axes(reader):  # as its header orients it, which VolumeGeometry.from_sitk(reader) follows
        image.SetDirection(reader.GetDirection())
    return image


def _read_whole(path: Path, reader=None, pixel_mm: float | None = None):
    """The whole image, read by reader (by default a new one for path); a 2-D image (with pixel_mm) as a one-slice
    axial volume (see :func:`displayed_slice`)."""
    return _checked_volume(path, _read(path, reader or _reader_for(path)), pixel_mm)


def _checked_volume(path: Path, image, pixel_mm: float | None = None):
    """An image read whole, checked as a volume to measure (_check_header); a 2-D one (with pixel_mm) as a one-slice
    axial volume (see :func:`displayed_slice`)."""
    _check_header(path, image.GetDimension(), image.GetNumberOfComponentsPerPixel(), image.GetSize(), pixel_mm)
    return displayed_slice(_picture_as_displayed(path, image), pixel_mm) if image.GetDimension() == 2 \
        else _one_volume(image)


def _picture_as_displayed(path: Path, image):
    """A 2-D image as a viewer shows it: turned as its EXIF orientation says where it is a picture with one (ITK
    reads the pixels as stored). An InputError for a TIFF picture so turned, whose Orientation tag ITK applies in
    part (its flips, not its turns)."""
    orientation, kind = exif_orientation(path)
    if orientation not in EXIF_TURNS:
        return image
    if kind == "TIFF":
        turn = EXIF_TURNS[orientation][3]
        raise InputError(f"{path}: a TIFF picture whose Orientation tag ({orientation}) has it {turn} for display, "
                         "which ITK applies only in part: save it as displayed (e.g. as PNG)")
    sitk = _sitk()
    pixels = as_displayed(sitk.GetArrayFromImage(image), orientation)
    return sitk.GetImageFromArray(np.ascontiguousarray(pixels), isVector=image.GetNumberOfComponentsPerPixel() > 1)


def _one_volume(image):
    """A 3-D image as it is; a 4-D one whose fourth axis is one long (_check_header refuses others), as some tools
    save a 3-D volume, as that volume."""
    return _sitk().Extract(image, [*image.GetSize()[:3], 0], [0, 0, 0, 0]) if image.GetDimension() == 4 else image


def displayed_slice(image, pixel_mm: float):
    """A 2-D image (e.g. a PNG) as a one-slice axial volume, read as a radiologist sees an axial slice: rows from
    anterior to posterior, columns from the patient's right to left (ITK's 2-D x, y are LPS), pixel_mm square
    pixels. Its own spacing and direction, if any, are replaced; its colours, if any, are kept."""
    sitk = _sitk()
    flat = sitk.Image(image)
    flat.SetSpacing((float(pixel_mm), float(pixel_mm)))
    flat.SetOrigin((0.0, 0.0))
    flat.SetDirection((1.0, 0.0, 0.0, 1.0))
    return sitk.JoinSeries(flat)


def distinct_colours(colours: np.ndarray) -> list[int]:
    """The channels of a colour image (array [..., channel], RGB or RGBA) that are images of their own, as in a
    composite of contrasts (e.g. T1 in one channel, T2 in another): each of the first three that is not blank and
    not the same image as one before it (correlated at SAME_IMAGE_CORRELATION or more), less one that is a blend of
    the two others (_blends). Empty when fewer than two are (grey saved in colour)."""
    channels = np.asarray(colours, np.float64)[..., :3].reshape(-1, min(colours.shape[-1], 3)).T
    kept: list[int] = []
    for c, channel in enumerate(channels):
        if channel.std() > 0 and all(np.corrcoef(channel, channels[k])[0, 1] < SAME_IMAGE_CORRELATION for k in kept):
            kept.append(c)
    if len(kept) == 3:
        blend = next((c for c in kept if _blends(channels[c], channels[[k for k in kept if k != c]])), None)
        kept = [k for k in kept if k != blend]
    return kept if len(kept) > 1 else []


def _blends(channel: np.ndarray, others: np.ndarray) -> bool:
    """Whether a colour channel is a blend of the others ([channel, pixel]): their sum with weights not below 0
    (and an offset) correlates with it at SAME_IMAGE_CORRELATION or more, as their mean, which a composite's third
    colour may hold, does. It shows nothing they do not. Judged on a million pixels at most, evenly spread."""
    step = max(1, channel.size // BLEND_PIXELS)
    channel, others = channel[::step], others[:, ::step]
    terms = np.column_stack([*others, np.ones(channel.size)])
    weights = np.linalg.lstsq(terms, channel, rcond=None)[0]
    return bool((weights[:-1] >= 0).all() and np.corrcoef(terms @ weights, channel)[0, 1] >= SAME_IMAGE_CORRELATION)


@dataclass
class AxialVolume:
    """An input volume seen as an axial stack ``[slice, row, column]`` (see :mod:`geometry`)."""

    layout: AxialLayout
    source_geometry: VolumeGeometry  # the input file's own grid (differs from layout.geometry when resliced)
    read_slice: Callable[[int], np.ndarray]
    to_source_grid: Callable[[np.ndarray], np.ndarray]  # stack labels → input array [k, j, i]
    from_source_grid: Callable[[np.ndarray], np.ndarray]  # input labels [k, j, i] → stack labels
    source_voxels: Callable[[], np.ndarray]  # the input's voxels [k, j, i] on source_geometry, as float32
    warnings: list[str] = field(default_factory=list)  # what the user must know about how the input was read
    named_region: str | None = None  # the spine region a DICOM header names (see dicom_series.named_region)
    slice_thickness_mm: float | None = None  # as a DICOM header gives it; None: unknown (taken as the spacing)
    # why the DICOM series it is a block of was read in blocks (dicom_series.stack_blocks); "" for one stack
    blocks_reason: str = ""
    # each slice's DICOM image as a viewer numbers it (dicom_series.SlicePlanes.image_numbers); empty where the
    # slices are not the images of a DICOM series as read (another file, a resliced series)
    image_numbers: list[str] = field(default_factory=list)
    # a colour composite's channels that are images of their own (distinct_colours), by colour; the volume itself
    # is the mean of its colours
    colour_channels: dict[str, AxialVolume] = field(default_factory=dict)

    @property
    def n_slices(self) -> int:
        return self.layout.stack_shape[0]

    def image_number(self, slice_index: int) -> str:
        """The DICOM image the slice is, as a viewer numbers it; "" where the slices are not one series' images."""
        return self.image_numbers[slice_index] if self.image_numbers else ""

    def stack(self) -> np.ndarray:
        return np.stack([self.read_slice(s) for s in range(self.n_slices)])


def _measurable(array: np.ndarray, warnings: list[str]) -> np.ndarray:
    """The voxels as float32, those that hold no number (NaN or infinite: what a resampling or registration tool may
    fill beyond the imaged area) and those of a negative padding value (visibility.padding_value) set to 0, as a
    scanner's padding is (visibility.padding); warnings says so, once for each. Signed 8-bit voxels below 0 are
    unsigned ones wrapped (an MR image holds no values below 0, and a CT's do not fit in 8 bits): read unsigned."""
    array = np.asarray(array)
    if array.dtype == np.int8 and (array < 0).any():
        _warn_once(warnings, WRAPPED_BYTES_WARNING)
        array = array.view(np.uint8)
    array = np.asarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        _warn_once(warnings, NON_FINITE_WARNING)
        array = np.where(finite, array, np.float32(0.0))
    padding = padding_value(array)
    if padding is None:
        return array
    _warn_once(warnings, f"the image is padded with {padding:g} beyond the imaged area (its lowest value, held by "
                         "whole regions of voxels, as a reslice or an export may fill them): they were measured as 0")
    return np.where(array == padding, np.float32(0.0), array)


def _warn_once(warnings: list[str], warning: str) -> None:
    if warning not in warnings:
        warnings.append(warning)


def open_axial(path: Path | str, max_voxels_in_memory: int = MAX_VOXELS_IN_MEMORY,
               pixel_mm: float | None = None, series: str | None = None, image_set: str | None = None
               ) -> AxialVolume:
    """Open an image file or DICOM folder as one axial stack; reslice a tilted 3-D volume to axial; a 2-D image
    only with pixel_mm (see :func:`displayed_slice`). A DICOM series in blocks is one stack here, as
    SimpleITK reads it (with a warning); :func:`open_axial_blocks` splits it. series: which of a DICOM folder's
    series to measure (its number, or a word of its description; see :func:`dicom_series.chosen_series`);
    image_set: which of the images the series holds at each slice position (see
    :func:`dicom_series.one_image_per_position`)."""
    path = openable(path)
    if (dicom := _dicom_images(path, series, image_set)) is not None:
        return _dicom_series(path, *dicom, pixel_mm)
    reader = _reader_for(path)
    size = reader.GetSize()
    _check_header(path, reader.GetDimension(), reader.GetNumberOfComponents(), size, pixel_mm)
    if reader.GetDimension() == 2:
        volume = _axial_from_image(path, displayed_slice(_picture_as_displayed(path, _read(path, reader)), pixel_mm))
        if turn := displayed_turn(path):
            volume.warnings.append(f"the picture's EXIF orientation has it {turn} for display: it was measured so, "
                                   "as a viewer shows it")
        return volume
    # the reader has the image's geometry getters; a 4-D one is read whole, as its 3-D volume (_one_volume)
    geometry = VolumeGeometry.from_sitk(reader) if reader.GetDimension() == 3 else None
    if geometry is not None and (fault := grid_fault(geometry)):  # before ITK refuses it in its own terms
        raise InputError(f"{path}: {fault}")
    if geometry is not None and reader.GetNumberOfComponents() == 1 and int(np.prod(size)) > max_voxels_in_memory \
            and not needs_reslice(geometry):
        volume = _streamed(path, geometry)
    else:
        image = _one_volume(_read(path, reader))  # its header checked above
        volume = _axial_from_image(path, _from_lowest(image) if is_dicom(reader) and shown_inverted(reader) else image)
    if is_dicom(reader):  # one DICOM file: what its header says, as a series' first file gives it
        volume.named_region, volume.slice_thickness_mm = named_region(reader), slice_thickness_mm(reader)
        volume.warnings += header_gaps(reader) + series_beside_warnings(path, reader)
        with_image_numbers(volume, [header_value(reader, "0020|0013").strip()])  # where it is one slice
    else:
        if mirrored_axes(reader):
            volume.warnings.append(f"the header {negative_size_text(reader)}: it was read as the orientation has it")
        volume.warnings += header_warnings(path, reader, 2 - volume.layout.slice_axis)
    return volume


def _dicom_series(path: Path, choice: SeriesChoice, planes: SlicePlanes | None,
                  pixel_mm: float | None = None) -> AxialVolume:
    """The series chosen in the DICOM folder at path (its planes read from their headers) read as one stack, with
    the choice and what that reading gets wrong (see :func:`dicom_series.one_stack_warnings`)."""
    if planes is not None:
        _check_pixel_grids(path, planes, list(range(planes.n_images)))
    volume = _read_images(path, choice.files, planes, pixel_mm=pixel_mm)
    volume.warnings[:0] = choice.warnings + one_stack_warnings(planes)
    if planes is not None:
        volume.named_region, volume.slice_thickness_mm = planes.named_region, planes.thickness_mm
    return volume


def open_axial_blocks(path: Path | str, pixel_mm: float | None = None, series: str | None = None,
                      image_set: str | None = None) -> list[AxialVolume]:
    """The axial stacks of an input: one, except for a DICOM series in blocks (see :func:`dicom_series.stack_blocks`:
    slices at several angles, as angled blocks one per disc are common for lumbar axial T2, parallel slices in fields
    of view moved or resized part way, or parallel runs parted by gaps), which gives one stack per block, each with
    its own geometry (as 3D Slicer's DICOM reader offers each orientation of a series as a volume of its own), so
    that every slice lies where it was imaged. Slices at a non-axial angle in the series (e.g. a localizer) are left
    out. pixel_mm, series, image_set: see :func:`open_axial`."""
    path = openable(path)
    dicom = _dicom_images(path, series, image_set) if pixel_mm is None else None
    if dicom is None:
        return [open_axial(path, pixel_mm=pixel_mm, series=series, image_set=image_set)]
    choice, planes = dicom
    files = choice.files
    if planes is None:
        return [_dicom_series(path, choice, planes)]
    blocks, block_warnings, blocks_reason = stack_blocks(planes)
    if not blocks:
        return [_dicom_series(path, choice, planes)]  # says why the series cannot be measured
    volumes = []
    frame_voxels = _frame_voxels(path, files, planes) if planes.frames is not None else None  # each file once
    for block in blocks:
        volume = _read_images(path, files, planes, block, frame_voxels=frame_voxels)
        slices = "the slices of this block of the DICOM series" if len(blocks) > 1 else "the DICOM series' slices"
        volume.warnings += (uneven_spacing(slices, planes.normals[block[0]], planes.positions[block])
                            + one_position_warnings(slices, planes, block))
        volumes.append(volume)
    left_out = planes.n_images - sum(map(len, blocks))
    series_warnings = choice.warnings + ([f"{left_out} of the DICOM series' slices not axial (e.g. a localizer) left "
                                          "out"] if left_out else []) + block_warnings + planes.first_gaps
    for volume in volumes:  # what holds for the whole series, in each block's warnings before its own
        volume.warnings[:0] = series_warnings
        volume.named_region, volume.slice_thickness_mm = planes.named_region, planes.thickness_mm
        volume.blocks_reason = blocks_reason
    return volumes


def axial_from_array(voxels: np.ndarray, geometry: VolumeGeometry, name: str = "volume") -> AxialVolume:
    """An in-memory volume (array [k, j, i]) as an axial stack, e.g. a Slicer volume node's voxels. A colour one
    ([k, j, i, channel], a Slicer vector volume, e.g. loaded from PNG) is the mean of its first three channels, with
    its channels that are images of their own kept beside it (distinct_colours, AxialVolume.colour_channels); a
    colour image file is read so too (_axial_from_image). An InputError when the array does not fit the geometry, or
    holds complex numbers."""
    if np.iscomplexobj(voxels):
        raise InputError(f"{name}: complex numbers; a grey-scale (or RGB) MR image is needed: give their magnitude "
                         "(numpy.abs)")
    voxels = np.asarray(voxels)
    if voxels.dtype != np.int8:  # signed bytes kept as they are: _measurable reads them unsigned where they wrapped
        voxels = voxels.astype(np.float32, copy=False)
    if voxels.ndim not in (3, 4) or voxels.shape[:3] != tuple(geometry.size_ijk[::-1]):
        size = "x".join(map(str, geometry.size_ijk))
        raise InputError(f"{name}: an array of shape {voxels.shape} for a geometry of {size} voxels (i, j, k); the "
                         "array must be [k, j, i], or [k, j, i, channel] for colour")
    if voxels.ndim == 4:
        _check_components(name, voxels.shape[3])
        volume = axial_from_array(voxels[..., :3].mean(axis=-1), geometry, name)
        volume.colour_channels = {COLOURS[c]: axial_from_array(voxels[..., c], geometry, name)
                                  for c in distinct_colours(voxels)}
        return volume
    sitk = _sitk()
    image = sitk.GetImageFromArray(voxels)
    geometry.apply_to_sitk(image)
    return _axial_from_image(Path(name), image)


def _axial_from_image(path: Path, image) -> AxialVolume:
    sitk = _sitk()
    source = VolumeGeometry.from_sitk(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        return axial_from_array(sitk.GetArrayFromImage(image), source, str(path))
    if needs_reslice(source):
        return _resliced(path, image, source)
    layout = _layout(path, source)
    warnings: list[str] = []
    stack = layout.to_stack(_measurable(sitk.GetArrayFromImage(image), warnings))
    return AxialVolume(layout, source, lambda s: stack[s], layout.from_stack, layout.to_stack,
                       lambda: layout.from_stack(stack), warnings)


def _layout(path: Path, geometry: VolumeGeometry) -> AxialLayout:
    try:
        return AxialLayout.from_geometry(geometry)
    except GeometryError as error:
        raise InputError(f"{path.name}: {error}") from None


def _streamed(path: Path, geometry: VolumeGeometry) -> AxialVolume:
    sitk = _sitk()
    layout = _layout(path, geometry)
    itk_axis = 2 - layout.slice_axis
    warnings: list[str] = []  # a slice read with voxels that hold no number or padding says so here (_measurable)

    def read_slice(slice_index: int) -> np.ndarray:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        index, size = [0, 0, 0], list(geometry.size_ijk)
        index[itk_axis], size[itk_axis] = slice_index, 1
        reader.SetExtractIndex(index)
        reader.SetExtractSize(size)
        return layout.to_stack(_measurable(sitk.GetArrayFromImage(_read(path, reader)), warnings))[0]

    return AxialVolume(layout, geometry, read_slice, layout.from_stack, layout.to_stack,
                       lambda: _measurable(sitk.GetArrayFromImage(_read_whole(path)), warnings), warnings)


def _resliced(path: Path, image, source: VolumeGeometry) -> AxialVolume:
    """Resample a tilted near-isotropic 3-D volume onto an RAS-aligned axial grid (and labels back, nearest); its
    voxels made measurable first (_measurable), so that no NaN or padding value is blended into its neighbours."""
    sitk = _sitk()
    geometry = resliced_geometry(source)
    origin_lps, spacing_mm, direction_lps = geometry.sitk_frame()
    warnings: list[str] = []
    measurable = sitk.GetImageFromArray(_measurable(sitk.GetArrayFromImage(image), warnings))
    measurable.CopyInformation(image)
    axial = sitk.Resample(measurable, list(geometry.size_ijk), sitk.Transform(), sitk.sitkLinear, origin_lps,
                          spacing_mm, direction_lps, 0.0, sitk.sitkFloat32)
    layout = _layout(path, geometry)
    stack = layout.to_stack(sitk.GetArrayFromImage(axial))

    def to_source_grid(stack_labels: np.ndarray) -> np.ndarray:
        labels = sitk.GetImageFromArray(layout.from_stack(stack_labels).astype(np.uint8))
        geometry.apply_to_sitk(labels)
        back = sitk.Resample(labels, measurable, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        return sitk.GetArrayFromImage(back)

    def from_source_grid(source_labels: np.ndarray) -> np.ndarray:
        labels = sitk.GetImageFromArray(np.asarray(source_labels, np.uint8))
        source.apply_to_sitk(labels)
        resampled = sitk.Resample(labels, axial, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        return layout.to_stack(sitk.GetArrayFromImage(resampled))

    return AxialVolume(layout, source, lambda s: stack[s], to_source_grid, from_source_grid,
                       lambda: sitk.GetArrayFromImage(measurable), warnings)


def read_labels(path: Path | str, expected: VolumeGeometry, pixel_mm: float | None = None) -> np.ndarray:
    """Read a label image (1 canal, 2 left foramen, 3 right foramen) that must lie on the input's grid (a 2-D one
    with pixel_mm, as the image). A Slicer segmentation file (.seg.nrrd, e.g. the module's export after edits) gives
    its segments by their IDs or names (SEGMENT_IDS_AND_NAMES), whatever their label values and layers; its other
    segments are left out."""
    sitk = _sitk()
    path = openable(path)
    image = _read(path, _reader_for(path))
    segmentation = _SEGMENTATION_KEY in image.GetMetaDataKeys()
    if not segmentation:
        image = _checked_volume(path, image, pixel_mm)
        if image.GetNumberOfComponentsPerPixel() > 1:
            raise InputError(f"{path.name}: a colour image; labels need one value (0-3) per voxel")
    geometry = VolumeGeometry.from_sitk(image)
    same_grid = geometry.matches(expected, tolerance_mm=1e-2)
    # a picture's pixels have no place in space: one of another size is another picture (a resized mask), not a box
    placement = None if same_grid or pixel_mm is not None else geometry.voxels_on(expected, tolerance_mm=1e-2)
    if not same_grid and placement is None:
        raise InputError(f"{path.name}: labels are on a different grid than the image "
                         f"({'x'.join(map(str, geometry.size_ijk))} vs {'x'.join(map(str, expected.size_ijk))} "
                         "voxels or another origin/spacing/direction)")
    if segmentation:
        return _on_grid(path, _segments_as_labels(path, image), placement, expected)
    array = sitk.GetArrayFromImage(image)
    if not np.isfinite(array).all() or not np.all(np.mod(array, 1) == 0):
        raise InputError(f"{path.name}: label values must be whole numbers 0-3")
    unknown = sorted(set(np.unique(array).astype(int).tolist()) - {0, *LABEL_VALUES})
    if unknown:
        raise InputError(f"{path.name}: unknown label values {unknown}; expected 1 canal, 2 left foramen, "
                         "3 right foramen")
    return _on_grid(path, array.astype(np.uint8), placement, expected)


def _on_grid(path: Path, labels: np.ndarray, placement: tuple[np.ndarray, np.ndarray] | None,
             image: VolumeGeometry) -> np.ndarray:
    """Labels ([k, j, i]) on the image's grid, from a grid whose voxels lie on its own (placement:
    VolumeGeometry.voxels_on; None for the image's grid itself): its axes put in the image's order and direction,
    and a box of it (a segmentation saved cropped to its content, as 3D Slicer's "Crop to minimum extent" saves it)
    put in its place."""
    if placement is None:
        return labels
    permutation, start = placement
    in_ijk = labels.transpose(2, 1, 0)  # [i, j, k]
    axis_from = [int(np.flatnonzero(permutation[b])[0]) for b in range(3)]  # the labels' axis along the image's b
    in_ijk = in_ijk.transpose(axis_from)
    start = start.copy()
    for b, a in enumerate(axis_from):
        if permutation[b, a] < 0:  # reversed: the labels' last voxel along a comes first along b
            in_ijk = np.flip(in_ijk, b)
            start[b] -= in_ijk.shape[b] - 1
    boxed = in_ijk.transpose(2, 1, 0)  # [k, j, i] on the image's axes
    placed = np.zeros(image.size_ijk[::-1], np.uint8)
    start = start[::-1]
    low = np.maximum(start, 0)
    high = np.maximum(np.minimum(start + boxed.shape, placed.shape), low)
    source = tuple(slice(a, b) for a, b in zip(low - start, high - start))
    outside = int(np.count_nonzero(boxed)) - int(np.count_nonzero(boxed[source]))
    if outside:
        raise InputError(f"{path.name}: {outside} labelled voxels lie beyond the image (labels on "
                         f"{'x'.join(map(str, labels.shape[::-1]))} voxels, the image on "
                         f"{'x'.join(map(str, image.size_ijk))}, in the same places)")
    placed[tuple(slice(a, b) for a, b in zip(low, high))] = boxed[source]
    return placed


_SEGMENTATION_KEY = "Segment0_ID"  # in the header of a Slicer segmentation file


def structure_segments(segments: list[tuple[str, str]]) -> dict[int, int]:
    """Which of a segmentation's segments, given as (ID, name), holds each structure: label value → the segment's
    position. The segment whose ID is one of the structure's (SEGMENT_IDS_AND_NAMES), else the first whose name is,
    in any case (a segment deleted and drawn again in the Segment Editor has a new ID). Structures without one are
    left out; the values in order, so that where segments overlap the later structure wins everywhere."""
    keys = {value: {key.lower() for key in keys} for value, keys in SEGMENT_IDS_AND_NAMES.items()}
    found: dict[int, int] = {}
    for part in (0, 1):  # IDs, then names
        for position, segment in enumerate(segments):
            for value, structure_keys in keys.items():
                if segment[part].lower() in structure_keys:
                    found.setdefault(value, position)
    return dict(sorted(found.items()))


def _segments_as_labels(path: Path, image) -> np.ndarray:
    """A Slicer segmentation file's canal and foramen segments (structure_segments) as label values [k, j, i]."""
    sitk = _sitk()
    layers = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() == 1:
        layers = layers[..., None]
    header = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
    segments, fields = [], ("ID", "Name", "Layer", "LabelValue")
    while f"Segment{len(segments)}_ID" in header:
        segments.append({field: header.get(f"Segment{len(segments)}_{field}", "") for field in fields})
    found = structure_segments([(segment["ID"], segment["Name"]) for segment in segments])
    if not found:
        wanted = [name for _, name in SEGMENT_IDS_AND_NAMES.values()]
        raise InputError(f"{path.name}: none of its segments ({', '.join(s['Name'] or s['ID'] for s in segments)}) "
                         f"is named {', '.join(wanted[:-1])} or {wanted[-1]}")
    labels = np.zeros(layers.shape[:3], np.uint8)
    for value, position in found.items():
        segment = segments[position]
        labels[layers[..., int(segment["Layer"] or 0)] == int(segment["LabelValue"] or 1)] = value
    return labels


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
