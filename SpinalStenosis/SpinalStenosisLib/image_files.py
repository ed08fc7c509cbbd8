"""What image files hold that ITK, so SimpleITK and 3D Slicer, reads without a word or against their own header: a
NIfTI, MetaImage or NRRD file, or a picture, cut short or damaged (read with voxels of 0 or of no meaning), what a
header leaves unsure (no orientation, a qform and sform that disagree, a sform's other voxel size, a negative voxel
size that ITK reads as the axis mirrored), and a picture's EXIF orientation, which ITK does not apply."""
from __future__ import annotations

import functools
import gzip
import math
import re
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from .dicom_series import header_reader, header_value, itk_warnings_hidden, positive_value
from .geometry import VolumeGeometry

GZIP_MAGIC, GZIP_WBITS = b"\x1f\x8b", zlib.MAX_WBITS | 16  # a gzip file's first bytes; zlib reads gzip with these
GZIP_CHUNK_BYTES = 1 << 20  # decompressed at a time when counting a gzip file's bytes (_bytes_after)
EXIF_ORIENTATION_TAG = 0x0112  # how a camera, phone or tool says its picture is to be turned for display
# an EXIF orientation → how a viewer turns the stored pixels to show them: transposed?, then rows and columns reversed?
EXIF_TURNS = {2: (False, False, True, "mirrored left to right"), 3: (False, True, True, "turned 180°"),
              4: (False, True, False, "mirrored top to bottom"), 5: (True, False, False, "mirrored about its diagonal"),
              6: (True, False, True, "turned 90° clockwise"),
              7: (True, True, True, "mirrored about its other diagonal"),
              8: (True, True, False, "turned 90° anticlockwise")}


def voxel_fault(path: Path, reader=None) -> str:
    """What is wrong with the voxels of a MetaImage, NRRD or NIfTI file (its header read by reader), or with a
    picture's pixels, as measure says it (_meta_voxel_fault, _nrrd_voxel_fault, _nifti_voxel_fault,
    _picture_fault); "" where nothing is, and for any other file."""
    if not path.is_file():
        return ""
    image_io = _image_io(path)
    if image_io == "MetaImageIO" and (fault := _meta_voxel_fault(path)):
        return f"the MetaImage file's {fault}"
    if image_io == "NrrdImageIO" and (fault := _nrrd_voxel_fault(path)):
        return f"the NRRD file's {fault}"
    if image_io == "NiftiImageIO" and reader is not None and (fault := _nifti_voxel_fault(path, reader)):
        return f"the NIfTI {fault}"
    if image_io in PICTURE_IOS and (fault := _picture_fault(path)):
        return fault
    return ""


@functools.lru_cache(maxsize=16)
def stored_voxel_fault(path_text: str, modified_ns: int, size: int) -> str:
    """voxel_fault of a file, kept for the file as it is (its time and size): 3D Slicer asks at every Measure and
    Re-measure, and a compressed file is decompressed to answer."""
    with itk_warnings_hidden():
        reader = header_reader(path_text)
    return voxel_fault(Path(path_text), reader)


def _nifti_voxel_fault(path: Path, reader) -> str:
    """What is wrong with the voxels a NIfTI file (its header read by reader) stores, which ITK does not tell: cut
    short, as an interrupted copy or download leaves it (ITK reads the missing voxels as 0), or a gzip stream
    damaged (read as whatever it decodes to); or, which ITK tells in its own terms, the .img file of a .hdr/.img pair
    missing. As voxel_fault says it after "the NIfTI "; "" where nothing is."""
    if (voxel_file := _nifti_voxel_file(path, header_value(reader, "nifti_type"))) is None:
        return ""
    if not voxel_file.exists():
        return f"file's .img file {voxel_file.name} is missing (it must lie beside {path.name})"
    try:
        dimension = int(header_value(reader, "dim[0]"))
        needed = math.prod(int(header_value(reader, f"dim[{axis}]")) for axis in range(1, dimension + 1)) \
            * int(header_value(reader, "bitpix")) // 8
        offset = int(float(header_value(reader, "vox_offset")))
    except ValueError:
        return ""
    share = _held_share(lambda: _bytes_after(voxel_file, offset), needed)
    if math.isnan(share):
        return ("file is damaged (its gzip stream does not decompress: a copy or download gone wrong?): its voxels "
                "would be wrong (ITK reads such a file without a word)")
    if share >= 1.0:
        return ""
    return (f"file is cut short (a copy or download interrupted?): {'its .img file ' if voxel_file != path else 'it '}"
            f"holds {_percent_text(share)} % of its voxels, and the others would be read as 0 (ITK reads such a file "
            "without a word)")


PICTURE_IOS = ("JPEGImageIO", "PNGImageIO", "BMPImageIO", "TIFFImageIO")  # ITK's readers of picture files


def _picture_fault(path: Path) -> str:
    """A picture file cut short (a copy or download interrupted), as Pillow finds it: ITK reads a JPEG or BMP file
    so cut without a word, its missing pixels grey or 0; "" where it is whole, or Pillow cannot tell (or is
    missing)."""
    try:
        from PIL import Image
    except ImportError:
        return ""
    picture_format = "picture"
    try:
        with Image.open(path) as picture:
            picture_format = f"{picture.format} picture"
            picture.load()
    except OSError as error:  # a picture Pillow does not read is ITK's to judge
        if "truncated" in str(error):
            return f"the {picture_format} file is cut short (a copy or download interrupted?), its last pixels missing"
    return ""


def _held_share(count_bytes: Callable[[], tuple[int, bool]], needed: int) -> float:
    """The share of the needed bytes a file's voxels hold, by count_bytes (how many, and whether their compressed
    stream ended): 1 where all are there; NaN where the stream is damaged (a zlib.error, or decoded on past the
    voxels without reaching its end, which its checksum closes)."""
    try:
        stored, ended = count_bytes()
    except zlib.error:
        return math.nan
    if stored >= needed:
        return 1.0 if ended else math.nan
    return max(stored, 0) / needed


def _percent_text(share: float) -> str:
    """A share cut short as the messages give it, rounded down (49.9, never 50, for a file a byte short of half)."""
    return f"{math.floor(share * 1000) / 10:g}"


def _nifti_voxel_file(path: Path, nifti_type: str) -> Path | None:
    """The file holding a NIfTI image's voxels: path, or the .img file of a .hdr/.img pair (path either of them), as
    ITK finds it (where it is missing, the name it would have); None where the image is not NIfTI."""
    if nifti_type in ("1", "4"):  # NIfTI-1 or -2, its header and voxels in one file
        return path
    zipped = path.name[-3:] if path.name.lower().endswith(".gz") else ""
    stem = path.name[:len(path.name) - len(zipped)]
    if nifti_type not in ("2", "5") or stem[-4:].lower() not in (".hdr", ".img"):  # not a NIfTI-1 or -2 pair
        return None
    candidates = [path.with_name(stem[:-4] + suffix + zipped) for suffix in (".img", ".IMG")]
    return next((candidate for candidate in candidates if candidate.exists()), candidates[0])


# the bytes of a MetaImage file's element types (ElementType)
META_ELEMENT_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                      "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
                      "MET_DOUBLE": 8}


def _meta_voxel_fault(path: Path) -> str:
    """What is wrong with the voxels of a MetaImage file (an .mha, or an .mhd and the data file it names): the data
    file missing, or the data cut short (a copy or download interrupted), where ITK's reason is an unrelated "No such
    file or directory", or their compressed stream damaged, which ITK reads without a word; "" where it is none of
    these."""
    fields: dict[str, str] = {}
    with open(path, "rb") as file:
        while (line := file.readline()) and "ElementDataFile" not in fields:
            key, _, value = line.decode("latin-1").partition("=")
            fields[key.strip()] = value.strip()
        header_bytes = file.tell() - len(line)
    name = fields.get("ElementDataFile", "")
    if name == "LOCAL":
        data_file = path
    elif name:
        data_file, missing = _named_data_file(path, name)
        if data_file is None or missing:
            return missing
    else:
        return ""
    try:
        offset = header_bytes if data_file == path else max(int(fields.get("HeaderSize", "0")), 0)
        needed = math.prod(int(size) for size in fields["DimSize"].split()) \
            * int(fields.get("ElementNumberOfChannels", "1")) * META_ELEMENT_BYTES[fields["ElementType"]]
    except (KeyError, ValueError):
        return ""
    compressed = fields.get("CompressedData", "False").lower() == "true"
    return _data_fault("data are" if data_file == path else f"data file {name} is", data_file, offset, needed,
                       zlib.MAX_WBITS if compressed else None)


# the bytes of an NRRD file's types (its "type" field's words, as teem spells them), by the first word in them
NRRD_TYPE_BYTES = (("float", 4), ("double", 8), ("char", 1), ("int8", 1), ("short", 2), ("int16", 2), ("long", 8),
                   ("int64", 8), ("int", 4))
NRRD_GZIP_ENCODINGS = ("gzip", "gz")


def _nrrd_voxel_fault(path: Path) -> str:
    """What is wrong with the voxels of an NRRD file (an .nrrd, or an .nhdr and the one data file it names) of raw or
    gzip encoding: the data file missing, or the data cut short, where ITK's reason is in its own terms ("couldn't
    open", "expected ... bytes but received ..."), or their gzip stream damaged, which ITK reads without a word; ""
    where it is none of these, or another encoding."""
    fields: dict[str, str] = {}
    with open(path, "rb") as file:
        while (line := file.readline()) and line.strip():
            key, colon, value = line.decode("latin-1").partition(":")
            if colon and not value.startswith("="):  # key:=value pairs hold no geometry nor data
                fields[key.strip().lower().replace(" ", "")] = value.strip()
        header_bytes = file.tell()
    name, encoding = fields.get("datafile", ""), fields.get("encoding", "").lower()
    if encoding not in ("raw", *NRRD_GZIP_ENCODINGS) or fields.get("lineskip", "0") not in ("", "0"):
        return ""
    if not name:
        data_file, offset = path, header_bytes
    else:
        data_file, missing = _named_data_file(path, name)
        if data_file is None or missing:
            return missing
        offset = 0
    try:
        skip = int(fields.get("byteskip", "0") or 0)
        element_bytes = next(size for word, size in NRRD_TYPE_BYTES if word in fields["type"].lower())
        needed = math.prod(int(size) for size in fields["sizes"].split()) * element_bytes
    except (KeyError, ValueError, StopIteration):
        return ""
    if skip < 0:  # the data at the file's end: nothing tells where they begin
        return ""
    gzip_stream = encoding in NRRD_GZIP_ENCODINGS
    return _data_fault("data are" if data_file == path else f"data file {name} is", data_file,
                       offset + (0 if gzip_stream else skip), needed + (skip if gzip_stream else 0),
                       GZIP_WBITS if gzip_stream else None)


def _named_data_file(path: Path, name: str) -> tuple[Path | None, str]:
    """The one data file a MetaImage or NRRD header (at path) names, beside it, and what is wrong where it is
    missing; (None, "") where the header names a list or a pattern of files, which are not checked."""
    if name.startswith("LIST") or " " in name or "%" in name:
        return None, ""
    data_file = path.parent / name
    return data_file, "" if data_file.is_file() else f"data file {name} is missing (it must lie beside {path.name})"


def _data_fault(data: str, data_file: Path, offset: int, needed: int, wbits: int | None) -> str:
    """What is wrong with the voxels a data file holds from its byte offset on (data: what the message calls them),
    needed bytes of them, stored as they are or in a zlib stream of wbits: cut short or damaged; "" where neither."""
    share = _held_share(lambda: _inflated_bytes(data_file, offset, wbits) if wbits is not None
                        else (data_file.stat().st_size - offset, True), needed)
    if math.isnan(share):
        return f"{data} damaged (the compressed voxels do not decompress: a copy or download gone wrong?)"
    if share >= 1.0:
        return ""
    return f"{data} cut short (a copy or download interrupted?), holding {_percent_text(share)} % of the image's voxels"


def _inflated_bytes(path: Path, offset: int, wbits: int = zlib.MAX_WBITS) -> tuple[int, bool]:
    """How many bytes the zlib (or, by wbits, gzip) stream from a file's byte offset on decompresses to, up to where
    it or the file ends, and whether it ended (its checksum found right; a zlib.error where the data show it
    damaged)."""
    with open(path, "rb") as file:
        file.seek(offset)
        count, decompressor = 0, zlib.decompressobj(wbits)
        while (pending := file.read(GZIP_CHUNK_BYTES)) and not decompressor.eof:
            while pending:
                count += len(decompressor.decompress(pending, GZIP_CHUNK_BYTES))
                pending = decompressor.unconsumed_tail
    return count, decompressor.eof


def is_gzip(path: Path) -> bool:
    """Whether the file at path is gzip-compressed (by its first bytes, whatever its name)."""
    with open(path, "rb") as file:
        return file.read(2) == GZIP_MAGIC


def _bytes_after(path: Path, offset: int) -> tuple[int, bool]:
    """How many bytes a file holds after its first offset ones: a gzip file's decompressed (each of its members, as
    cat joins them), up to where its stream or the file ends; and whether its stream ended (its checksum found
    right; True for a file not compressed; a zlib.error where the data show it damaged)."""
    if not is_gzip(path):
        return max(path.stat().st_size - offset, 0), True
    with open(path, "rb") as file:
        count, pending, decompressor = 0, b"", zlib.decompressobj(GZIP_WBITS)
        while pending or (pending := file.read(GZIP_CHUNK_BYTES)):
            if decompressor.eof:
                if not pending.startswith(GZIP_MAGIC):
                    break  # bytes after the stream (zeros a tool padded it with) hold no voxels
                decompressor = zlib.decompressobj(GZIP_WBITS)
            count += len(decompressor.decompress(pending, GZIP_CHUNK_BYTES))
            pending = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
    return max(count - offset, 0), decompressor.eof


def mirrored_axes(reader) -> list[int]:
    """The axes of an image file (its header read by a SimpleITK reader) whose voxel size the header gives negative
    (a NIfTI pixdim), which ITK reads mirrored against the header's orientation: it turns the axis's direction round
    when it reads the voxels. [] for a reader of a series, or of no header."""
    import SimpleITK as sitk  # deferred: Slicer loads the module before dependencies are checked

    spacing = reader.GetSpacing() if isinstance(reader, sitk.ImageFileReader) else ()
    return [axis for axis, size in enumerate(spacing) if size < 0]


def header_warnings(path: Path, reader, slice_axis_ijk: int) -> list[str]:
    """What the header of an image file that is not DICOM (at path; held by a SimpleITK reader) leaves unsure, as
    warnings: its orientation (_unknown_orientation, or a NIfTI file's qform and sform: _qform_sform_warnings), or a
    NIfTI file's voxel size (_sform_voxel_size_warnings; slice_axis_ijk: the array axis the slices are stacked
    along)."""
    nifti = is_nifti(path)
    if unknown := _unknown_orientation(reader, nifti):
        return [f"the {unknown}: the image is taken as its array lies, which the file does not confirm; check which "
                "foramen is left and which is right"]
    if not nifti:
        return []
    return _qform_sform_warnings(reader) + _sform_voxel_size_warnings(reader, slice_axis_ijk)


QFORM_SFORM_DEG = 5.0  # a NIfTI file's qform and sform that orient its rows or columns further apart disagree


def _qform_sform_warnings(reader) -> list[str]:
    """A warning where a NIfTI file's qform and sform (both set; its header read by a SimpleITK reader) orient its
    rows or columns (i, j) more than QFORM_SFORM_DEG apart, as where a tool changed one and not the other: the image
    is read with one of them (ITK's choice, the sform as a rule), which may not be the scan's. [] otherwise, and for
    a file whose header cannot say."""
    if header_value(reader, "qform_code") in ("", "0") or (sform := _sform(reader)) is None:
        return []
    try:
        b, c, d = (float(header_value(reader, f"quatern_{name}")) for name in "bcd")
    except ValueError:
        return []
    a = math.sqrt(max(1.0 - b * b - c * c - d * d, 0.0))
    qform = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                      [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                      [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c]])  # RAS, by column
    sform_axes = sform[:, :2] / np.maximum(np.linalg.norm(sform[:, :2], axis=0), 1e-12)
    apart_deg = max(math.degrees(math.acos(np.clip(qform[:, n] @ sform_axes[:, n], -1.0, 1.0))) for n in (0, 1))
    if apart_deg <= QFORM_SFORM_DEG:
        return []
    read_ras = VolumeGeometry.from_sitk(reader).directions_ras[:, :2]
    used = "sform" if np.abs(read_ras - sform_axes).max() < np.abs(read_ras - qform[:, :2]).max() else "qform"
    return [f"the NIfTI header's qform and sform orient the image differently (its rows or columns {apart_deg:.0f}° "
            f"apart): it was read with its {used}, as ITK, SimpleITK and 3D Slicer read it, which may not be the "
            "scan's; check which foramen is left and which is right"]


def negative_size_text(reader) -> str:
    """What a header that gives a negative voxel size (mirrored_axes) gives, as the warnings say it."""
    return (f"gives a negative voxel size ({' × '.join(f'{size:.4g}' for size in reader.GetSpacing())} mm), which "
            "ITK, so SimpleITK and 3D Slicer, reads as that axis mirrored against the header's orientation")


def is_nifti(path: Path) -> bool:
    """Whether ITK reads the file at path as NIfTI. Its header's NIfTI fields do not tell: SimpleITK writes them into
    an NRRD or MetaImage file converted from a NIfTI one, as fields of its own."""
    return _image_io(path) == "NiftiImageIO"


def _image_io(path: Path) -> str:
    """The ITK ImageIO that reads the file at path (e.g. "NiftiImageIO", "MetaImageIO"; "" for none)."""
    import SimpleITK as sitk  # deferred: Slicer loads the module before dependencies are checked

    return sitk.ImageFileReader.GetImageIOFromFileName(str(path))


def _sform(reader) -> np.ndarray | None:
    """A NIfTI header's sform (a SimpleITK reader holding it): its rows srow_x, srow_y, srow_z (3 x 4, in the
    header's units); None where it is not set, or cannot be read."""
    if header_value(reader, "sform_code") in ("", "0"):
        return None
    try:
        sform = np.array([[float(v) for v in header_value(reader, f"srow_{axis}").split()] for axis in "xyz"])
    except ValueError:
        return None
    return sform if sform.shape == (3, 4) else None


def _unknown_orientation(reader, nifti: bool) -> str:
    """Why an image file's header (a SimpleITK reader holding it; nifti: whether ITK reads the file as NIfTI, see
    is_nifti) leaves its orientation unknown, where it can say one: a NIfTI file whose qform and sform codes are 0,
    an NRRD file without a space field; "" otherwise."""
    if nifti and all(header_value(reader, code) == "0" for code in ("qform_code", "sform_code")):
        return "NIfTI header gives no orientation (its qform and sform codes are 0)"
    if header_value(reader, "ITK_InputFilterName") == "NrrdImageIO" and not reader.HasMetaDataKey("NRRD_space"):
        return "NRRD header gives no orientation (no space field)"
    return ""


NIFTI_MM_PER_UNIT = {1: 1000.0, 3: 0.001}  # NIfTI's spatial units (xyzt_units): metres, microns; else mm


def _sform_voxel_size_warnings(reader, slice_axis_ijk: int) -> list[str]:
    """A warning where a NIfTI file's sform gives other voxel sizes (its columns' lengths) than its pixdim, with
    which ITK, so SimpleITK and 3D Slicer, read the image (ITK's own warning, "unexpected scales in sform", is not
    shown: volume_io._read; a pixdim of 0 it reads as 1 mm): one of them is not the scan's, and the measurements
    follow the pixdim. slice_axis_ijk: the array axis (i, j, k) the slices are stacked along. [] for any other
    file."""
    if reader.GetDimension() < 3 or (sform := _sform(reader)) is None:
        return []
    pixdim_mm = np.abs(reader.GetSpacing()[:3])
    units = int(positive_value(header_value(reader, "xyzt_units")) or 0) & 7  # the sform is in them, not in mm
    sform_mm = np.linalg.norm(sform[:, :3], axis=0) * NIFTI_MM_PER_UNIT.get(units, 1.0)
    agree = np.isclose(sform_mm, pixdim_mm, rtol=0.01)
    if agree.all():
        return []
    in_plane = [axis for axis in range(3) if axis != slice_axis_ijk]
    off = ("the lengths and areas measured" if not agree[in_plane].all() else
           "the slices' spacing and positions along the spine (z_mm), not the in-plane measurements,")
    sizes = {name: " × ".join(f"{v:.4g}" for v in mm) for name, mm in (("pixdim", pixdim_mm), ("sform", sform_mm))}
    return [f"the NIfTI header's voxel size ({sizes['pixdim']} mm, its pixdim), which the image was measured with, as "
            f"ITK, SimpleITK and 3D Slicer read it, is not its sform's ({sizes['sform']} mm): one is not the scan's; "
            f"if the sform's is, {off} are off by their ratio"]


# the suffix by which ITK picks its reader for a file of these formats (it reads a DICOM, PNG or BMP file by its
# bytes, whatever its name, but not these); a picture Pillow reads in another format, ITK does not read at all
NAMED_FORMATS = {"NIfTI": ".nii", "NRRD": ".nrrd", "MetaImage": ".mha", "JPEG": ".jpg", "TIFF": ".tif"}
NIFTI_MAGIC = ((344, (b"n+1\0",)), (4, (b"n+2\0",)))  # NIfTI-1 and NIfTI-2 one-file images: where, what
HEADER_BYTES = 4096  # read of a file to tell its format


def misnamed_fault(path: Path) -> str:
    """What a file ITK finds no reader for is, by its first bytes, and what to do: a format ITK reads under another
    name (a NIfTI file, gzip-compressed or not, an NRRD, MetaImage, JPEG or TIFF file; renamed, as a download may
    be), a picture format it does not read (GIF, WebP), or a gzip file named without .gz; "" for any other."""
    zipped = is_gzip(path)
    try:
        with (gzip.open(path, "rb") if zipped else open(path, "rb")) as file:
            head = file.read(HEADER_BYTES)
    except (OSError, EOFError, zlib.error):
        head = b""
    if any(head[at:at + 4] in magics for at, magics in NIFTI_MAGIC):
        kind = "NIfTI"
    elif head.startswith(b"NRRD000") and not zipped:
        kind = "NRRD"
    elif re.match(rb"\s*(ObjectType|NDims)\s*=", head) and not zipped:
        kind = "MetaImage"
    else:
        kind = "" if zipped else exif_orientation(path)[1]
    if kind and kind not in NAMED_FORMATS:
        return f"a {kind} picture, which SimpleITK does not read: save it as PNG"
    suffix = NAMED_FORMATS.get(kind, "") + (".gz" if zipped else "")
    if not suffix:
        return ""
    kept = next(n for n in range(len(suffix), -1, -1) if path.name.lower().endswith(suffix[:n]))
    what = f"a {'gzip-compressed ' if zipped else ''}file" + (f" in {kind} format" if kind else "")
    return (f"{what} whose name does not end in {suffix} (a download renamed?), by which SimpleITK picks its reader: "
            f"rename it {path.name}{suffix[kept:]}")


def exif_orientation(path: Path) -> tuple[int, str]:
    """A picture file's EXIF orientation (a key of EXIF_TURNS; 1, as stored, where it has none or is not a picture
    Pillow reads) and its format (Pillow's name, e.g. "JPEG"; "" for a file that is not a picture, and where Pillow
    is missing: 3D Slicer may not have it before the first export)."""
    try:
        from PIL import Image
    except ImportError:
        return 1, ""
    try:
        with Image.open(path) as picture:
            orientation = picture.getexif().get(EXIF_ORIENTATION_TAG, 1)
            return (orientation if orientation in EXIF_TURNS else 1), picture.format or ""
    except OSError:  # not a picture Pillow reads (UnidentifiedImageError), or a folder
        return 1, ""


def as_displayed(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """A picture's pixels [row, column, ...] turned as a viewer shows them (EXIF_TURNS; as stored for 1)."""
    if orientation not in EXIF_TURNS:
        return pixels
    transposed, rows_reversed, columns_reversed, _ = EXIF_TURNS[orientation]
    pixels = pixels.swapaxes(0, 1) if transposed else pixels
    return pixels[::-1 if rows_reversed else 1, ::-1 if columns_reversed else 1]


def displayed_turn(path: Path) -> str:
    """How a picture file's EXIF orientation turns it for display (e.g. "turned 90° clockwise"); "" where it does
    not."""
    orientation, _ = exif_orientation(path)
    return EXIF_TURNS[orientation][3] if orientation in EXIF_TURNS else ""
