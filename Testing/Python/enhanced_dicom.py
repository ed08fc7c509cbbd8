"""An Enhanced MR (multi-frame) DICOM writer for tests: SimpleITK cannot write the per-frame functional groups that
place each frame, so this writes the file byte by byte (PS3.5), explicit or implicit VR little endian, its sequences
of defined or undefined length."""
from __future__ import annotations

import struct

import numpy as np

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
LONG_VRS = {"OB", "OW", "SQ", "UN", "UT"}


class Writer:
    def __init__(self, explicit: bool = True, undefined_lengths: bool = False):
        self.explicit, self.undefined_lengths = explicit, undefined_lengths

    def element(self, group: int, number: int, vr: str, value) -> bytes:
        if vr == "SQ":
            return self._sequence(group, number, value)
        if isinstance(value, bytes):
            body = value
        elif vr in ("FD", "UL", "US"):
            body = struct.pack("<" + {"FD": "d", "UL": "I", "US": "H"}[vr], value)
        else:
            body = value.encode()
            body += (b"\0" if vr == "UI" else b" ") * (len(body) % 2)
        return self._head(group, number, vr, len(body)) + body

    def dataset(self, elements: list[tuple]) -> bytes:
        return b"".join(self.element(*e) for e in sorted(elements, key=lambda e: e[:2]))

    def _head(self, group: int, number: int, vr: str, length: int) -> bytes:
        if not self.explicit:
            return struct.pack("<HHI", group, number, length)
        if vr in LONG_VRS:
            return struct.pack("<HH2sHI", group, number, vr.encode(), 0, length)
        return struct.pack("<HH2sH", group, number, vr.encode(), length)

    def _sequence(self, group: int, number: int, items: list[bytes]) -> bytes:
        if not self.undefined_lengths:
            body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(item)) + item for item in items)
            return self._head(group, number, "SQ", len(body)) + body
        body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + item + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
                        for item in items)
        return self._head(group, number, "SQ", 0xFFFFFFFF) + body + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def frame_planes_lps(image: np.ndarray, geometry) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """Each slice's (Image Position (Patient), Image Orientation (Patient)) of a stack [k, j, i] on geometry."""
    import SimpleITK as sitk

    itk = sitk.GetImageFromArray(image.astype(np.float32))
    geometry.apply_to_sitk(itk)
    d = itk.GetDirection()
    return [(itk.TransformIndexToPhysicalPoint((0, 0, k)), (d[0], d[3], d[6], d[1], d[4], d[7]))
            for k in range(image.shape[0])]


def decimals(values) -> str:
    """A decimal string (DS) of several values."""
    return "\\".join(f"{value:.6f}" for value in values)


def encapsulated_pixels(fragment: bytes) -> bytes:
    """Pixel Data (7FE0,0010) encapsulated, explicit VR: of undefined length, an empty offset table and one
    fragment, then the sequence delimiter."""
    items = [struct.pack("<HHI", 0xFFFE, 0xE000, 0), struct.pack("<HHI", 0xFFFE, 0xE000, len(fragment)) + fragment]
    return (struct.pack("<HH2sHI", 0x7FE0, 0x10, b"OB", 0, 0xFFFFFFFF) + b"".join(items)
            + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))


def write_enhanced_mr(path, frames: np.ndarray, planes_lps, pixel_mm: float, echo_times_ms=None, frame_types=None,
                      explicit: bool = True, undefined_lengths: bool = False, thickness_mm: float = 4.0,
                      instance: int = 1, stack_ids=None, icon: bool = False) -> None:
    """One Enhanced MR file of frames [frame, row, column], each frame placed by its (position, orientation) in
    planes_lps, with an Effective Echo Time, a Frame Type and a Stack ID each where given; instance: its Instance
    Number (and SOP Instance UID's last part); icon: with an Icon Image Sequence whose pixels are encapsulated (as
    compressed, in fragments of undefined length; explicit VR only), as some scanners write one."""
    writer = Writer(explicit, undefined_lengths)
    syntax = "1.2.840.10008.1.2.1" if explicit else "1.2.840.10008.1.2"
    meta = Writer().dataset([(2, 1, "OB", b"\0\1"), (2, 2, "UI", ENHANCED_MR), (2, 3, "UI", "1.2.3.4.5"),
                             (2, 0x10, "UI", syntax)])
    per_frame = []
    for n, (position, orientation) in enumerate(planes_lps):
        groups = [(0x20, 0x9113, "SQ", [writer.dataset([(0x20, 0x32, "DS", decimals(position))])]),
                  (0x20, 0x9116, "SQ", [writer.dataset([(0x20, 0x37, "DS", decimals(orientation))])]),
                  (0x20, 0x9111, "SQ", [writer.dataset([(0x20, 0x9157, "UL", n + 1)] + (
                      [] if stack_ids is None else [(0x20, 0x9056, "SH", stack_ids[n])]))])]
        if echo_times_ms is not None:
            groups.append((0x18, 0x9114, "SQ", [writer.dataset([(0x18, 0x9082, "FD", float(echo_times_ms[n]))])]))
        if frame_types is not None:
            groups.append((0x18, 0x9226, "SQ", [writer.dataset([(0x08, 0x9007, "CS", frame_types[n])])]))
        per_frame.append(writer.dataset(groups))
    pixel_measures = writer.dataset([(0x18, 0x50, "DS", f"{thickness_mm:g}"),
                                     (0x28, 0x30, "DS", f"{pixel_mm:g}\\{pixel_mm:g}")])
    rows, columns = frames.shape[1:]
    # compressed bytes are any bytes: these, read as elements, would open a sequence and hold no item in it
    compressed = struct.pack("<HH2sHI", 0x08, 0x20, b"SQ", 0, 0xFFFFFFFF) + bytes(8)
    icons = [(0x88, 0x200, "SQ", [writer.dataset([(0x28, 0x10, "US", 8), (0x28, 0x11, "US", 8)])
                                  + encapsulated_pixels(compressed)])] if icon else []
    header = writer.dataset([*icons,
        (0x08, 0x08, "CS", "ORIGINAL\\PRIMARY\\M\\NONE"), (0x08, 0x16, "UI", ENHANCED_MR),
        (0x08, 0x18, "UI", f"1.2.3.4.{instance}"), (0x08, 0x60, "CS", "MR"), (0x08, 0x103E, "LO", "t2_tse_tra"),
        (0x20, 0x0D, "UI", "1.2.3"), (0x20, 0x0E, "UI", "1.2.3.4"), (0x20, 0x11, "IS", "5"),
        (0x20, 0x13, "IS", str(instance)), (0x28, 0x02, "US", 1), (0x28, 0x04, "CS", "MONOCHROME2"),
        (0x28, 0x08, "IS", str(len(frames))), (0x28, 0x10, "US", rows), (0x28, 0x11, "US", columns),
        (0x28, 0x100, "US", 16), (0x28, 0x101, "US", 16), (0x28, 0x102, "US", 15), (0x28, 0x103, "US", 0),
        (0x5200, 0x9229, "SQ", [writer.dataset([(0x28, 0x9110, "SQ", [pixel_measures])])]),
        (0x5200, 0x9230, "SQ", per_frame), (0x7FE0, 0x10, "OW", np.asarray(frames, "<u2").tobytes())])
    with open(path, "wb") as file:
        file.write(b"\0" * 128 + b"DICM" + Writer().element(2, 0, "UL", len(meta)) + meta + header)
