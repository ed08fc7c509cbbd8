"""A DICOM folder's series: which files are measured (which series, one image at each slice position), and what
their headers say about the stack SimpleITK reads from them (blocks at several angles or parted by gaps, uneven
spacing, no orientation or position, pixel grids that differ). SimpleITK reads each header once (dicom_frames also
looks in each file for frames, reading no pixels)."""
from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .dicom_frames import header_text, read_frames, transfer_syntax
from .geometry import MAX_RIGHT_ANGLE_COSINE, is_axial_normal
from .grading import REGION_TAGS, region_named
from .number_text import sides_text

SAME_ORIENTATION_DEG = 1.0  # DICOM slices whose normals differ more than this belong to differently angled blocks
EVEN_SPACING_TOLERANCE = 0.1  # a gap differing from the median by more than this fraction of it is uneven
# slices whose places in their plane differ by more lie in different fields of view (the field of view moved part way
# through the series): above what positions rounded to 0.1 mm make of one field of view, at most 0.17 mm
IN_PLANE_MOVE_MM = 0.25
# the decimal steps an export may have rounded Image Position (Patient) to (scanners write far finer ones): where a
# series' positions are all whole multiples of one, its slices' places in their plane and along their normal are
# taken to be off by up to what that rounding makes of them (position_rounding_step_mm)
POSITION_ROUNDING_STEPS_MM = (1.0, 0.5, 0.1)
_CONSEQUENCE = ("it is read as one stack of parallel, evenly spaced slices: the in-plane measurements hold, but "
                "z_mm and the places of the rulers and masks along the spine do not; load the series in 3D "
                "Slicer for exact positions")


# what tells apart the images a series holds at one slice position (echoes of a dual-echo sequence, a Dixon
# sequence's water, fat and in- and opposed-phase images, a repeated acquisition), in the order they are tried
SUBSERIES_TAGS = {"0018|0081": "Echo Time", "0018|0086": "Echo Number", "0008|0008": "Image Type",
                  "0020|0012": "Acquisition Number", "0020|0100": "Temporal Position Identifier",
                  "0020|9056": "Stack ID"}
ECHO_TIME, IMAGE_TYPE = list(SUBSERIES_TAGS).index("0018|0081"), list(SUBSERIES_TAGS).index("0008|0008")
SHOWN_INVERTED_WARNING = ("the DICOM images are stored MONOCHROME1 (their lowest values shown white) and were read "
                          "inverted, as they are shown, all below 0 (as ITK's GDCM reader reads them): they are "
                          "measured from their lowest value up")
DICOM_PREAMBLE_BYTES = 128  # before a DICOM file's "DICM" (is_dicom_file)
SAME_POSITION_MM = 0.01  # slices whose positions differ by less lie at one position
# sets of images told apart by a tag that share fewer of their positions are stacks that overlap, not image sets
IMAGE_SET_SHARED_POSITIONS = 0.5
# why an image is measured before another of the same series or study (_image_type_rank)
MEASURABLE_IMAGE_TYPE = ("Image Type names a water, in-phase or magnitude image (not fat, opposed phase or phase, "
                         "whose CSF is not bright)")


class SlicePlane(NamedTuple):
    direction: np.ndarray  # [3, 3], LPS, columns: along a row, down a column, the normal
    position: np.ndarray  # LPS, mm
    gaps: list[str]  # what the file's header leaves SimpleITK to guess, as warnings (see header_gaps)
    named_region: str | None  # the spine region the file's header names (see named_region)
    thickness_mm: float | None  # its Slice Thickness (0018,0050); None without one
    kind: tuple[str, ...]  # its values of SUBSERIES_TAGS
    pixel_grid: str  # its matrix and pixel size, e.g. "320 × 320 pixels of 0.69 × 0.69 mm"
    image_number: str  # its Instance Number (0020,0013), as a DICOM viewer numbers the images; "" without one
    instance_uid: str  # its SOP Instance UID (0008,0018); "" without one
    placed: bool  # whether it has an Image Position (Patient) (0020,0032) and an Image Orientation (Patient)
    shown_inverted: bool = False  # whether it is stored MONOCHROME1 (see shown_inverted)
    header_fault: str = ""  # what is wrong with its geometry's or rescaling's tags (see header_fault); "" if nothing

    @property
    def normal(self) -> np.ndarray:
        return self.direction[:, 2]


class SlicePlanes(NamedTuple):
    """The planes of a series' images: its files, one slice each, or the frames of its multi-frame files."""
    directions: np.ndarray  # [image, 3, 3], LPS (as SlicePlane.direction)
    positions: np.ndarray  # [image, 3], LPS, mm
    first_gaps: list[str]  # what the first file's header leaves SimpleITK to guess (see header_gaps)
    named_region: str | None  # the spine region the first file's header names
    thickness_mm: float | None  # the first image's Slice Thickness; None without one
    kinds: list[tuple[str, ...]]  # each image's values of SUBSERIES_TAGS
    pixel_grids: list[str]  # each image's matrix and pixel size
    # each image's number as a viewer shows it: its file's Instance Number; its frame's in one multi-frame file, with
    # its file's Instance Number in several ("3:2": frame 2 of instance 3)
    image_numbers: list[str]
    frames: list[tuple[int, int]] | None = None  # each image's (file, frame) of multi-frame files; None: a file each
    pixel_mm: np.ndarray | None = None  # [frame, 2], each frame's (SimpleITK's x, y) spacing; None: one file each
    stacks: list[str] | None = None  # each image's stack, where stacks overlap (one_image_per_position); None: one
    instance_uids: list[str] | None = None  # each file's SOP Instance UID, a file each (repeated_images); else None
    placed: list[bool] | None = None  # whether each file has a position and orientation, a file each (unplaced_images)
    shown_inverted: bool = False  # whether the first image is stored MONOCHROME1 (see shown_inverted)
    header_fault: str = ""  # what is wrong with an image's geometry's or rescaling's tags (see header_fault)

    @property
    def normals(self) -> np.ndarray:
        return self.directions[:, :, 2]

    @property
    def n_images(self) -> int:
        return len(self.positions)

    @property
    def has_places(self) -> bool:
        """Whether the images have places of their own: frames always, files where any has an Image Position and
        Orientation (SimpleITK puts all the others at its origin)."""
        return self.placed is None or any(self.placed)

    def of_files(self, indices: list[int]) -> SlicePlanes:
        """The planes of these images only (indices into the images), with what the first one's header says."""
        return self._replace(directions=self.directions[indices], positions=self.positions[indices],
                             kinds=[self.kinds[n] for n in indices],
                             pixel_grids=[self.pixel_grids[n] for n in indices],
                             image_numbers=[self.image_numbers[n] for n in indices],
                             frames=None if self.frames is None else [self.frames[n] for n in indices],
                             pixel_mm=None if self.pixel_mm is None else self.pixel_mm[indices],
                             stacks=None if self.stacks is None else [self.stacks[n] for n in indices],
                             instance_uids=None if self.instance_uids is None else [self.instance_uids[n]
                                                                                    for n in indices],
                             placed=None if self.placed is None else [self.placed[n] for n in indices])


class SeriesChoice(NamedTuple):
    files: list[str]  # the series to measure; empty when the folder holds none
    warnings: list[str]  # which series was measured, when the folder holds several axial ones


def chosen_series(folder: Path, wanted: str | None = None) -> SeriesChoice:
    """The series to measure in a DICOM folder (_series_chosen), with a warning of the files beside it (or in the
    folder, where it holds no series) that are DICOM files but in no series (unread_file_warnings)."""
    series = _series_in(folder)
    choice = _series_chosen(folder, series, wanted)
    beside = dict.fromkeys(Path(file).parent for file in choice.files) or [folder]
    listed = {Path(file).resolve() for files in series for file in files}
    return choice._replace(warnings=choice.warnings + [warning for place in beside
                                                        for warning in unread_file_warnings(place, listed)])


def unread_file_warnings(folder: Path, listed: set[Path]) -> list[str]:
    """A warning naming the files of folder that are DICOM files (DICM after their preamble) but not listed (the
    resolved paths of every series' files): SimpleITK cannot read them as images (a copy cut short, a damaged file),
    or they are not images (a report, a presentation state); a slice of the series may be among them. [] where there
    are none."""
    unread = sorted(path.name for path in folder.iterdir() if path.is_file() and path.name.upper() != "DICOMDIR"
                    and path.resolve() not in listed and is_dicom_file(path))
    if not unread:
        return []
    named = ", ".join(unread[:3]) + (", ..." if len(unread) > 3 else "")
    compressions = sorted({name for path in unread if (name := compression(transfer_syntax(folder / path)))})
    compressed = (f"; compressed as {' or '.join(compressions)}, which SimpleITK may not decode: export them "
                  "uncompressed" if compressions else "")
    return [f"{len(unread)} DICOM file{'s' if len(unread) > 1 else ''} of {folder.name} cannot be read as an image "
            f"({named}: damaged, or a copy cut short; or not an image, as a report or a presentation state"
            f"{compressed}): left out, so that a slice among them leaves a gap in its series"]


# the compressions a DICOM file's Transfer Syntax UID names, by its start (PS3.5 A.4, PS3.6 A)
COMPRESSIONS = (("1.2.840.10008.1.2.4.5", "JPEG"), ("1.2.840.10008.1.2.4.70", "JPEG"), ("1.2.840.10008.1.2.4.8",
                "JPEG-LS"), ("1.2.840.10008.1.2.4.9", "JPEG 2000"), ("1.2.840.10008.1.2.4.10", "MPEG or HEVC video"),
                ("1.2.840.10008.1.2.4.11", "JPEG XL"), ("1.2.840.10008.1.2.4.20", "High-Throughput JPEG 2000"),
                ("1.2.840.10008.1.2.5", "RLE"), ("1.2.840.10008.1.2.1.99", "deflate"))


def compression(syntax: str) -> str:
    """The compression a Transfer Syntax UID names (COMPRESSIONS); "" for none (the pixels stored as they are)."""
    return next((name for start, name in COMPRESSIONS if syntax.startswith(start)), "")


def is_dicom_file(path: Path) -> bool:
    """Whether a file holds DICM after the 128-byte preamble, as every DICOM file (Part 10) does (False for one that
    cannot be opened)."""
    try:
        with open(path, "rb") as file:
            return file.read(DICOM_PREAMBLE_BYTES + 4)[DICOM_PREAMBLE_BYTES:] == b"DICM"
    except OSError:
        return False


def _series_chosen(folder: Path, series: list[list[str]], wanted: str | None) -> SeriesChoice:
    """The series to measure among those of a DICOM folder (e.g. a whole study, its series in subfolders as on a
    CD): of the axial series (those wanted: numbered so, or with it in their Series Description), a T2-weighted one
    (see :func:`weighting`) before others and one named T1-weighted last, then one whose Image Type names a water,
    in-phase or magnitude image before one that names a fat, opposed-phase or phase image (a Dixon sequence's
    images saved as series of their own; _image_type_rank), then the one with the most slices, then the one with the
    highest Series Number (of a sequence repeated, as after the patient moved, the repeat); when there
    is no axial series, the largest (the geometry check then says why). A series is axial when its first, middle or
    last file is an axial slice (its first may be a localizer); no other header is read, but the first file's of
    each axial series when there are several or some are wanted; the warning says when they belong to several
    studies (Study Instance UID), as in a folder of patients. A ValueError when none is wanted."""
    axial = [files for files in series
             if any(_is_axial_slice(files[n]) for n in sorted({0, len(files) // 2, len(files) - 1}))]
    if wanted is None and len(axial) < 2:
        return SeriesChoice(max(axial or series, key=len, default=[]), [])
    headers = [header_reader(files[0]) for files in axial]
    sizes = [_slice_count(files, header) for files, header in zip(axial, headers)]
    named = [_series_name(headers[n], sizes[n], Path(files[0]).parent.relative_to(folder))
             for n, files in enumerate(axial)]
    held = f"the DICOM folder holds {len(axial)} axial series"
    if wanted is not None:
        picked = [n for n, header in enumerate(headers) if header is not None and _answers_to(header, wanted)]
        if not picked:
            raise ValueError(f"no axial series is numbered {wanted!r} or has it in its description; "
                             f"{held}{': ' if named else ''}{', '.join(named)}")
        axial, headers, named, sizes = ([items[n] for n in picked] for items in (axial, headers, named, sizes))
        held = f"{len(axial)} axial series of the DICOM folder answer to {wanted!r}"
    if len(axial) == 1:
        return SeriesChoice(axial[0], [])
    weightings = [weighting(header) if header is not None else 1 for header in headers]
    ranks = [_image_type_rank(header_value(header, "0008|0008")) if header is not None else 0 for header in headers]
    numbers = [positive_value(header_value(header, "0020|0011")) or 0 if header is not None else 0
               for header in headers]  # Series Number: of series alike, the last acquired (a repeat, as for motion)
    chosen, *others = sorted(range(len(axial)), key=lambda n: (weightings[n], ranks[n], sizes[n], numbers[n]),
                             reverse=True)
    why = {2: "the T2-weighted one with the most slices",
           1: "none is named T2-weighted: the one with the most slices of those not named T1",
           0: "all are named T1-weighted: the one with the most slices"}[weightings[chosen]]
    if any(weightings[n] == weightings[chosen] and ranks[n] < ranks[chosen] for n in others):
        why += f" whose {MEASURABLE_IMAGE_TYPE}"
    if any((weightings[n], ranks[n], sizes[n]) == (weightings[chosen], ranks[chosen], sizes[chosen])
           and numbers[n] < numbers[chosen] for n in others):
        why += ", and of those alike the last acquired (the highest Series Number: a repeat?)"
    studies = {header_value(header, "0020|000d") for header in headers if header is not None} - {""}
    several_studies = (f"; they belong to {len(studies)} studies (patients or visits): to measure each, give each "
                       "study's folder as an input of its own" if len(studies) > 1 else "")
    return SeriesChoice(axial[chosen], [
        f"{held}: measured {named[chosen]}, {why}; not measured: {', '.join(named[n] for n in others)}; to "
        f"measure another, name it (measure --series, its number or a word of its description){several_studies}"])


def _slice_count(files: list[str], reader) -> int:
    """How many slices a series holds: its files, or the frames of its multi-frame files (its first header, a
    SimpleITK reader holding it, says whether they are)."""
    if reader is None or header_value(reader, "0028|0008").strip() in ("", "1"):
        return len(files)
    headers = [reader, *map(header_reader, files[1:])]
    return sum(int(positive_value(header_value(header, "0028|0008")) or 1) if header is not None else 1
               for header in headers)


def _answers_to(reader, wanted: str) -> bool:
    """Whether a series' first header is numbered wanted or has it in its Series Description (any case)."""
    return (header_value(reader, "0020|0011").strip() == wanted.strip()
            or wanted.strip().lower() in header_value(reader, "0008|103e").lower())


def _series_in(folder: Path) -> list[list[str]]:
    """The files of each DICOM series in folder and its subfolders, by Series Instance UID: a series whose files lie
    in several folders (as a CD writer parts a long series, DICOM/0000, DICOM/0001, ...) is one, its files sorted by
    GDCM across them. ITK's warning of each folder that holds none (as a study's on a CD: DICOM/, its patient's and
    its study's) is not shown."""
    import SimpleITK as sitk  # deferred: Slicer loads the module before dependencies are checked

    with itk_warnings_hidden():
        held: dict[str, list[Path]] = {}  # the folders that hold each series' files
        for place in (folder, *sorted(path for path in folder.rglob("*") if path.is_dir())):
            for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(place)):
                held.setdefault(uid, []).append(place)
        return [list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(
            str(places[0] if len(places) == 1 else Path(os.path.commonpath(places))), uid, False, len(places) > 1))
            for uid, places in held.items()]


@contextmanager
def itk_warnings_hidden(hidden: bool = True) -> Iterator[None]:
    """ITK's warnings (printed to the console, in its terms) not shown while in it, if hidden: where they are
    expected, or the caller says what they mean; shown or not as before after it, for what else reads images in the
    process."""
    import SimpleITK as sitk

    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    if hidden:
        sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


T2_NAMES = re.compile(r"T2(?!\d)|MEDIC|MERGE|ME2D", re.IGNORECASE)  # T2, T2*, t2_tse, and multi-echo T2* sequences
T1_NAMES = re.compile(r"T1(?!\d)", re.IGNORECASE)
T2_ECHO_TIME_MS = 60.0  # a spin-echo series with a longer echo time is T2-weighted


def weighting(reader) -> int:
    """How a DICOM header (a SimpleITK reader holding it) ranks its series for measuring the canal: 2 when its
    Series Description names T2 (T2, T2*, t2_tse, MEDIC, MERGE, me2d), or names neither T1 nor T2 and its Echo Time
    is 60 ms or more; 0 when it names T1 alone; 1 otherwise."""
    description = header_value(reader, "0008|103e")
    if T2_NAMES.search(description):
        return 2
    if T1_NAMES.search(description):
        return 0
    echo_time_ms = positive_value(header_value(reader, "0018|0081"))
    return 2 if echo_time_ms is not None and echo_time_ms >= T2_ECHO_TIME_MS else 1


def _series_name(reader, n_slices: int, subfolder: Path) -> str:
    """A series as the user knows it: 'series 5 ("AX T2 FSE", 12 slices)', and 'in ST0/SE5' when its files lie in
    that subfolder of the folder given."""
    number, description = (header_value(reader, key).strip() if reader is not None else ""
                           for key in ("0020|0011", "0008|103e"))
    details = ", ".join(part for part in (f'"{description}"' if description else "", f"{n_slices} slices") if part)
    where = f" in {subfolder.as_posix()}" if subfolder.parts else ""
    return (f"series {number}" if number else "a series") + f" ({details}){where}"


def _is_axial_slice(path: str) -> bool:
    """Whether the DICOM file at path is an axial slice."""
    plane = _slice_plane(path)
    return plane is not None and is_axial_normal(plane.normal)


def header_reader(path: Path | str):
    """A SimpleITK reader holding an image file's header (no pixels read), e.g. a DICOM file's; None when it cannot
    be read."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return reader


def _slice_plane(path: str) -> SlicePlane | None:
    """A DICOM file's slice plane as SimpleITK reads its header; None when it cannot be read or is not one 3-D
    slice."""
    return _plane_in(header_reader(path), path)


def _plane_in(reader, path: str) -> SlicePlane | None:
    """The slice plane of the DICOM file at path whose header a SimpleITK reader holds; None without a reader or a
    3-D slice."""
    if reader is None or reader.GetDimension() != 3:
        return None
    direction = np.array(reader.GetDirection(), float).reshape(3, 3)
    return SlicePlane(direction, np.array(reader.GetOrigin(), float), header_gaps(reader),
                      named_region(reader), slice_thickness_mm(reader),
                      tuple(header_value(reader, tag).strip() for tag in SUBSERIES_TAGS),
                      _pixel_grid(reader.GetSize(), reader.GetSpacing()), header_value(reader, "0020|0013").strip(),
                      header_value(reader, "0008|0018").strip(),
                      all(reader.HasMetaDataKey(tag) for tag in ("0020|0032", "0020|0037")), shown_inverted(reader),
                      header_fault(reader, path))


def _pixel_grid(size: Sequence[int], pixel_mm: Sequence[float]) -> str:
    """A DICOM slice's matrix (columns, rows) and pixel size as the warnings tell them."""
    return f"{size[0]} × {size[1]} pixels of {sides_text(pixel_mm[:2])} mm"


PIXEL_SPACING_TAGS = ("0028|0030", "0018|1164", "0018|2010")  # Pixel, Imager Pixel, Nominal Scanned Pixel Spacing
POSITION_TAG, ORIENTATION_TAG = "0020|0032", "0020|0037"  # Image Position and Image Orientation (Patient)
# DICOM's Specific Character Set terms (single-byte and without code extensions, and their ISO 2022 forms) as codecs
CHARACTER_SETS = {**{f"{prefix}{number}": codec for number, codec in (
    ("100", "latin_1"), ("101", "iso8859_2"), ("109", "iso8859_3"), ("110", "iso8859_4"), ("144", "iso8859_5"),
    ("127", "iso8859_6"), ("126", "iso8859_7"), ("138", "iso8859_8"), ("148", "iso8859_9"), ("203", "iso8859_15"),
    ("166", "tis_620"), ("13", "shift_jis")) for prefix in ("ISO_IR ", "ISO 2022 IR ")},
    "ISO_IR 192": "utf_8", "GB18030": "gb18030", "GBK": "gbk"}
RESCALE_TAGS = {(0x0028, 0x1053): "Rescale Slope", (0x0028, 0x1052): "Rescale Intercept"}  # value = slope x + ...
# the tags a file's geometry is read from (a pixel spacing tag stands for PIXEL_SPACING_TAGS): what each is, how many
# numbers it holds (said so), and what is unknown where it holds anything else (geometry_fault)
GEOMETRY_VALUES = {PIXEL_SPACING_TAGS[0]: ("pixel size", (1, 2), "one or two sizes in mm", "the pixel size"),
                   POSITION_TAG: ("Image Position (Patient)", (3,), "3 numbers", "where the slices lie"),
                   ORIENTATION_TAG: ("Image Orientation (Patient)", (6,), "6 numbers", "the slices' orientation")}


def header_gaps(reader, framed: bool = False) -> list[str]:
    """What a DICOM header (a SimpleITK reader holding it) leaves SimpleITK to guess, as warnings: the orientation
    (without Image Orientation (Patient) the slices are taken as axial, the patient's right on the image's left),
    the slices' places (without Image Position (Patient)) and the pixel size (without a pixel spacing tag, 1 mm);
    and an image stored MONOCHROME1 (shown_inverted). Of a multi-frame file, or of an Enhanced file of one frame
    whose functional groups were read (framed: frame_planes), only the last, as it gives the others per frame, where
    SimpleITK's header does not show them."""
    gaps = [SHOWN_INVERTED_WARNING] if shown_inverted(reader) else []
    if framed or header_value(reader, "0028|0008").strip() not in ("", "1"):
        return gaps
    if not reader.HasMetaDataKey("0020|0037"):
        gaps.append("the DICOM files have no Image Orientation (Patient) tag (0020,0037): the slices are taken as "
                    "axial with the patient's right on the image's left, which the file does not confirm; check "
                    "which foramen is left and which is right")
    if not reader.HasMetaDataKey("0020|0032"):
        gaps.append("the DICOM files have no Image Position (Patient) tag (0020,0032): where the slices lie is "
                    "unknown, so z_mm and the places of the rulers and masks along the spine are not the scan's (the "
                    "in-plane measurements hold)")
    if not any(reader.HasMetaDataKey(tag) for tag in PIXEL_SPACING_TAGS):
        gaps.append(f"the DICOM files give no pixel size (no Pixel Spacing (0028,0030)): they were measured with "
                    f"{sides_text(reader.GetSpacing()[:2])} mm pixels, which may not be the scan's (a screenshot "
                    "saved as DICOM?)")
    return gaps


def header_fault(reader, path: Path | str) -> str:
    """What is wrong with the tags a DICOM file's header (at path; held by a SimpleITK reader) gives its geometry
    (geometry_fault) or its pixels' rescaling (rescale_fault) with; "" where nothing is."""
    return geometry_fault(reader) or rescale_fault(path)


def geometry_fault(reader) -> str:
    """What is wrong with the tags a DICOM header (a SimpleITK reader holding it) gives its geometry with: see
    value_fault; "" where each is well formed or absent (see header_gaps)."""
    spacing = next((tag for tag in PIXEL_SPACING_TAGS if reader.HasMetaDataKey(tag)), "")
    return next((fault for tag in (spacing, POSITION_TAG, ORIENTATION_TAG) if reader.HasMetaDataKey(tag)
                 if (fault := value_fault(tag, header_value(reader, tag)))), "")


def value_fault(tag: str, value: str) -> str:
    """What is wrong with the value of a tag of a DICOM file's geometry (e.g. "0028|0030" or "0028,0030";
    GEOMETRY_VALUES) that does not hold the numbers it must, e.g. a Pixel Spacing "0,8\\0,8" (a decimal comma) or
    "0\\0": GDCM reads it as 1 mm, 0 or a number of no meaning that is not the same from one file to the next; ""
    where it is well formed."""
    key = tag.replace(",", "|")
    name, counts, expected, unknown = GEOMETRY_VALUES[PIXEL_SPACING_TAGS[0] if key in PIXEL_SPACING_TAGS else key]
    try:
        numbers = [float(number) for number in value.strip().split("\\")]
    except ValueError:
        numbers = []
    shown = f"the DICOM files' {name} ({key.replace('|', ',')}) is \"{value.strip()}\""
    if len(numbers) not in counts or not all(math.isfinite(number) for number in numbers) \
            or (key in PIXEL_SPACING_TAGS and not all(number != 0 for number in numbers)):
        return (f"{shown}, not {expected} (a decimal comma?), which DICOM readers take as 1 mm, 0 or a number of no "
                f"meaning: {unknown} is unknown; correct the tag, or export the series again")
    if key == ORIENTATION_TAG and not _at_right_angles(np.array(numbers[:3]), np.array(numbers[3:])):
        return (f"{shown}, not two directions at right angles, which DICOM readers replace with the axial one: "
                f"{unknown} is unknown; correct the tag, or export the series again")
    return ""


def _at_right_angles(row: np.ndarray, column: np.ndarray) -> bool:
    """Whether the directions of an image's rows and columns are at right angles (within MAX_RIGHT_ANGLE_COSINE)."""
    lengths = np.linalg.norm(row) * np.linalg.norm(column)
    return lengths > 0 and abs(float(row @ column)) / lengths <= MAX_RIGHT_ANGLE_COSINE


def rescale_fault(path: Path | str) -> str:
    """What is wrong with a DICOM file's Rescale Slope or Intercept (rescale_value_fault), read here: SimpleITK may
    read no header so written; "" where nothing is."""
    return next((fault for tag, text in header_text(path, RESCALE_TAGS).items()
                 if (fault := rescale_value_fault(tag, text, Path(path).name))), "")


def rescale_value_fault(tag: tuple[int, int], text: str, source: str) -> str:
    """What is wrong with a Rescale Slope or Intercept (a RESCALE_TAGS tag, its text, of source, e.g. a file's name)
    that does not begin with a number, as an empty value or a word: SimpleITK cannot read the pixels then ("Pixel
    type larger than output type"), or reads them scaled by a number of no meaning; "" where it does (GDCM reads the
    number a value begins with, "1,5" as 1)."""
    if re.match(r"\s*[-+]?\.?\d", text):
        return ""
    return (f"the {RESCALE_TAGS[tag]} ({tag[0]:04X},{tag[1]:04X}) of {source} is \"{text.strip()}\", not a number, "
            "with which SimpleITK cannot read its pixels, or reads them scaled by a number of no meaning; correct the "
            "tag, or export the series again")


def series_beside_warnings(path: Path, reader) -> list[str]:
    """A warning where a DICOM file given alone (path; its header in a SimpleITK reader) is one image of a series
    whose other files lie beside it: only it is measured, where the user may have meant the series. [] otherwise."""
    import SimpleITK as sitk  # deferred: Slicer loads the module before dependencies are checked

    uid = header_value(reader, "0020|000e").strip()
    if not uid or not is_dicom_file(path):  # not an NRRD file converted from one, holding its header's tags
        return []
    with itk_warnings_hidden():
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path.parent), uid)
    if len(files) < 2:
        return []
    return [f"the DICOM file is one of the {len(files)} images of its series in {path.parent.name or path.parent}: "
            f"it alone is measured; to measure the series, give its folder ({path.parent})"]


def shown_inverted(reader) -> bool:
    """Whether a DICOM header (a SimpleITK reader holding it) stores its image MONOCHROME1: its lowest values shown
    white. SimpleITK reads such an image inverted, as it is shown, each value v as -v - 1, all below 0."""
    return header_value(reader, "0028|0004").strip() == "MONOCHROME1"


def named_region(reader) -> str | None:
    """The spine region a DICOM header (a SimpleITK reader holding it) names by its Body Part Examined, Series or
    Study Description (see :func:`grading.region_named`); None when it names none."""
    keys = [tag.lower().replace(",", "|") for tag in REGION_TAGS]  # SimpleITK's form of a tag: "0018|0015"
    body_part, *descriptions = (header_value(reader, key) for key in keys)
    return region_named(body_part, descriptions)


def slice_thickness_mm(reader) -> float | None:
    """The Slice Thickness (0018,0050) a DICOM header (a SimpleITK reader holding it) gives, if a positive number."""
    return positive_value(header_value(reader, "0018|0050"))


def header_value(reader, key: str) -> str:
    """The value of a key in the header a SimpleITK reader holds (a DICOM tag in SimpleITK's form, "0018|0050", or
    another format's field, e.g. NIfTI's "qform_code"); "" without it. Text that is not UTF-8 (SimpleITK gives its
    other bytes as lone surrogates, which no output file can hold) is decoded in the header's character set."""
    value = reader.GetMetaData(key) if reader.HasMetaDataKey(key) else ""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode(_character_set(reader), "replace")
    return value


def _character_set(reader) -> str:
    """The Python codec of a DICOM header's Specific Character Set (0008,0005): its first term known here
    (CHARACTER_SETS), else Latin-1, the one European headers most often hold, with the tag or without."""
    terms = [term.strip().upper() for term in header_value(reader, "0008|0005").split("\\")]
    return next((CHARACTER_SETS[term] for term in terms if term in CHARACTER_SETS), "latin_1")


def positive_value(text: str) -> float | None:
    """A header value read as a positive number; None when it is not one."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value > 0 and np.isfinite(value) else None


def slice_planes(files: list[str]) -> SlicePlanes | None:
    """The files' slice planes, each header read once by SimpleITK; their frames' (frame_planes) when some are
    multi-frame files, a single-frame file among them taken as a file of one frame (else SimpleITK would read a
    multi-frame file's frames evenly stacked after its first); None when a file has none (reading the series says
    why)."""
    several = len(files) > 1
    framed = [frame_planes(name, several) for name in files]
    if any(frames is not None for frames in framed):
        each = [frames if frames is not None else _one_frame(name) for name, frames in zip(files, framed)]
        if all(frames is not None for frames in each):
            return _joined(each) if several else each[0]
    planes = [_slice_plane(name) for name in files]
    return None if any(plane is None for plane in planes) else _planes_of(planes)


def _planes_of(planes: list[SlicePlane]) -> SlicePlanes:
    """Files' slice planes (one slice each) as a series' images, with what the first one's header says (the first
    placed one's, where some are not: unplaced_images), and the first header fault any of them has."""
    first = next((plane for plane in planes if plane.placed), planes[0])
    return SlicePlanes(np.array([plane.direction for plane in planes]), np.array([plane.position for plane in planes]),
                       first.gaps, first.named_region, first.thickness_mm,
                       [plane.kind for plane in planes], [plane.pixel_grid for plane in planes],
                       [plane.image_number for plane in planes], instance_uids=[plane.instance_uid for plane in planes],
                       placed=[plane.placed for plane in planes], shown_inverted=first.shown_inverted,
                       header_fault=next((plane.header_fault for plane in planes if plane.header_fault), ""))


def frame_planes(path: str, of_several: bool = False) -> SlicePlanes | None:
    """The planes of an Enhanced (multi-frame) DICOM file's frames, as its functional groups give them (see
    :mod:`dicom_frames`; their Effective Echo Time, Frame Type, Frame Acquisition Number, Temporal Position Index
    and Stack ID stand for a file's Echo Time, Image Type, Acquisition Number and Temporal Position Identifier), each
    numbered as its frame, after its file's Instance Number when the file is one of_several ("3:2"), or as its file
    where it is the file's one frame; None for another file, or one whose frames' planes cannot be read here
    (SimpleITK's reading then stands)."""
    frames = read_frames(path)
    reader = header_reader(path) if frames is not None else None
    if reader is None:
        return None
    kinds = [(frame.echo_time_ms, "", frame.frame_type, frame.acquisition_number, frame.temporal_position,
              frame.stack_id) for frame in frames]
    grids = [_pixel_grid(reader.GetSize(), frame.pixel_mm) for frame in frames]
    instance = header_value(reader, '0020|0013').strip()
    numbers = [instance] if len(frames) == 1 else [f"{instance}:{n + 1}" if of_several else str(n + 1)
                                                   for n in range(len(frames))]
    return SlicePlanes(np.array([frame.direction_lps for frame in frames]),
                       np.array([frame.position_lps for frame in frames]), header_gaps(reader, framed=True),
                       named_region(reader), frames[0].thickness_mm, kinds, grids, numbers,
                       [(0, n) for n in range(len(frames))],
                       np.array([frame.pixel_mm for frame in frames]), shown_inverted=shown_inverted(reader),
                       header_fault=header_fault(reader, path))


def _one_frame(path: str) -> SlicePlanes | None:
    """A single-frame DICOM file as a multi-frame file of one frame (frame_planes); None when it has no slice
    plane, or holds frames that dicom_frames cannot place."""
    reader = header_reader(path)
    plane = _plane_in(reader, path)
    if plane is None or reader.GetSize()[2] != 1:
        return None
    return _planes_of([plane])._replace(frames=[(0, 0)], pixel_mm=np.array([reader.GetSpacing()[:2]], float))


def _joined(files: list[SlicePlanes]) -> SlicePlanes:
    """The frames of several multi-frame files (frame_planes of each) as one series' images, with what the first
    file's header says."""
    return files[0]._replace(
        directions=np.concatenate([planes.directions for planes in files]),
        positions=np.concatenate([planes.positions for planes in files]),
        kinds=[kind for planes in files for kind in planes.kinds],
        pixel_grids=[grid for planes in files for grid in planes.pixel_grids],
        image_numbers=[number for planes in files for number in planes.image_numbers],
        frames=[(file, frame) for file, planes in enumerate(files) for _, frame in planes.frames],
        pixel_mm=np.concatenate([planes.pixel_mm for planes in files]), instance_uids=None, placed=None)


def mixed_pixel_grids(planes: SlicePlanes, files: list[int]) -> str:
    """Why these files (indices) cannot be read as one stack, where their matrices or pixel sizes differ (a series
    whose field of view changed part way); "" where they are alike."""
    grids = list(dict.fromkeys(planes.pixel_grids[n] for n in files))
    return f"its slices are not all alike ({' and '.join(grids)})" if len(grids) > 1 else ""


def one_image_per_position(planes: SlicePlanes, image_set: str | None = None) -> tuple[SlicePlanes, list[int],
                                                                                      list[str]]:
    """The images to measure of a series (its planes, and their indices into its images), and what the user must
    know of the choice. A series may hold several images at each slice position (two echoes, a Dixon sequence's
    images, an acquisition repeated); read as one stack they would interleave. They are told apart by the first of
    SUBSERIES_TAGS whose values give one image per position each (more than one for some value where no file has a
    position: those, all at one, are not split into single slices); which set is measured: the one image_set names (see
    :func:`_named_set`), else the one _preferred says. Sets that share under IMAGE_SET_SHARED_POSITIONS of their
    positions are stacks that overlap (a spine covered by two stacks, a few positions imaged by both): every image
    is measured, each stack apart (SlicePlanes.stacks; stack_blocks). Every image, and no warning, when no two share
    a position or no tag tells them apart (the uneven spacing is then warned of). An image that repeats another
    (repeated_images), or whose place is unknown (unplaced_images), is left out first, with a warning. A ValueError
    when image_set names no set of the series."""
    repeated, unplaced = repeated_images(planes), unplaced_images(planes)
    if repeated or unplaced:
        rest = [n for n in range(planes.n_images) if n not in repeated | unplaced]
        kept_planes, kept, warnings = one_image_per_position(planes.of_files(rest), image_set)
        return kept_planes, [rest[n] for n in kept], _left_out_warnings(planes, repeated, unplaced) + warnings
    every = list(range(len(planes.kinds)))
    if not _unique_positions(planes.positions):
        for column, name in enumerate(SUBSERIES_TAGS.values()):
            groups: dict[str, list[int]] = {}
            for n, kind in enumerate(planes.kinds):
                groups.setdefault(kind[column], []).append(n)
            # files without positions (all at SimpleITK's origin) are not split into single slices; placed ones
            # all at one position (two echoes of one slice) are
            if len(groups) > 1 and (max(map(len, groups.values())) > 1 or planes.has_places) \
                    and all(_unique_positions(planes.positions[files]) for files in groups.values()):
                values = ", ".join(f'"{value}" ({len(files)} slice{"s" if len(files) > 1 else ""})'
                                   for value, files in groups.items())
                shared = _shared_positions(planes, list(groups.values()))
                if shared < IMAGE_SET_SHARED_POSITIONS * min(map(len, groups.values())) and image_set is None:
                    return planes._replace(stacks=[kind[column] for kind in planes.kinds]), every, [
                        f"the DICOM series' slices lie in {len(groups)} stacks that overlap along the spine, told "
                        f"apart by their {name}: {values}, {shared} positions imaged by more than one; each stack "
                        "is measured as a block of its own"]
                if image_set is not None:
                    chosen, why = _named_set(groups, image_set, name, values), "as --image-set asked"
                else:
                    chosen, why = _preferred(planes, groups)
                another = next(value for value in groups if value != chosen)
                return planes.of_files(groups[chosen]), groups[chosen], [
                    f"the DICOM series holds {len(groups)} images at its slice positions, told apart by their "
                    f'{name}: {values}; measured those of {name} "{chosen}", {why}; the others are left out (to '
                    f'measure another, name it: measure --image-set, e.g. "{another}")']
    if image_set is not None:
        raise ValueError(f"--image-set {image_set!r}: the series holds one image at each slice position (it chooses "
                         "among the images a series holds at each, as two echoes or a Dixon sequence's images)")
    return planes, every, []


def repeated_images(planes: SlicePlanes) -> set[int]:
    """The images (indices) of a series whose file repeats an earlier one's: the same SOP Instance UID, position,
    Instance Number and SUBSERIES_TAGS values (a file copied twice into its folder, e.g. "IM3 (1).dcm"). None among
    the frames of multi-frame files, nor files without a SOP Instance UID."""
    if planes.instance_uids is None:
        return set()
    seen, repeated = set(), set()
    for n, image in enumerate(zip(planes.instance_uids, _position_keys(planes.positions), planes.image_numbers,
                                  planes.kinds)):
        if image[0] and image in seen:
            repeated.add(n)
        seen.add(image)
    return repeated


def unplaced_images(planes: SlicePlanes) -> set[int]:
    """The images (indices) of a series whose file lacks an Image Position or Image Orientation (Patient) where others
    have both (a screenshot or a key image saved in the series): SimpleITK would put them at the origin, axial. None
    among the frames of multi-frame files, nor in a series where no file has both (read as SimpleITK reads it, with
    a warning: header_gaps)."""
    if planes.placed is None or not planes.has_places:
        return set()
    return {n for n, placed in enumerate(planes.placed) if not placed}


def _left_out_warnings(planes: SlicePlanes, repeated: set[int], unplaced: set[int]) -> list[str]:
    """Why these images of a series are left out: they repeat another (repeated_images), or their place is unknown
    (unplaced_images)."""
    warnings = []
    if repeated:
        warnings.append(f"{len(repeated)} of the DICOM series' files repeat{'s' if len(repeated) == 1 else ''} the "
                        "image of another (the same SOP Instance UID, place and number: a file copied twice?): each "
                        "image is read once")
    if unplaced:
        numbers = ", ".join(planes.image_numbers[n] or "?" for n in sorted(unplaced))
        one = len(unplaced) == 1
        warnings.append(f"{len(unplaced)} of the DICOM series' files (image{'' if one else 's'} {numbers}) "
                        f"lack{'s' if one else ''} the Image Position or Image Orientation (Patient) tag the others "
                        f"have: where {'its slice lies' if one else 'their slices lie'} is unknown (a screenshot or a "
                        f"key image saved in the series?), so {'it is' if one else 'they are'} left out")
    return warnings


def _shared_positions(planes: SlicePlanes, groups: list[list[int]]) -> int:
    """How many slice positions more than one of these groups of images (indices) holds."""
    held = Counter(position for files in groups for position in set(_position_keys(planes.positions[files])))
    return sum(count > 1 for count in held.values())


def _named_set(groups: dict[str, list[int]], image_set: str, name: str, values: str) -> str:
    """The one of a series' sets of images (files by their value of the tag called name) that image_set names: the
    value itself (any case; numbers by value, "20" for "20.0"), or one of its words (an Image Type's "FAT"). A
    ValueError when it names none of them, or several."""
    wanted = image_set.strip().upper()

    def named(value: str) -> bool:
        text, number = value.strip().upper(), positive_value(value)
        return wanted == text or wanted in text.split("\\") or (number is not None and number == positive_value(wanted))

    matching = [value for value in groups if named(value)]
    if len(matching) != 1:
        which = "none" if not matching else f"{len(matching)}"
        raise ValueError(f"--image-set {image_set!r} names {which} of the series' images at each slice position, told "
                         f"apart by their {name}: {values}")
    return matching[0]


def _preferred(planes: SlicePlanes, groups: dict[str, list[int]]) -> tuple[str, str]:
    """Which of a series' sets of images at the same positions (files by a tag's value) to measure, and why: the
    most complete; of those, one whose Image Type names an image that shows the CSF bright on a T2 (water, in phase,
    magnitude) over one that names another (fat, opposed phase, phase); then the longest echo; then the first."""
    reasons = ("the most complete", f"its {MEASURABLE_IMAGE_TYPE}", "the longest echo (the most T2-weighted)",
               "the first")
    keys = {value: (len(files), _image_type_rank(planes.kinds[files[0]][IMAGE_TYPE]),
                    _echo_time_ms(planes, files[0])) for value, files in groups.items()}
    chosen = max(groups, key=keys.get)
    deciding = next((n for n in range(3) if len({key[n] for key in keys.values()}) > 1), 3)
    return chosen, reasons[deciding]


def _image_type_rank(image_type: str) -> int:
    """1 where an Image Type (0008,0008) names an image the networks measure (water, in phase, magnitude), -1 where
    it names one they do not (fat, opposed phase, phase, real or imaginary part), 0 otherwise."""
    words = set(image_type.upper().replace(" ", "").split("\\"))
    if words & {"F", "FAT", "OP", "OPP_PHASE", "OUT_PHASE", "P", "PHASE", "R", "REAL", "I", "IMAGINARY"}:
        return -1
    return 1 if words & {"W", "WATER", "IP", "IN_PHASE", "M", "MAGNITUDE"} else 0


def _unique_positions(positions: np.ndarray) -> bool:
    """Whether no two of these slice positions (LPS, mm) are the same."""
    keys = _position_keys(positions)
    return len(set(keys)) == len(keys)


def _position_keys(positions: np.ndarray) -> list[tuple[int, ...]]:
    """Slice positions (LPS, mm) as keys, equal for positions at one place (within SAME_POSITION_MM)."""
    return [tuple(p) for p in np.round(np.asarray(positions) / SAME_POSITION_MM).astype(np.int64)]


def _echo_time_ms(planes: SlicePlanes, file: int) -> float:
    """The file's Echo Time (0018,0081) in ms; 0 without one."""
    return positive_value(planes.kinds[file][ECHO_TIME]) or 0.0


def orientation_blocks(normals: np.ndarray) -> list[list[int]]:
    """File indices grouped by slice orientation (normals within SAME_ORIENTATION_DEG), in order of appearance."""
    same = np.cos(np.radians(SAME_ORIENTATION_DEG))
    blocks: list[list[int]] = []
    for n, normal in enumerate(normals):
        for block in blocks:
            if abs(float(normal @ normals[block[0]])) >= same:
                block.append(n)
                break
        else:
            blocks.append([n])
    return blocks


def stack_blocks(planes: SlicePlanes) -> tuple[list[list[int]], list[str], str]:
    """The axial blocks of a series (file indices, each block sorted along its normal, the blocks in order of their
    first file): slices of one stack (where stacks overlap: SlicePlanes.stacks), at one angle, in one field of view,
    evenly spaced. Slices at another angle make blocks of their own (angled blocks, one per disc); so do parallel
    slices whose field of view moved in their plane (fields_of_view), and runs of parallel slices parted by a wider
    gap (parallel blocks, or a slice missing), which the returned warnings name; non-axial slices (a localizer) are
    left out. Also why the series is in these blocks: "slices at 3 angles", "parted by gaps", "in stacks that
    overlap", "in different fields of view" (moved in the slice plane, or another pixel grid), or e.g. "slices at 2
    angles, some parted by gaps"; "" for one block."""
    stacks: dict[str, list[int]] = {}
    for n, stack in enumerate(planes.stacks or [""] * planes.n_images):
        stacks.setdefault(stack, []).append(n)
    angles = [[images[n] for n in block] for images in stacks.values() for block in orientation_blocks(
        planes.normals[images]) if is_axial_normal(planes.normals[images[block[0]]])]
    n_angles = len(orientation_blocks(planes.normals[[block[0] for block in angles]])) if angles else 0
    slices = ("the DICOM series' slices" + (" at one of its angles" if n_angles > 1 else "")
              + (" in one stack" if len(stacks) > 1 else ""))
    blocks, warnings, gapped, moved = [], [], False, False
    for oriented in angles:
        fields = fields_of_view(planes, oriented)
        if len(fields) > 1:
            moved = True
            warnings.append(f"{slices} lie in {len(fields)} fields of view ({_fields_differ(planes, fields)}): each "
                            "is measured as a block of its own, so that every slice lies where it was imaged")
        for field in fields:
            normal = planes.normals[field[0]]
            offsets_mm = planes.positions[field] @ normal
            runs = evenly_spaced_runs(offsets_mm, _offset_rounding_mm(planes.positions[field], normal))
            blocks += [[field[n] for n in run] for run in runs]
            parts = [offsets_mm[later[0]] - offsets_mm[earlier[-1]] for earlier, later in zip(runs, runs[1:])]
            gapped |= bool(parts)
            if parts:
                widths_mm = "-".join(dict.fromkeys(f"{part:.1f}" for part in (min(parts), max(parts))))
                where = " in one field of view" if len(fields) > 1 else ""
                warnings.append(f"{slices}{where} lie in {len(runs)} runs of evenly spaced slices parted by wider "
                                f"gaps ({widths_mm} mm; parallel blocks, or a slice missing): each run is measured as "
                                "a block of its own, so that z_mm and the places of the rulers and masks along the "
                                "spine are exact")
    reasons = (("parted by gaps", gapped), ("in stacks that overlap", len(stacks) > 1),
               ("in different fields of view", moved))
    why = " or ".join(reason for reason, holds in reasons if holds)
    if n_angles > 1:
        why = f"slices at {n_angles} angles" + (f", some {why}" if why else "")
    return sorted(blocks, key=min), warnings, why


def fields_of_view(planes: SlicePlanes, images: list[int]) -> list[list[int]]:
    """These parallel images (indices) in order along their normal, as runs in one field of view: each on its run's
    first's pixel grid and within IN_PLANE_MOVE_MM of it in their plane, or within what the rounding of their
    positions makes of one place (_in_plane_rounding_mm). SimpleITK stacks a series' slices as if each lay behind the
    first, on its grid: a field of view moved part way would be misplaced, and the slices spaced by the move too."""
    normal = planes.normals[images[0]]
    same_place_mm = max(IN_PLANE_MOVE_MM, _in_plane_rounding_mm(planes.positions[images], normal))
    runs: list[list[int]] = []
    for n in sorted(images, key=lambda n: float(planes.positions[n] @ normal)):
        if runs and planes.pixel_grids[n] == planes.pixel_grids[runs[-1][0]] \
                and _in_plane_move_mm(planes, [runs[-1][0], n]) <= same_place_mm:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs


def _in_plane_move_mm(planes: SlicePlanes, images: list[int]) -> float:
    """How far apart in their plane these parallel images (indices) lie, at most."""
    in_plane_mm = planes.positions[images] @ planes.directions[images[0]][:, :2]
    return float(max(np.linalg.norm(a - b) for a in in_plane_mm for b in in_plane_mm))


def _fields_differ(planes: SlicePlanes, fields: list[list[int]]) -> str:
    """How these fields of view (fields_of_view) differ: "moved by up to 15.0 mm in the slice plane" (those on one
    pixel grid), their pixel grids ("320 × 320 pixels of 0.69 × 0.69 mm and 256 × 256 pixels of 0.86 × 0.86 mm"), or
    both."""
    on_grid: dict[str, list[int]] = {}
    for field in fields:
        on_grid.setdefault(planes.pixel_grids[field[0]], []).append(field[0])
    move_mm = max(_in_plane_move_mm(planes, firsts) for firsts in on_grid.values())
    return "; ".join(([f"moved by up to {move_mm:.1f} mm in the slice plane"] if move_mm > IN_PLANE_MOVE_MM else [])
                     + ([" and ".join(on_grid)] if len(on_grid) > 1 else []))


def evenly_spaced_runs(offsets_mm: np.ndarray, rounding_mm: float = 0.0) -> list[list[int]]:
    """Slices (their sorted offsets along the normal, mm, each off by up to rounding_mm: _offset_rounding_mm) as runs
    of evenly spaced ones (indices into offsets_mm), split at the widest gap while it is wider than the run's median
    gap by over EVEN_SPACING_TOLERANCE of it and what rounding makes of a gap against the median
    (_rounding_spread_mm). A run uneven only by narrower gaps stays whole (uneven_spacing warns of it)."""
    gaps = np.diff(offsets_mm)
    if len(gaps) < 2:
        return [list(range(len(offsets_mm)))]
    widest, median = int(np.argmax(gaps)), float(np.median(gaps))
    if gaps[widest] - median <= max(EVEN_SPACING_TOLERANCE * abs(median), _rounding_spread_mm(rounding_mm, median)):
        return [list(range(len(offsets_mm)))]
    after = widest + 1
    return (evenly_spaced_runs(offsets_mm[:after], rounding_mm)
            + [[after + n for n in run] for run in evenly_spaced_runs(offsets_mm[after:], rounding_mm)])


def position_rounding_step_mm(positions: np.ndarray) -> float:
    """The coarsest of POSITION_ROUNDING_STEPS_MM that every coordinate of these slice positions (LPS, mm) is a whole
    multiple of, as an export that rounds them writes them; 0 where there is none (as a scanner writes them)."""
    for step_mm in POSITION_ROUNDING_STEPS_MM:
        if np.allclose(positions, np.round(positions / step_mm) * step_mm, rtol=0.0, atol=1e-4):
            return step_mm
    return 0.0


def _in_plane_rounding_mm(positions: np.ndarray, normal: np.ndarray) -> float:
    """How far apart in their plane, at most, the rounding of these parallel slices' positions
    (position_rounding_step_mm) puts two slices of one field of view: up to a step in each coordinate the stack
    advances along, seen in the plane; none in a coordinate it does not (a stack along an axis: the rounding moves
    every slice alike in the other two, so that a field of view moved in them is still told); at most √3 steps."""
    step_mm = position_rounding_step_mm(positions)
    advancing = np.abs(normal) * np.ptp(positions @ normal) > 1e-3 * step_mm
    return step_mm * min(math.sqrt(3), float(np.sqrt(np.clip(1 - normal[advancing] ** 2, 0.0, None)).sum()))


def _offset_rounding_mm(positions: np.ndarray, normal: np.ndarray) -> float:
    """How far, at most, the rounding of these slice positions (position_rounding_step_mm) moves one along normal."""
    return position_rounding_step_mm(positions) / 2 * float(np.abs(normal).sum())


def _rounding_spread_mm(rounding_mm: float, median_gap_mm: float) -> float:
    """How far a gap between slices each moved by up to rounding_mm may lie from their median gap: 4 rounding_mm,
    but at most half the median, so that a slice missing (a gap wider by a whole median) is still told (slices 1 mm
    apart at whole-mm positions, which rounding leaves evenly spaced)."""
    return min(4 * rounding_mm, abs(median_gap_mm) / 2)


def uneven_spacing(slices: str, normal: np.ndarray, positions: np.ndarray) -> list[str]:
    """The warning that these slices (named so) are unevenly spaced, when the gaps between them differ from their
    median by over the tolerance and what the rounding of their positions makes of a gap (_rounding_spread_mm);
    none otherwise."""
    gaps = np.diff(np.sort(positions @ normal))
    if not len(gaps):
        return []
    median = float(np.median(gaps))
    allowed_mm = max(EVEN_SPACING_TOLERANCE * abs(median),
                     _rounding_spread_mm(_offset_rounding_mm(positions, normal), median))
    if np.abs(gaps - median).max() > allowed_mm:
        return [f"{slices} are unevenly spaced ({gaps.min():.1f}-{gaps.max():.1f} mm apart, or a slice is missing); "
                f"{_CONSEQUENCE}"]
    return []


def one_position_warnings(slices: str, planes: SlicePlanes, images: list[int]) -> list[str]:
    """The warning that these images of a series (named so) all lie at one position, where no tag told them apart
    (one_image_per_position): SimpleITK stacks them 1 mm apart. None where no file of the series has a position
    (header_gaps says so), and for one image."""
    if len(images) < 2 or not planes.has_places or len(set(_position_keys(planes.positions[images]))) > 1:
        return []
    return [f"{slices} all lie at one position and no tag tells them apart (an acquisition repeated?): they are read "
            "as slices 1 mm apart, which is not where they lie; the in-plane measurements hold"]


def is_dicom(reader) -> bool:
    """Whether the file whose header a SimpleITK reader holds is DICOM (it has a SOP Class UID)."""
    return reader.HasMetaDataKey("0008|0016")


def one_stack_warnings(planes: SlicePlanes | None) -> list[str]:
    """What SimpleITK's one-stack reading of a DICOM series with these slice planes gets wrong: slices in
    differently angled blocks (see volume_io.open_axial_blocks), in a field of view moved part way (fields_of_view)
    or unevenly spaced (it reads them as one stack of parallel, evenly spaced slices, each behind the first; the
    in-plane measurements hold, the slice positions do not), or what the first file's header leaves to guess
    (header_gaps). None (an unreadable header): nothing, as reading the series says why."""
    if planes is None:
        return []
    blocks = orientation_blocks(planes.normals)
    if len(blocks) > 1:
        return [f"the DICOM series has slices at {len(blocks)} different angles (angled blocks); {_CONSEQUENCE}"]
    if planes.stacks is not None:
        return [f"the DICOM series' slices lie in {len(set(planes.stacks))} stacks that overlap; {_CONSEQUENCE}"]
    fields = fields_of_view(planes, list(range(planes.n_images)))
    moved = [] if len(fields) == 1 else [
        f"the DICOM series' field of view moves part way through it ({_fields_differ(planes, fields)}); it is read "
        "as one stack of slices each behind the first: the in-plane measurements hold, but z_mm and the places of the "
        "rulers and masks do not; load the series in 3D Slicer for exact positions"]
    return (moved + uneven_spacing("the DICOM series' slices", planes.normals[0], planes.positions)
            + one_position_warnings("the DICOM series' slices", planes, list(range(planes.n_images)))
            + planes.first_gaps)
