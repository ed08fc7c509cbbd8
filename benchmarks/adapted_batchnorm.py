"""Network 2's BatchNorm statistics adapted to each volume before it is measured (AdaBN): whether a volume's own
statistics carry network 2 across the gap between the synthetic images it learnt on and a real scanner's.

    .venv/bin/python benchmarks/adapted_batchnorm.py --share 1 real --precision float32 [evaluate_real.py options]
    .venv/bin/python benchmarks/adapted_batchnorm.py --share 0.5 stacks --count 0 --stacks 100 --precision float32

For each volume the shipped pipeline first segments every slice. The crops where network 2 finds a canal then go
through network 2 as it was trained, with its BatchNorm layers gathering their statistics; each layer's statistics
become share x the volume's + (1 - share) x the shipped ones, and the volume is measured with that network 2 (the ROI
networks unchanged). The rest of the command line goes to evaluate_real.py (real) or evaluate_synthetic.py (stacks:
its multi-level stacks, the only volumes it measures), which print their tables as usual: compare them with the same
script run alone. Tried and not kept (benchmarks/EXPERIMENTS.md).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

import evaluate_real  # noqa: E402
import evaluate_synthetic  # noqa: E402
from SpinalStenosisLib.crop import normalise, resample  # noqa: E402
from SpinalStenosisLib.models import load_trained_network  # noqa: E402
from SpinalStenosisLib.pipeline import BATCH_SLICES, MeasurementRun, measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.training import average_batchnorm_statistics  # noqa: E402

STATISTICS_BATCH = 16  # crops per forward pass while the statistics are gathered


class VolumeAdapted:
    """measure_with_segmenter, with the segmenter's network 2 first adapted to the volume."""

    def __init__(self, share: float):
        self.share, self.trained = share, load_trained_network("canal")[0]

    def __call__(self, volume, segmenter, **options) -> MeasurementRun:
        networks = getattr(segmenter.segment, "__self__", segmenter)  # evaluate_*'s SliceBySlice wraps one
        shipped = networks.canal_model
        crops = self.canal_crops(volume, networks)
        try:
            if crops:
                networks.canal_model = self.adapted(crops).to(networks.dtype)
            return measure_with_segmenter(volume, segmenter, **options)
        finally:
            networks.canal_model = shipped

    @staticmethod
    def canal_crops(volume, networks) -> list[np.ndarray]:
        """The normalised network-2 crops of the volume's slices where the shipped networks find a canal."""
        crops = []
        for first in range(0, volume.n_slices, BATCH_SLICES):
            slices = range(first, min(volume.n_slices, first + BATCH_SLICES))
            images = [volume.read_slice(s) for s in slices]
            grids = [volume.layout.slice_grid(s) for s in slices]
            for image, grid, result in zip(images, grids, networks.segment(images, grids)):
                if (result.masks["canal"] >= 0.5).any():
                    crops.append(normalise(resample(image, grid, result.grid)))
        return crops

    def adapted(self, crops: list[np.ndarray]):
        """Network 2 in its inference form, its BatchNorm statistics moved share of the way to those of crops."""
        import torch
        from torch import nn

        from SpinalStenosisLib.network import for_inference

        model = copy.deepcopy(self.trained)
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        shipped = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
        for m in norms:
            m.train()  # dropout stays off: the crops are passed as at inference
        average_batchnorm_statistics(model, norms, (
            torch.from_numpy(np.stack(crops[first:first + STATISTICS_BATCH])[:, None].astype(np.float32))
            for first in range(0, len(crops), STATISTICS_BATCH)))
        for m, (mean, var) in zip(norms, shipped):
            m.running_mean.mul_(self.share).add_((1 - self.share) * mean)
            m.running_var.mul_(self.share).add_((1 - self.share) * var)
        return for_inference(model.eval())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--share", type=float, default=1.0, help="of the volume's statistics (0: the shipped ones)")
    parser.add_argument("evaluation", choices=("real", "stacks"))
    args, rest = parser.parse_known_args()
    script = evaluate_real if args.evaluation == "real" else evaluate_synthetic
    script.measure_with_segmenter = VolumeAdapted(args.share)
    sys.argv = [script.__file__, *rest]
    script.main()


if __name__ == "__main__":
    main()
