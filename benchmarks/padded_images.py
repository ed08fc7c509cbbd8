"""Real images that end in padding: as an oblique reslice leaves it in the corners, and through the canal.

    .venv/bin/python benchmarks/padded_images.py [--real ../shared/eval/real] [--only TEXT] [--precision float32]

A scanner or a reslice fills what lies beyond the imaged area with zeros (visibility.padding), and network 2's crop
is filled with zeros beyond the slice's edge too (crop.resample): to the networks both look alike. Each real volume
is measured as it is, then again with every slice's corners zeroed (four triangles, each cutting CORNER_SHARE of the
slice's height and width, as an oblique reslice leaves them), and three times with every slice that has a canal
zeroed from a line across its canal onwards (towards the patient's left), keeping a quarter, half or three quarters
of the canal's width in view. For each, it prints on how many of those slices a canal is found where the first one
was (overlapping it), how many of these have a canal AP within 1 mm of the first, are flagged as cut by the field of
view (measurement.cut_by_edge) and are to check at all, and on how many the canal is found elsewhere (and of those,
to check) or not at all.
The default volumes are those whose canal fills the image's middle: the cervical ones with cord masks, the
MyoSegmenTUM water images and the whole CHAOS volumes (evaluate_real's).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_real import REAL_FOLDER, real_volumes  # noqa: E402
from evaluate_synthetic import add_network_options, network_options  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.volume_io import open_axial  # noqa: E402

KEPT_SHARES = (0.75, 0.5, 0.25)
CORNER_SHARE = 0.3
DEFAULT_FOLDERS = ("gmchallenge_cervical_t2star", "sct_testing_cervical", "chaos_and_myosegmentum")
CANAL = 1
OUTCOMES = ("slices", "in place", "AP 1 mm", "cut", "to check", "elsewhere", "elsewhere to check", "none")


def padded_through_canal(volume, canal_columns: dict[int, tuple[int, int]], kept_share: float):
    """The volume with each slice in canal_columns (its canal's first and last column) zeroed from the column that
    keeps kept_share of the canal's width in view."""
    read_slice = volume.read_slice

    def padded(s: int) -> np.ndarray:
        image = read_slice(s).copy()
        if s in canal_columns:
            first, last = canal_columns[s]
            image[:, int(first + kept_share * (last - first)) + 1:] = 0.0
        return image

    return replace(volume, read_slice=padded)


def corners_zeroed(volume):
    """The volume with every slice's four corners zeroed: the triangles cutting CORNER_SHARE of its height and width."""
    read_slice = volume.read_slice

    def padded(s: int) -> np.ndarray:
        image = read_slice(s).copy()
        height, width = image.shape
        rows, columns = np.indices(image.shape)
        from_top, from_left = rows / height, columns / width
        from_bottom, from_right = (height - 1 - rows) / height, (width - 1 - columns) / width
        image[(np.minimum(from_top, from_bottom) + np.minimum(from_left, from_right)) < CORNER_SHARE] = 0.0
        return image

    return replace(volume, read_slice=padded)


def outcomes(first, run) -> dict[str, int]:
    """On the slices where the first run found a canal: the canal found in its place, its AP within 1 mm of the
    first, flagged as cut or to check; found elsewhere, and to check; not found."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for s, first_measurement in enumerate(first.measurements):
        canal = first.stack_labels[s] == CANAL
        if not canal.any():
            continue
        counts["slices"] += 1
        found, m = run.stack_labels[s] == CANAL, run.measurements[s]
        if not found.any():
            counts["none"] += 1
        elif not (found & canal).any():
            counts["elsewhere"] += 1
            counts["elsewhere to check"] += m.is_to_check("canal")
        else:
            counts["in place"] += 1
            counts["AP 1 mm"] += abs(m.values["canal_ap_mm"] - first_measurement.values["canal_ap_mm"]) <= 1.0
            counts["cut"] += "canal" in m.cut_by_field_of_view
            counts["to check"] += m.is_to_check("canal")
    return counts


def print_row(name: str, view: str, counts: dict[str, int]) -> None:
    print(f"{name[-48:]:48s} {view:>16s} " + " ".join(f"{counts[key]:{len(key)}d}" for key in OUTCOMES), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    parser.add_argument("--only", default="", help="only volumes whose path contains this text (default: those in "
                                                   f"{', '.join(DEFAULT_FOLDERS)})")
    add_network_options(parser, compare=False)
    args = parser.parse_args()
    segmenter = load_segmenter(threads=2, **network_options(args))
    volumes = [(name, path) for name, path, _, _ in real_volumes(args.real, args.only)
               if args.only or any(folder in str(path) for folder in DEFAULT_FOLDERS)]
    views = {f"corners {CORNER_SHARE:.0%}": lambda volume, _: corners_zeroed(volume)}
    views.update({f"canal {share:.0%} shown": lambda volume, columns, share=share: padded_through_canal(
        volume, columns, share) for share in KEPT_SHARES})
    totals = {view: dict.fromkeys(OUTCOMES, 0) for view in views}
    print(f"{'volume':48s} {'view':>16s} " + " ".join(OUTCOMES))
    for name, path in volumes:
        volume = open_axial(path)
        first = measure_with_segmenter(volume, segmenter)
        canal_columns = {}
        for s in range(volume.n_slices):
            columns = np.nonzero((first.stack_labels[s] == CANAL).any(axis=0))[0]
            if columns.size:
                canal_columns[s] = (int(columns[0]), int(columns[-1]))
        for view, change in views.items():
            counts = outcomes(first, measure_with_segmenter(change(volume, canal_columns), segmenter))
            print_row(name, view, counts)
            for key, value in counts.items():
                totals[view][key] += value
    for view, counts in totals.items():
        print_row(f"all ({len(volumes)} volumes)", view, counts)


if __name__ == "__main__":
    main()
