"""The frames of an Enhanced (multi-frame) DICOM file as its functional groups give them: where each frame lies and
what image it is. SimpleITK (GDCM) reads only the shared and the first frame's groups and takes the frames as one
evenly spaced stack, so frames at several angles (blocks), of several image sets (echoes, a Dixon sequence's water
and fat) or parted by gaps would be misplaced without this; the sequences it needs are not in SimpleITK's header."""
from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, TypeVar

import numpy as np

Tag = tuple[int, int]
UNDEFINED_LENGTH = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)
PIXEL_DATA_GROUP = 0x7FE0
IMPLICIT_LITTLE, EXPLICIT_BIG, DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"
# value representations whose length takes 4 bytes after 2 reserved ones in explicit VR (PS3.5 7.1.2)
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
NUMBER_OF_FRAMES = (0x0028, 0x0008)
SHARED_GROUPS, PER_FRAME_GROUPS = (0x5200, 0x9229), (0x5200, 0x9230)
# what is read of each frame: (functional group sequence, element in its item)
PLANE_POSITION = ((0x0020, 0x9113), (0x0020, 0x0032))  # Plane Position Sequence > Image Position (Patient)
PLANE_ORIENTATION = ((0x0020, 0x9116), (0x0020, 0x0037))  # Plane Orientation Sequence > Image Orientation (Patient)
SLICE_THICKNESS = ((0x0028, 0x9110), (0x0018, 0x0050))  # Pixel Measures Sequence > Slice Thickness
PIXEL_SPACING = ((0x0028, 0x9110), (0x0028, 0x0030))  # Pixel Measures Sequence > Pixel Spacing (rows, columns)
EFFECTIVE_ECHO_TIME = ((0x0018, 0x9114), (0x0018, 0x9082))  # MR Echo Sequence > Effective Echo Time (FD)
FRAME_TYPE = ((0x0018, 0x9226), (0x0008, 0x9007))  # MR Image Frame Type Sequence > Frame Type
FRAME_ACQUISITION_NUMBER = ((0x0020, 0x9111), (0x0020, 0x9156))  # Frame Content Sequence > (US)
TEMPORAL_POSITION_INDEX = ((0x0020, 0x9111), (0x0020, 0x9128))  # Frame Content Sequence > (UL)
STACK_ID = ((0x0020, 0x9111), (0x0020, 0x9056))  # Frame Content Sequence > Stack ID (SH)
PIXEL_VALUE_TRANSFORMATION = (0x0028, 0x9145)  # the functional group of the Rescale Slope and Intercept
# the sequences read, known as such where the transfer syntax does not say (implicit VR)
SEQUENCES = {SHARED_GROUPS, PER_FRAME_GROUPS, PIXEL_VALUE_TRANSFORMATION, *(group for group, _ in (
    PLANE_POSITION, PLANE_ORIENTATION, SLICE_THICKNESS, PIXEL_SPACING, EFFECTIVE_ECHO_TIME, FRAME_TYPE,
    FRAME_ACQUISITION_NUMBER, TEMPORAL_POSITION_INDEX, STACK_ID))}


class Frame(NamedTuple):
    position_lps: np.ndarray  # the frame's first pixel's centre, mm
    direction_lps: np.ndarray  # [3, 3], columns: along a row, down a column, and their cross product (the normal)
    pixel_mm: tuple[float, float]  # along a row and down a column (SimpleITK's x and y spacing)
    thickness_mm: float | None
    echo_time_ms: str  # Effective Echo Time; "" without one
    frame_type: str  # e.g. "ORIGINAL\\PRIMARY\\WATER\\NONE"; "" without one
    acquisition_number: str
    temporal_position: str
    stack_id: str  # the stack (a group of frames placed together, as one block of slices) it belongs to; "" without


def read_frames(path: Path | str) -> list[Frame] | None:
    """Each frame of an Enhanced (multi-frame) DICOM file, one or more, from its per-frame and shared functional
    groups; None when the file is not one (no DICOM preamble, no per-frame groups, a frame without a position,
    orientation or pixel spacing) or is written so that it cannot be read here (big-endian or deflated), where
    SimpleITK's reading stands."""
    return _read_mapped(path, _frames, None)


def header_text(path: Path | str, tags: Iterable[Tag]) -> dict[Tag, str]:
    """The text of those of these elements a DICOM file has, read here, at its top level or else in its shared
    functional groups (where GDCM writes an MR image's Rescale Slope and Intercept): SimpleITK reads no header that
    GDCM cannot read the pixels with (a Rescale Slope that is not a number); {} where the file cannot be read here
    (as read_frames)."""
    header = _read_mapped(path, _header, None) or {}
    shared = (header.get(SHARED_GROUPS) or [{}])[0]
    grouped = {tag: value for group in shared.values() if isinstance(group, list) and group
               for tag, value in group[0].items()}
    found = {**grouped, **header}
    return {tag: _text(found[tag]) for tag in tags if isinstance(found.get(tag), bytes)}


def transfer_syntax(path: Path | str) -> str:
    """A DICOM file's Transfer Syntax UID (0002,0010), how its pixels are stored or compressed; "" where it has none
    or cannot be read here (as read_frames)."""
    return _read_mapped(path, lambda data: _meta(data)[0] if data[128:132] == b"DICM" else "", "")


Read = TypeVar("Read")


def _read_mapped(path: Path | str, read: Callable[[mmap.mmap], Read], otherwise: Read) -> Read:
    """read of a file's bytes (mapped, not loaded); otherwise where the file cannot be opened, or is not well formed
    (its elements run past its end, or nest deeper than Python recurses)."""
    try:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return read(data)
    except (OSError, ValueError, struct.error, IndexError, RecursionError):
        return otherwise


def _meta(data) -> tuple[str, int]:
    """A DICOM file's Transfer Syntax UID, from its file meta information, and where its dataset begins."""
    meta, start = _dataset(data, 132, len(data), explicit=True, stop_group=0x0003)
    return meta.get((0x0002, 0x0010), b"").decode("ascii").strip("\0 "), start


def _header(data) -> dict | None:
    """A DICOM file's elements up to its pixel data (see _dataset); None where it is not DICOM, or is written so
    that it cannot be read here (big-endian or deflated)."""
    if data[128:132] != b"DICM":
        return None
    syntax, start = _meta(data)
    if syntax in (EXPLICIT_BIG, DEFLATED):
        return None
    return _dataset(data, start, len(data), explicit=syntax != IMPLICIT_LITTLE, stop_group=PIXEL_DATA_GROUP)[0]


def _frames(data) -> list[Frame] | None:
    header = _header(data)
    if header is None:
        return None
    per_frame = header.get(PER_FRAME_GROUPS)
    frames = int(_text(header.get(NUMBER_OF_FRAMES, b"1")) or 1)
    if not isinstance(per_frame, list) or frames < 1 or len(per_frame) != frames:
        return None
    shared = (header.get(SHARED_GROUPS) or [{}])[0]
    read = [_frame(groups, shared) for groups in per_frame]
    return None if any(frame is None for frame in read) else read


def _frame(groups: dict, shared: dict) -> Frame | None:
    """A frame from its functional groups, each taken from the shared ones where the frame has none."""
    def value(where: tuple[Tag, Tag]) -> bytes:
        sequence, element = where
        items = groups.get(sequence) or shared.get(sequence) or [{}]
        return items[0].get(element, b"")

    position, orientation = _numbers(value(PLANE_POSITION)), _numbers(value(PLANE_ORIENTATION))
    between_rows, between_columns = (*_numbers(value(PIXEL_SPACING)), 0.0, 0.0)[:2]
    if len(position) != 3 or len(orientation) != 6 or min(between_rows, between_columns) <= 0:
        return None
    along_row, down_column = orientation[:3], orientation[3:]
    thickness = _numbers(value(SLICE_THICKNESS))
    echo_time = value(EFFECTIVE_ECHO_TIME)
    return Frame(position, np.column_stack([along_row, down_column, np.cross(along_row, down_column)]),
                 (float(between_columns), float(between_rows)),
                 float(thickness[0]) if len(thickness) and thickness[0] > 0 else None,
                 f"{struct.unpack('<d', echo_time[:8])[0]:g}" if len(echo_time) >= 8 else "",
                 _text(value(FRAME_TYPE)), _unsigned(value(FRAME_ACQUISITION_NUMBER)),
                 _unsigned(value(TEMPORAL_POSITION_INDEX)), _text(value(STACK_ID)))


def _dataset(data, at: int, end: int, explicit: bool, stop_group: int = 0x10000) -> tuple[dict, int]:
    """The elements from at to end (or to an item's end) as {tag: bytes, or a sequence's items as datasets}, and
    where they end; reading stops before the first element of stop_group or above (the pixel data)."""
    elements: dict = {}
    while at < end:
        group, number = struct.unpack_from("<HH", data, at)
        if (group, number) == ITEM_END:
            return elements, at + 8
        if group >= stop_group:
            break
        vr = bytes(data[at + 4:at + 6]) if explicit else b""
        if vr in LONG_VRS:
            length, value_at = struct.unpack_from("<I", data, at + 8)[0], at + 12
        elif explicit:
            length, value_at = struct.unpack_from("<H", data, at + 6)[0], at + 8
        else:
            length, value_at = struct.unpack_from("<I", data, at + 4)[0], at + 8
        if length == UNDEFINED_LENGTH and explicit and vr not in (b"SQ", b"UN"):  # encapsulated (an icon's) pixels
            _, at = _items(data, value_at, length, explicit, fragments=True)
        elif vr == b"SQ" or length == UNDEFINED_LENGTH or (not explicit and (group, number) in SEQUENCES):
            # an undefined-length UN holds an implicit-VR sequence (PS3.5 6.2.2)
            elements[(group, number)], at = _items(data, value_at, length, explicit and vr != b"UN")
        else:
            elements[(group, number)] = bytes(data[value_at:value_at + length])
            at = value_at + length
    return elements, at


def _items(data, at: int, length: int, explicit: bool, fragments: bool = False) -> tuple[list[dict], int]:
    """A sequence's items (datasets) from at, of this length (or up to its delimiter), and where it ends; of
    encapsulated pixel data (fragments), none, only where it ends."""
    end = len(data) if length == UNDEFINED_LENGTH else at + length
    items = []
    while at < end:
        tag, item_length = struct.unpack_from("<HH", data, at), struct.unpack_from("<I", data, at + 4)[0]
        at += 8
        if tag == SEQUENCE_END:
            break
        if tag != ITEM:
            raise ValueError(f"not a sequence item: {tag}")
        if fragments:
            at += item_length
            continue
        if item_length == UNDEFINED_LENGTH:
            item, at = _dataset(data, at, end, explicit)
        else:
            item, _ = _dataset(data, at, at + item_length, explicit)
            at += item_length
        items.append(item)
    return items, at


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace").strip("\0 ")


def _numbers(value: bytes) -> np.ndarray:
    """A decimal string's values (backslash-separated)."""
    text = _text(value)
    return np.array([float(part) for part in text.split("\\")]) if text else np.zeros(0)


def _unsigned(value: bytes) -> str:
    """A US or UL value as text; "" without one."""
    if len(value) in (2, 4):
        return str(struct.unpack("<H" if len(value) == 2 else "<I", value)[0])
    return ""
