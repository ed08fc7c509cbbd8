"""Colour composites of two contrasts (e.g. a dataset's T1/T2 composite PNGs): what the networks measure on them.

    .venv/bin/python benchmarks/colour_composites.py [--count 200] [--layout T1,T2,mean] [--precision float32]

Each case is a lumbar synthetic slice drawn as T2 and as T1 (the same anatomy on the same upright grid of square
pixels, as a displayed slice is read), each channel stretched to 8 bits as an export would be, and written as an
RGB PNG whose channels are --layout (T1, T2, mean of the two, or none: a blank channel). Each PNG is read as
``measure slice.png --pixel-mm`` reads it (volume_io.open_axial) and measured five ways: as the product does (on
the crops of the channel network 2 is surest of the canal on, network 2's probabilities averaged over the channels,
pipeline.surest_channel_steps), on that channel alone (the product until 2026-12-07), on the mean of its colours
(before 2026-12-04), and on the T2 and on the T1 channel alone. Prints the canal AP within 1 / 2 / 3 mm of the
truth, the canal Dice on the native grid, the foramen width within 2 mm of the truth (where there is a foramen), on
how many slices the product's canal AP is within 1 mm where each earlier way's is not and the reverse (with the
exact McNemar p), and how often the product chose each channel. The slices come from the held-out seed's stream
(evaluate_synthetic.HELD_OUT_SEED, never trained on), but are not the held-out set.
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_synthetic import (FORAMEN_KEYS, HELD_OUT_SEED, add_network_options, exact_mcnemar_p,  # noqa: E402
                                network_options)
from SpinalStenosisLib.evaluation import dice, error  # noqa: E402
from SpinalStenosisLib.geometry import PlaneGrid  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.synth.dataset import synthetic_slice  # noqa: E402
from SpinalStenosisLib.synth.sampler import native_grid, sample_scene  # noqa: E402
from SpinalStenosisLib.volume_io import COLOURS, open_axial  # noqa: E402

CONTRASTS = ("T2", "T1")
WAYS = ("as measured (contrasts averaged)", "the surest channel alone", "mean of the colours", "T2 channel alone",
        "T1 channel alone")


def upright(grid: PlaneGrid) -> PlaneGrid:
    """The grid's field of view in square pixels of its finer side, rows A→P, columns R→L (a displayed slice)."""
    pixel_mm = min(grid.pixel_size_mm)
    centre = (grid.origin_ras + (grid.shape[0] - 1) / 2 * grid.row_step_ras
              + (grid.shape[1] - 1) / 2 * grid.column_step_ras)
    shape = tuple(int(round(n * size / pixel_mm)) for n, size in zip(grid.shape, grid.pixel_size_mm))
    row_step, column_step = np.array([0.0, -pixel_mm, 0.0]), np.array([-pixel_mm, 0.0, 0.0])
    return PlaneGrid(centre - (shape[0] - 1) / 2 * row_step - (shape[1] - 1) / 2 * column_step, row_step,
                     column_step, shape)


def to_8_bit(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """The intensities from low to high stretched to 0-255, those beyond clipped."""
    return np.clip(np.round(255 * (image - low) / (high - low)), 0, 255).astype(np.uint8)


def eight_bit(image: np.ndarray) -> np.ndarray:
    """Stretched from the 0.5th to the 99.5th intensity percentile, as an export would be."""
    return to_8_bit(image, *np.percentile(image, (0.5, 99.5)))


def composite_case(n: int, layout: tuple[str, ...], folder: Path):
    """Case n: the composite PNG's path, its pixel size, its truth (truth_measurements) and native canal labels."""
    import SimpleITK as sitk

    rng = np.random.default_rng([HELD_OUT_SEED, 7, n])
    scene = sample_scene(rng, "lumbar", contrast="T2")
    grid = upright(native_grid(rng, scene))
    drawn = {contrast: synthetic_slice(rng, scene=replace(scene, contrast=contrast), grid=grid,
                                       with_truth=contrast == "T2") for contrast in CONTRASTS}
    channels = {contrast: eight_bit(case.image) for contrast, case in drawn.items()}
    channels["mean"] = ((channels["T1"].astype(np.uint16) + channels["T2"]) // 2).astype(np.uint8)
    channels["none"] = np.zeros_like(channels["T2"])
    path = folder / f"case_{n}.png"
    sitk.WriteImage(sitk.Compose([sitk.GetImageFromArray(channels[name]) for name in layout]), str(path))
    return path, grid.pixel_size_mm[0], drawn["T2"].truth, drawn["T2"].labels == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--layout", default="T1,T2,mean",
                        help="the red, green and blue channels: each T1, T2, mean or none")
    add_network_options(parser, compare=False)
    args = parser.parse_args()
    layout = tuple(args.layout.split(","))
    if len(layout) != 3 or not set(layout) <= {*CONTRASTS, "mean", "none"} or not set(CONTRASTS) <= set(layout):
        parser.error("--layout names three channels among T1, T2, mean and none, with T1 and T2 among them")
    segmenter = load_segmenter(threads=2, **network_options(args))
    one_channel = copy.copy(segmenter)
    one_channel.averages_contrasts = False  # the surest channel's run is kept as it is
    errors, dices, chosen = {way: [] for way in WAYS}, {way: [] for way in WAYS}, Counter()
    foramen_errors = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as folder:
        for n in range(args.count):
            path, pixel_mm, truth, true_canal = composite_case(n, layout, Path(folder))
            volume = open_axial(path, pixel_mm=pixel_mm)
            channel_of = {name: COLOURS[layout.index(name)] for name in CONTRASTS}
            runs = {WAYS[0]: measure_with_segmenter(volume, segmenter),
                    WAYS[1]: measure_with_segmenter(volume, one_channel),
                    WAYS[2]: measure_with_segmenter(replace(volume, colour_channels={}), segmenter),
                    WAYS[3]: measure_with_segmenter(volume.colour_channels[channel_of["T2"]], segmenter),
                    WAYS[4]: measure_with_segmenter(volume.colour_channels[channel_of["T1"]], segmenter)}
            chosen[next(name for name, colour in zip(layout, COLOURS)
                         if f"on its {colour} channel" in " ".join(runs[WAYS[0]].warnings))] += 1
            for way, run in runs.items():
                found = run.measurements[0].values
                errors[way].append(error(found["canal_ap_mm"], truth["canal_ap_mm"]))
                dices[way].append(dice(run.stack_labels[0] == 1, true_canal))
                foramen_errors[way] += [error(found[key], truth[key]) for key in FORAMEN_KEYS
                                        if not math.isnan(truth[key])]
    print(f"{args.count} lumbar composites, channels (red, green, blue) = {', '.join(layout)}")
    print(f"{'measured':<33} {'canal AP within 1 / 2 / 3 mm':>30} {'canal Dice':>11} {'foramen within 2 mm':>20}")
    for way in WAYS:
        within = " / ".join(f"{100 * np.mean(np.array(errors[way]) <= mm):.1f}" for mm in (1, 2, 3))
        mean_dice = np.mean([d for d in dices[way] if not math.isnan(d)])
        foramina = f"{100 * np.mean(np.array(foramen_errors[way]) <= 2):.1f} %"
        print(f"{way:<33} {within + ' %':>30} {mean_dice:>11.3f} {foramina:>20}")
    product = np.array(errors[WAYS[0]]) <= 1
    for way in WAYS[1:3]:
        earlier = np.array(errors[way]) <= 1
        better, worse = int((product & ~earlier).sum()), int((earlier & ~product).sum())
        print(f"canal AP within 1 mm, as measured against {way}: better on {better} slices, worse on {worse} "
              f"(exact McNemar p = {exact_mcnemar_p(better, worse):.3f})")
    print("channel the product measured: " + ", ".join(f"{name} {count}" for name, count in chosen.most_common()))


if __name__ == "__main__":
    main()
