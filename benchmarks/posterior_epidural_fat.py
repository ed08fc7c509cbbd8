"""What lies behind the thecal sac in the midline: the generator's lumbar anatomy against a real lumbar T2.

    .venv/bin/python benchmarks/posterior_epidural_fat.py [--anatomies 2000] [--count 300]
                                                          [--real ../shared/eval/real]

On real axial T2 the sac's back usually meets the posterior epidural fat triangle (bright, behind a thin dark
dura), with the ligamenta flava further back; the canal AP ruler ends there. Two figures:

- Labels: over --anatomies random lumbar anatomies, the tissue directly behind the sac on the midline and the
  thickness of epidural fat there.
- Images, the same label-free test on real and synthetic slices: on each slice whose canal the shipped networks
  find, the image is sampled from the posterior end of the found canal AP ruler outwards along the patient's
  posterior axis; "fat behind the sac" when its brightest value 0.5-4 mm out is at least half the canal's bright
  level (the 90th percentile of the image inside the found canal). Real: the SCT tutorial lumbar 3-D T2 (1 mm,
  validation only); synthetic: the lumbar T2 slices of evaluate_synthetic.py's held-out set (the first --count).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_real import REAL_FOLDER  # noqa: E402
from evaluate_synthetic import held_out_slice  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.measurement import bilinear, measure_slice  # noqa: E402
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.synth.anatomy import behind_sac_on_midline, sample_anatomy  # noqa: E402
from SpinalStenosisLib.volume_io import open_axial  # noqa: E402

REAL_LUMBAR_T2 = "lumbar_unlabelled/sct_tutorial_t2_lumbar/t2_lumbar.nii.gz"
BEHIND_MM = (0.5, 4.0)  # where fat is looked for behind the found sac's posterior end
PROFILE_STEP_MM = 0.25
CANAL_BRIGHT_PERCENTILE = 90
FAT_SHARE_OF_CANAL = 0.5
ANATOMY_SEED = 20261202


def print_generator_midline(count: int) -> None:
    found = [behind_sac_on_midline(sample_anatomy(np.random.default_rng([ANATOMY_SEED, n]), "lumbar"))
             for n in range(count)]
    found = [f for f in found if f is not None]
    tissues = Counter(tissue for tissue, _ in found)
    fat_mm = np.array([mm for _, mm in found])
    print(f"generator, {len(found)} lumbar anatomies: directly behind the sac on the midline "
          + ", ".join(f"{tissue} {n / len(found):.0%}" for tissue, n in tissues.most_common())
          + f"; epidural fat there: none on {np.mean(fat_mm == 0):.0%}, under 1 mm on {np.mean(fat_mm < 1):.0%}, "
          f"median {np.median(fat_mm):.1f} mm, quartiles {np.percentile(fat_mm, 25):.1f}-"
          f"{np.percentile(fat_mm, 75):.1f}")


def fat_behind_ratio(image: np.ndarray, grid, canal: np.ndarray, ruler) -> float:
    """Brightest value BEHIND_MM behind the AP ruler's posterior end over the canal's bright level."""
    anterior, _ = grid.in_plane_axes()
    posterior_end = min((ruler.start_ras, ruler.end_ras), key=lambda p: p @ anterior)
    distances = np.arange(BEHIND_MM[0], BEHIND_MM[1] + 1e-9, PROFILE_STEP_MM)
    rows, columns = grid.to_index(posterior_end[None] - distances[:, None] * anterior[None])
    profile = bilinear(image, np.asarray(rows), np.asarray(columns))
    return float(profile.max() / max(np.percentile(image[canal], CANAL_BRIGHT_PERCENTILE), 1e-6))


def real_ratios(segmenter, path: Path) -> list[float]:
    volume = open_axial(path)
    run = measure_with_segmenter(volume, segmenter)
    ratios = []
    for s, measured in enumerate(run.measurements):
        canal = run.stack_labels[s] == 1
        if "canal_ap_mm" in measured.rulers and canal.any():
            ratios.append(fat_behind_ratio(volume.read_slice(s), volume.layout.slice_grid(s), canal,
                                           measured.rulers["canal_ap_mm"]))
    return ratios


def synthetic_ratios(segmenter, count: int) -> list[float]:
    ratios = []
    for n in range(count):
        case = held_out_slice(n)
        if case.scene.anatomy.region != "lumbar" or case.scene.contrast != "T2":
            continue
        [result] = segmenter.segment([case.image], [case.grid])
        canal = result.native_labels == 1
        rulers = measure_slice(result.masks, result.grid).rulers if result.roi_box_rc is not None else {}
        if "canal_ap_mm" in rulers and canal.any():
            ratios.append(fat_behind_ratio(case.image, case.grid, canal, rulers["canal_ap_mm"]))
    return ratios


def print_ratios(title: str, ratios: list[float]) -> None:
    ratios = np.array(ratios)
    print(f"{title}: {ratios.size} slices with a found canal; fat behind the sac on "
          f"{np.mean(ratios >= FAT_SHARE_OF_CANAL):.0%}; brightest behind / canal bright level: median "
          f"{np.median(ratios):.2f}, quartiles {np.percentile(ratios, 25):.2f}-{np.percentile(ratios, 75):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anatomies", type=int, default=2000)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    args = parser.parse_args()
    if not (args.real / REAL_LUMBAR_T2).is_file():
        sys.exit(f"no real lumbar T2 at {args.real / REAL_LUMBAR_T2}")
    print_generator_midline(args.anatomies)
    segmenter = load_segmenter(threads=2)
    print_ratios("real lumbar T2 (SCT tutorial)", real_ratios(segmenter, args.real / REAL_LUMBAR_T2))
    print_ratios("synthetic lumbar T2 (held-out)", synthetic_ratios(segmenter, args.count))


if __name__ == "__main__":
    main()
