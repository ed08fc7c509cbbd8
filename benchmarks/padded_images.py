"""Real images that end in padding through the canal: is the canal still found, and is it flagged as cut?

    .venv/bin/python benchmarks/padded_images.py [--real ../shared/eval/real] [--only TEXT] [--precision float32]

A scanner or a reslice fills what lies beyond the imaged area with zeros (visibility.padding), and network 2's crop
is filled with zeros beyond the slice's edge too (crop.resample): to the networks both look alike. Each real volume
is measured as it is, then three times with every slice that has a canal zeroed from a line across its canal onwards
(towards the patient's left), keeping a quarter, half or three quarters of the canal's width in view. For each, it
prints on how many of those slices a canal is found where the first one was (overlapping it), how many of these are
flagged as cut by the field of view (measurement.cut_by_edge) and how many are to check at all, and on how many the
canal is found elsewhere or not at all. The default volumes are those whose canal fills the image's middle: the
cervical ones with cord masks, the MyoSegmenTUM water images and the whole CHAOS volumes (evaluate_real's).
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

KEPT_SHARES = (0.25, 0.5, 0.75)
DEFAULT_FOLDERS = ("gmchallenge_cervical_t2star", "sct_testing_cervical", "chaos_and_myosegmentum")
CANAL = 1


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


def outcomes(first_canal: dict[int, np.ndarray], run) -> dict[str, int]:
    """On the slices of first_canal: the canal found in its place, flagged as cut or to check; found elsewhere;
    not found."""
    counts = dict.fromkeys(("in place", "cut", "to check", "elsewhere", "none"), 0)
    for s, canal in first_canal.items():
        found = run.stack_labels[s] == CANAL
        if not found.any():
            counts["none"] += 1
        elif not (found & canal).any():
            counts["elsewhere"] += 1
        else:
            counts["in place"] += 1
            counts["cut"] += "canal" in run.measurements[s].cut_by_field_of_view
            counts["to check"] += run.measurements[s].is_to_check("canal")
    return counts


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
    totals = {share: dict.fromkeys(("slices", "in place", "cut", "to check", "elsewhere", "none"), 0)
              for share in KEPT_SHARES}
    print(f"{'volume':48s} {'kept':>5s} {'slices':>6s} {'in place':>8s} {'cut':>5s} {'to check':>8s} "
          f"{'elsewhere':>9s} {'none':>5s}")
    for name, path in volumes:
        volume = open_axial(path)
        run = measure_with_segmenter(volume, segmenter)
        first_canal = {s: run.stack_labels[s] == CANAL for s in range(volume.n_slices)
                       if (run.stack_labels[s] == CANAL).any()}
        canal_columns = {s: (int(np.nonzero(canal.any(axis=0))[0][0]), int(np.nonzero(canal.any(axis=0))[0][-1]))
                         for s, canal in first_canal.items()}
        for share in KEPT_SHARES:
            counts = outcomes(first_canal, measure_with_segmenter(
                padded_through_canal(volume, canal_columns, share), segmenter))
            totals[share]["slices"] += len(first_canal)
            for key, value in counts.items():
                totals[share][key] += value
            print(f"{name[-48:]:48s} {share:5.2f} {len(first_canal):6d} {counts['in place']:8d} {counts['cut']:5d} "
                  f"{counts['to check']:8d} {counts['elsewhere']:9d} {counts['none']:5d}", flush=True)
    for share, t in totals.items():
        print(f"{f'all ({len(volumes)} volumes)':48s} {share:5.2f} {t['slices']:6d} {t['in place']:8d} {t['cut']:5d} "
              f"{t['to check']:8d} {t['elsewhere']:9d} {t['none']:5d}")


if __name__ == "__main__":
    main()
