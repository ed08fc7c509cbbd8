"""Speed and memory of the shipped networks on the CPU (figures printed, not asserted).

    .venv/bin/python benchmarks/benchmark_speed.py [--threads 2]

1. Both networks on a batch of 20 slices of 320x320, after a warm-up: per slice, the networks' own passes (the
   issue's "both networks together"), and those with the cropping, resampling and mask clean-up around them, of
   which the check of the canal against the spine's axis (symmetry.canal_off_axis_mm).
2. A 20-slice 320x320 stack from file to all outputs (segmentation, CSV, JSON, rulers, report), model loaded; and
   how long the report (report.png) alone takes to draw.
3. Peak resident memory of this process.
4. Synthetic training pairs per second on one core (data generation must not starve training).
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_synthetic import add_network_options, network_options  # noqa: E402
from SpinalStenosisLib import inference  # noqa: E402
from SpinalStenosisLib.geometry import PlaneGrid  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import measure_file  # noqa: E402
from SpinalStenosisLib.report import write_report  # noqa: E402
from SpinalStenosisLib.synth.dataset import slice_geometry, synthetic_slice  # noqa: E402
from SpinalStenosisLib.synth.sampler import canal_pair, roi_pair  # noqa: E402
from SpinalStenosisLib.volume_io import write_image  # noqa: E402


def stack_of_20(seed: int = 1):
    pixel = 0.7
    grid = PlaneGrid(np.array([111.65, 150.0, 0.0]), np.array([0.0, -pixel, 0.0]), np.array([-pixel, 0.0, 0.0]),
                     (320, 320))
    rng = np.random.default_rng(seed)
    images = [synthetic_slice(rng, "lumbar", grid=grid, with_truth=False).image for _ in range(20)]
    return np.stack(images).astype(np.float32), grid


class Timed:
    """A network or function that adds the time of each of its calls to seconds (called like the one it wraps)."""

    def __init__(self, function):
        self.function, self.seconds = function, 0.0

    def __call__(self, *args):
        start = time.perf_counter()
        outputs = self.function(*args)
        self.seconds += time.perf_counter() - start
        return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    add_network_options(parser, compare=False)
    args = parser.parse_args()
    segmenter = load_segmenter(threads=args.threads, **network_options(args))
    images, grid = stack_of_20()
    segmenter.segment(list(images[:4]), [grid] * 4)  # warm-up
    networks = {name: getattr(segmenter, name) for name in ("roi_model", "second_roi_model", "canal_model")}
    times, network_times, axis_check_times = [], [], []
    axis_check = inference.canal_off_axis_mm
    for _ in range(args.repeats):
        timed = {name: Timed(network) for name, network in networks.items() if network is not None}
        for name, network in timed.items():
            setattr(segmenter, name, network)
        inference.canal_off_axis_mm = timed_axis_check = Timed(axis_check)
        start = time.perf_counter()
        segmenter.segment(list(images), [grid] * 20)
        times.append(time.perf_counter() - start)
        network_times.append(sum(network.seconds for network in timed.values()))
        axis_check_times.append(timed_axis_check.seconds)
    inference.canal_off_axis_mm = axis_check
    for name, network in networks.items():
        setattr(segmenter, name, network)
    for label, seconds in (("both networks' own passes", network_times), ("networks + crop/resample", times),
                           ("of which the axis check (symmetry.canal_off_axis_mm)", axis_check_times)):
        print(f"{label}, 20 slices 320x320, {args.threads} threads: median {np.median(seconds) / 20 * 1000:.1f} "
              f"ms/slice (min {min(seconds) / 20 * 1000:.1f}, max {max(seconds) / 20 * 1000:.1f})")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stack.nii.gz"
        write_image(path, images * 1000.0, slice_geometry(grid, 4.4, 20))
        runs, reports = [], []
        for n in range(args.repeats):
            start = time.perf_counter()
            [run] = measure_file(path, Path(folder) / f"out{n}", segmenter=segmenter)
            runs.append(time.perf_counter() - start)
            start = time.perf_counter()
            write_report(Path(folder) / f"report{n}.png", run.measurements, run.volume.read_slice,
                         lambda s: run.stack_labels[s], run.volume.layout.slice_grid, "lumbar", "benchmark")
            reports.append(time.perf_counter() - start)
    print(f"20-slice stack, file to all outputs incl. report.png: median {np.median(runs):.2f} s "
          f"(min {min(runs):.2f}, max {max(runs):.2f}); of which report.png alone: median {np.median(reports):.2f} s")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    for name, make in (("ROI", roi_pair), ("canal", canal_pair)):
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(40):
            make(rng)
        print(f"synthetic {name} training pairs: {40 / (time.perf_counter() - start):.0f} per second (one core)")


if __name__ == "__main__":
    main()
