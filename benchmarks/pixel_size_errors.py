"""A header whose pixel size is not the scan's: the demo series measured with its pixels said to be another size.

    .venv/bin/python benchmarks/pixel_size_errors.py [--precision float32]

A converter that lost a scan's pixel size may write 1 mm, and every length and area measured follows the header. The
demo series (0.7 mm pixels) is written as it is and with its in-plane pixel size said to be 1 mm (1.43 times its
own), 1.4 mm (twice) and 0.35 mm (half), and measured with the networks. For each it prints the narrowest canal AP,
the smallest dural-sac area, the canal's area on its median slice (pipeline.median_canal_area_mm2), and whether
`measure` warns that the canal is larger than any dural sac (pipeline.oversized_canal_warnings).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_synthetic import add_network_options, network_options  # noqa: E402
from SpinalStenosisLib.demo import DEMO_SEED  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import (measure_with_segmenter, median_canal_area_mm2,  # noqa: E402
                                        oversized_canal_warnings)
from SpinalStenosisLib.synth.dataset import synthetic_stack  # noqa: E402
from SpinalStenosisLib.volume_io import open_axial, write_image  # noqa: E402

SAID_PIXEL_MM = (0.7, 1.0, 1.4, 0.35)  # the demo's own first


def main() -> None:
    import SimpleITK as sitk

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_network_options(parser, compare=False)
    args = parser.parse_args()
    segmenter = load_segmenter(threads=2, **network_options(args))
    image, _, geometry, _ = synthetic_stack(DEMO_SEED, "lumbar")
    print(f"{'pixels said':>12} {'narrowest AP':>13} {'smallest area':>14} {'median-slice area':>18}  warned")
    with tempfile.TemporaryDirectory() as folder:
        written = Path(folder) / "demo.nii.gz"
        write_image(written, image, geometry)
        for said_mm in SAID_PIXEL_MM:
            stored = sitk.ReadImage(str(written))
            own_mm = stored.GetSpacing()
            stored.SetSpacing((said_mm, said_mm * own_mm[1] / own_mm[0], own_mm[2]))
            said = Path(folder) / f"said_{said_mm}.nii.gz"
            sitk.WriteImage(stored, str(said))
            run = measure_with_segmenter(open_axial(said), segmenter)
            canal_stack = run.stack_labels == 1
            aps = [m.values["canal_ap_mm"] for m in run.measurements if not math.isnan(m.values["canal_ap_mm"])]
            areas = [m.values["canal_area_mm2"] for m in run.measurements
                     if not math.isnan(m.values["canal_area_mm2"])]
            warned = bool(oversized_canal_warnings(canal_stack, run.volume.layout))
            print(f"{said_mm:>9.2f} mm {min(aps):>10.1f} mm {min(areas):>10.1f} mm² "
                  f"{median_canal_area_mm2(canal_stack, run.volume.layout):>14.0f} mm²  {'yes' if warned else 'no'}")


if __name__ == "__main__":
    main()
