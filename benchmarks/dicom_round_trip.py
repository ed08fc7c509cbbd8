"""Real volumes written as DICOM and read back: the DICOM readers must place every slice as the NIfTI file does.

    .venv/bin/python benchmarks/dicom_round_trip.py [--real ../shared/eval/real] [--only TEXT] [--precision float32]

Each real validation volume (evaluate_real's) is rounded to integers (its lowest intensity to 0, its 99.9th
percentile to 3000) and written three ways on its own grid: as NIfTI, as a classic DICOM series (a file a slice, as
the test suite writes one: conftest.write_dicom_series) and as one Enhanced MR file (its frames placed by per-frame
functional groups: enhanced_dicom.write_enhanced_mr). Each is opened as `measure` opens it
(volume_io.open_axial_blocks) and measured by the shipped networks. The slices are matched by their centres' RAS
position (a DICOM reader stacks the slices along the normal their orientation gives, which may run the other way
from the NIfTI array's), and it prints, for each DICOM form, how many blocks and slices it was read as, whether every
slice lies where the NIfTI one does (within 0.01 mm), whether every slice is numbered as the image it was written as
(image_number: the writers number the array's slices 1, 2, ... as Instance Numbers or frames; none where `measure`
reslices the volume), the largest canal AP difference and on how many slices the AP differs by more than 0.05 mm.
The volumes cover LAS, LPS and oblique grids, and a 3-D volume stored in sagittal slices (the SCT T2), which both
readers reslice to axial as the NIfTI one is. DICOM writes positions and direction cosines as decimal text (here to
6 decimals), so a DICOM form's grid differs from the NIfTI one by about 1e-6 mm; the pipeline takes pixel counts as
whole within 1e-6 (geometry.floor_pixels), so that this does not move a measurement.

A fourth form checks placement alone (no networks): the classic series with the field of view of its upper half of
slices moved 20 mm along the rows, the voxels moved with it (the anatomy where it was, zeros where the new field of
view reaches past the old). It must be read as two blocks (dicom_series.fields_of_view) with every slice where it
was imaged; volumes stored in non-axial slices (the SCT T2) are not tried. A fifth does too: the classic series with
every Image Position (Patient) rounded to a whole millimetre, as some exports write them, which moves each slice by
up to 0.87 mm (half a millimetre in each coordinate). It must be read as one block with every slice within
ROUNDED_PLACE_MM of where it was imaged, and no warning (dicom_series.position_rounding_step_mm).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "SpinalStenosis"))
sys.path.insert(0, str(ROOT / "Testing" / "Python"))  # the test suite's DICOM writers

import SimpleITK as sitk  # noqa: E402
from conftest import write_dicom_series  # noqa: E402
from enhanced_dicom import frame_planes_lps, write_enhanced_mr  # noqa: E402
from evaluate_real import REAL_FOLDER, real_volumes  # noqa: E402
from evaluate_synthetic import add_network_options, network_options  # noqa: E402

from SpinalStenosisLib.geometry import AxialLayout, VolumeGeometry, is_axial_normal  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.volume_io import open_axial_blocks, with_image_numbers, write_image  # noqa: E402

FORMS = ("classic series", "Enhanced MR")
SAME_PLACE_MM = 0.01
SAME_AP_MM = 0.05
FIELD_OF_VIEW_MOVE_MM = 20.0
ROUNDED_PLACE_MM = 1.0  # a slice of a series whose positions were rounded to 1 mm lies within √3/2 mm of where imaged


def integer_voxels(path: Path) -> tuple[np.ndarray, VolumeGeometry]:
    """The volume at path as integers, [k, j, i] (its lowest intensity 0, its 99.9th percentile 3000), and its
    grid."""
    image = sitk.ReadImage(str(path))
    voxels = sitk.GetArrayFromImage(image).astype(np.float64)
    voxels = np.round((voxels - voxels.min()) / (np.percentile(voxels, 99.9) - voxels.min()) * 3000).clip(0, 32000)
    return voxels, VolumeGeometry.from_sitk(image)


def written(voxels: np.ndarray, geometry: VolumeGeometry, folder: Path) -> dict[str, Path]:
    """A volume (integer_voxels) written as NIfTI and in both DICOM forms into folder: {form: input}."""
    inputs = {"NIfTI": folder / "volume.nii.gz", FORMS[0]: folder / "series", FORMS[1]: folder / "enhanced.dcm"}
    write_image(inputs["NIfTI"], voxels.astype(np.float32), geometry)
    inputs[FORMS[0]].mkdir()
    spacing_mm = geometry.spacing_mm
    write_dicom_series(inputs[FORMS[0]], voxels, geometry, series=1, tags=(("0018|0050", f"{spacing_mm[2]:.4f}"),))
    write_enhanced_mr(inputs[FORMS[1]], voxels, frame_planes_lps(voxels, geometry), pixel_mm=spacing_mm[0],
                      thickness_mm=spacing_mm[2])
    return inputs


def slice_centres_ras(geometry: VolumeGeometry) -> np.ndarray:
    """The RAS centre of each slice of a grid stored in axial slices (along k, as its layout numbers them), [slice,
    3]."""
    layout = AxialLayout.from_geometry(geometry)
    return np.array([layout.slice_grid(k).centre_ras for k in range(layout.stack_shape[0])])


def rounded_positions(voxels: np.ndarray, geometry: VolumeGeometry, folder: Path) -> np.ndarray:
    """A volume stored in axial slices (integer_voxels) as a classic DICOM series whose Image Positions are rounded
    to whole millimetres (written into folder), and the RAS centre of each slice as imaged, [slice, 3]."""
    write_dicom_series(folder, voxels, geometry, series=1, position_step_mm=1.0)
    return slice_centres_ras(geometry)


def moved_field_of_view(voxels: np.ndarray, geometry: VolumeGeometry, folder: Path) -> np.ndarray:
    """A volume stored in axial slices (integer_voxels) as a classic DICOM series whose upper half's field of view
    moved FIELD_OF_VIEW_MOVE_MM along its rows (written into folder), and the RAS centre of each slice as imaged,
    [slice, 3]."""
    half = voxels.shape[0] // 2
    step_px = int(round(FIELD_OF_VIEW_MOVE_MM / float(np.linalg.norm(geometry.ijk_to_ras[:3, 0]))))
    moved_voxels = np.zeros_like(voxels[half:])
    moved_voxels[:, :, :-step_px] = voxels[half:, :, step_px:]  # the anatomy where it was
    lower, upper = geometry.ijk_to_ras.copy(), geometry.ijk_to_ras.copy()
    upper[:3, 3] += half * upper[:3, 2] + step_px * upper[:3, 0]
    size_ij = geometry.size_ijk[:2]
    parts = [VolumeGeometry((*size_ij, half), lower), VolumeGeometry((*size_ij, len(moved_voxels)), upper)]
    write_dicom_series(folder, voxels[:half], parts[0], series=1)
    write_dicom_series(folder, moved_voxels, parts[1], series=1, first_instance=half)
    return np.concatenate([slice_centres_ras(part) for part in parts])


def placed_as_imaged(folder: Path, centres_ras: np.ndarray, within_mm: float = SAME_PLACE_MM) -> tuple[int, bool, int]:
    """How many blocks the series in folder is read as, whether its slices' centres are these (within within_mm;
    centres_ras in order along the stack, those read in any order), and how many warnings its first block has."""
    blocks = open_axial_blocks(folder)
    read = np.array([volume.layout.slice_grid(k).centre_ras for volume in blocks for k in range(volume.n_slices)])
    along = centres_ras[-1] - centres_ras[0]
    return len(blocks), read.shape == centres_ras.shape and bool(
        np.abs(read[np.argsort(read @ along)] - centres_ras).max() <= within_mm), len(blocks[0].warnings)


class Measured(NamedTuple):
    blocks: int  # how many blocks the input is read as
    centres_ras: np.ndarray  # [slice, 3], the slices' centres, from foot to head
    canal_ap_mm: np.ndarray  # [slice]
    image_numbers: list[str]  # [slice]


def measured(source: Path, segmenter, numbered: bool = False) -> Measured:
    """The input read as `measure` reads it and measured; numbered: each slice numbered as the writers number the
    array's slices (its index along the array's slice axis + 1), where `measure` keeps them as stored."""
    volumes = open_axial_blocks(source)
    if numbered:
        volumes = [with_image_numbers(volume, [str(k + 1) for k in range(volume.n_slices)]) for volume in volumes]
    runs = [measure_with_segmenter(volume, segmenter) for volume in volumes]
    rows = sorted(((run.volume.layout.slice_grid(m.slice_index).centre_ras, m.values["canal_ap_mm"], m.image_number)
                   for run in runs for m in run.measurements), key=lambda row: round(float(row[0][2]), 2))
    return Measured(len(runs), np.array([row[0] for row in rows]), np.array([row[1] for row in rows]),
                    [row[2] for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    parser.add_argument("--only", default="", help="only volumes whose path contains this text")
    add_network_options(parser, compare=False)
    args = parser.parse_args()
    segmenter = load_segmenter(**network_options(args))
    columns = f"{'blocks':>6} {'slices':>6} {'placed':>6} {'numbered':>8} {'max |ΔAP|':>9} {'> 0.05 mm':>9}"
    print(f"{'':58} {'':6}  " + "  ".join(f"{form:^49}" for form in FORMS)
          + f"  {'field of view moved':^13}  {'positions to 1 mm':^22}")
    print(f"{'volume':58} {'slices':>6}  " + "  ".join(columns for _ in FORMS) + f"  {'blocks':>6} {'placed':>6}"
          + f"  {'blocks':>6} {'placed':>6} {'warned':>6}")
    agreeing, numbered = {form: 0 for form in FORMS}, {form: 0 for form in FORMS}
    moved_placed, rounded_placed, placement_tried = 0, 0, 0
    volumes = real_volumes(args.real, args.only)
    for name, path, _, _ in volumes:
        voxels, geometry = integer_voxels(path)
        with tempfile.TemporaryDirectory() as folder:
            inputs = written(voxels, geometry, Path(folder))
            reference = measured(inputs["NIfTI"], segmenter, numbered=True)
            cells = []
            for form in FORMS:
                read = measured(inputs[form], segmenter)
                in_place = (read.centres_ras.shape == reference.centres_ras.shape
                            and np.abs(read.centres_ras - reference.centres_ras).max() <= SAME_PLACE_MM)
                differences = (np.abs(np.nan_to_num(read.canal_ap_mm - reference.canal_ap_mm, nan=np.inf)) if in_place
                               else np.zeros(0))
                differences[np.isnan(read.canal_ap_mm) & np.isnan(reference.canal_ap_mm)] = 0.0
                as_written = in_place and read.image_numbers == reference.image_numbers
                agreeing[form] += in_place
                numbered[form] += as_written
                compared = (f"{differences.max():9.2f} {int((differences > SAME_AP_MM).sum()):9}" if in_place
                            else f"{'-':>9} {'-':>9}")
                cells.append(f"{read.blocks:6} {len(read.centres_ras):6} {'yes' if in_place else 'NO':>6} "
                             f"{'yes' if as_written else 'NO':>8} {compared}")
            moved_folder, rounded_folder = Path(folder) / "moved", Path(folder) / "rounded"
            moved_folder.mkdir()
            rounded_folder.mkdir()
            if not is_axial_normal(geometry.ijk_to_ras[:3, 2]):  # stored in other slices: not tried
                cells.append(f"{'-':>6} {'-':>6}  {'-':>6} {'-':>6} {'-':>6}")
            else:
                blocks, placed, _ = placed_as_imaged(moved_folder, moved_field_of_view(voxels, geometry, moved_folder))
                moved_placed, placement_tried = moved_placed + (blocks == 2 and placed), placement_tried + 1
                cells.append(f"{blocks:6} {'yes' if placed else 'NO':>6}")
                blocks, placed, warnings = placed_as_imaged(
                    rounded_folder, rounded_positions(voxels, geometry, rounded_folder), ROUNDED_PLACE_MM)
                rounded_placed += blocks == 1 and placed and not warnings
                cells.append(f"{blocks:6} {'yes' if placed else 'NO':>6} {warnings:6}")
        print(f"{Path(name).name:58} {len(reference.centres_ras):6}  " + "  ".join(cells), flush=True)
    for form in FORMS:
        print(f"{form}: every slice where the NIfTI file places it on {agreeing[form]} of {len(volumes)} volumes, "
              f"and numbered as the image it was written as on {numbered[form]}")
    print(f"classic series with its field of view moved {FIELD_OF_VIEW_MOVE_MM:g} mm part way: 2 blocks, every slice "
          f"where it was imaged on {moved_placed} of {placement_tried} volumes stored in axial slices")
    print(f"classic series with its positions rounded to 1 mm: 1 block, every slice within {ROUNDED_PLACE_MM:g} mm of "
          f"where it was imaged, no warning, on {rounded_placed} of {placement_tried} volumes stored in axial slices")


if __name__ == "__main__":
    main()
