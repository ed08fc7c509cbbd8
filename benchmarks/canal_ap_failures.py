"""Why network 2's canal AP misses on the synthetic held-out set: which tissues its wrong canal pixels lie on, how
sure it is of them, and whether the image at the AP ruler's ends could flag the misses.

    .venv/bin/python benchmarks/canal_ap_failures.py [--count 300] [--noise-scale 0.1]

The slices are evaluate_synthetic.py's held-out set, run through the shipped networks. Only slices whose canal is
found and overlaps the truth (Dice on network 2's crop >= 0.8) are counted: edges, not the wrong structure. On the
crop, *extra* pixels are in the found canal (probability >= 0.5) and less than half in the true sac; *missing*
pixels the reverse. For the slices whose canal AP is overestimated by more than 1 mm, underestimated by more than
1 mm, and within 0.5 mm, it prints how many, network 2's median canal probability over their extra and missing
pixels (near 1 over extra pixels: it is sure of them, so no threshold or calibration takes them out), the tissues
those pixels lie on (mm², summed over the slices), and which end of the AP ruler is off: how far its anterior and
posterior ends lie beyond those of the true area-fraction masks' ruler on the same crop, along the AP axis. Then,
for thresholds on the edge contrast at the ruler's ends (|mean image 1-2 mm inside - 1-2 mm outside| over the larger
of the two, the lower of the two ends), the share of slices kept and their canal AP within 1 mm: whether a
measurement-quality flag could set the misses apart. Last, whether moving each end of the AP ruler in to a dark line
just inside it (the dura between CSF and epidural fat that the mask ran across) would mend the overestimates: for
each darkness ratio, how many slices it changes and their canal AP within 1 mm before and after.

--noise-scale runs the same slices with less noise (see evaluate_synthetic.py).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_synthetic import GROUPS, add_noise_scale_option, dice, held_out_slice, in_group  # noqa: E402
from SpinalStenosisLib.inference import CHANNELS, load_segmenter  # noqa: E402
from SpinalStenosisLib.measurement import bilinear, measure_slice  # noqa: E402
from SpinalStenosisLib.synth.anatomy import TISSUES  # noqa: E402
from SpinalStenosisLib.synth.sampler import fractions  # noqa: E402

EDGE_SAMPLES_MM = (1.0, 1.5, 2.0)  # how far inside and outside each end of the AP ruler the image is sampled
EDGE_CONTRAST_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
ERROR_CLASSES = (("overestimated by > 1 mm", lambda e: e > 1), ("underestimated by > 1 mm", lambda e: e < -1),
                 ("within 0.5 mm", lambda e: abs(e) <= 0.5))
TOP_TISSUES = 5
DARK_LINE_SEARCH_MM = 2.0  # how far inside each end of the AP ruler a dark line is looked for
DARK_LINE_RATIOS = (0.6, 0.7, 0.8)  # a dip counts when darker than this share of the lower of its two bright sides
BRIGHT_SIDE_MM = 2.0  # the dip's inner bright side is the brightest value within this distance inside it
DURA_HALF_MM = 0.25  # the new end lies this far beyond the dip's centre: the true sac includes its dura
PROFILE_STEP_MM = 0.1
LOCAL_MINIMUM_SAMPLES = 3  # a dip is the darkest sample within this many steps (0.3 mm) either side


def edge_contrast(image: np.ndarray, grid, start_ras: np.ndarray, end_ras: np.ndarray) -> float:
    """The lower contrast of the ruler's two ends (see the module docstring)."""
    along = (end_ras - start_ras) / np.linalg.norm(end_ras - start_ras)
    contrasts = []
    for end, outward in ((start_ras, -along), (end_ras, along)):
        means = []
        for sign in (-1.0, 1.0):  # inside, outside
            rows, columns = grid.to_index(np.array([end + sign * t * outward for t in EDGE_SAMPLES_MM]))
            means.append(float(bilinear(image, np.asarray(rows), np.asarray(columns)).mean()))
        contrasts.append(abs(means[0] - means[1]) / max(max(means), 1e-6))
    return min(contrasts)


def end_inside_dark_line(image: np.ndarray, grid, centre_ras: np.ndarray, end_ras: np.ndarray, ratio: float) -> float:
    """Distance from the ruler's centre to its end moved in to the outermost dark line within DARK_LINE_SEARCH_MM
    inside it (a local minimum of the image profile darker than ratio times the lower of the brightest values within
    BRIGHT_SIDE_MM inside it and between it and the end), or to the end itself where there is none."""
    reach_mm = float(np.linalg.norm(end_ras - centre_ras))
    along = (end_ras - centre_ras) / reach_mm
    t = np.arange(0.0, reach_mm, PROFILE_STEP_MM)
    rows, columns = grid.to_index(centre_ras[None] + t[:, None] * along[None])
    profile = bilinear(image, np.asarray(rows), np.asarray(columns))
    for i in np.flatnonzero(t >= reach_mm - DARK_LINE_SEARCH_MM)[::-1]:
        if profile[i] > profile[max(i - LOCAL_MINIMUM_SAMPLES, 0):i + LOCAL_MINIMUM_SAMPLES + 1].min():
            continue
        inner = profile[(t >= t[i] - BRIGHT_SIDE_MM) & (t < t[i])]
        outer = profile[t > t[i]]
        if inner.size and outer.size and profile[i] < ratio * min(inner.max(), outer.max()):
            return min(reach_mm, t[i] + DURA_HALF_MM)
    return reach_mm


def outward_end_shifts_mm(found, truth, grid) -> tuple[float, float]:
    """How far the found AP ruler's anterior and posterior ends lie beyond the true ruler's, along the patient's AP
    axis (positive: outside the true sac)."""
    anterior, _ = grid.in_plane_axes()
    found_ap, true_ap = ([ruler.start_ras @ anterior, ruler.end_ras @ anterior] for ruler in (found, truth))
    return max(found_ap) - max(true_ap), min(true_ap) - min(found_ap)


def slice_record(segmenter, n: int, noise_scale: float = 1.0) -> dict | None:
    """Held-out slice n's canal AP error (also with its ends moved in to dark lines), which end of the AP ruler is
    off, wrong pixels and edge contrast; None where its canal is not found."""
    case = held_out_slice(n, noise_scale)
    [result] = segmenter.segment([case.image], [case.grid])
    if result.roi_box_rc is None or np.isnan(case.truth["canal_ap_mm"]):
        return None
    crop = result.grid
    found = measure_slice(result.masks, crop)
    if "canal_ap_mm" not in found.rulers:
        return None
    probability = result.masks["canal"]
    supersample = 2
    tissues = case.scene.paint(crop, supersample)
    true_fractions = fractions(tissues, supersample)
    truth = true_fractions[CHANNELS.index("canal")] >= 0.5
    sampled_tissues = tissues[supersample // 2::supersample, supersample // 2::supersample]  # 1 of 4 per pixel
    ruler = found.rulers["canal_ap_mm"]
    record = {"contrast": case.scene.contrast, "dice": dice(probability >= 0.5, truth),
              "ap_error_mm": found.values["canal_ap_mm"] - case.truth["canal_ap_mm"],
              "edge_contrast": edge_contrast(case.image, case.grid, ruler.start_ras, ruler.end_ras)}
    true_ruler = measure_slice(dict(zip(CHANNELS, true_fractions)), crop).rulers.get("canal_ap_mm")
    if true_ruler is not None:
        record["anterior_end_out_mm"], record["posterior_end_out_mm"] = outward_end_shifts_mm(ruler, true_ruler, crop)
    centre = (ruler.start_ras + ruler.end_ras) / 2
    record["dark_line_ap_errors_mm"] = {
        ratio: sum(end_inside_dark_line(case.image, case.grid, centre, end, ratio)
                   for end in (ruler.start_ras, ruler.end_ras)) - case.truth["canal_ap_mm"]
        for ratio in DARK_LINE_RATIOS}
    for name, wrong in (("extra", (probability >= 0.5) & ~truth), ("missing", (probability < 0.5) & truth)):
        record[f"{name}_probability"] = float(np.median(probability[wrong])) if wrong.any() else np.nan
        record[f"{name}_tissues_mm2"] = {TISSUES[t]: count * crop.pixel_area_mm2
                                         for t, count in zip(*np.unique(sampled_tissues[wrong], return_counts=True))}
    return record


def print_error_classes(records: list[dict]) -> None:
    for title, chosen in ERROR_CLASSES:
        group = [r for r in records if chosen(r["ap_error_mm"])]
        print(f"{title}: {len(group)} slices")
        for name in ("extra", "missing"):
            tissues = Counter()
            for r in group:
                tissues.update(r[f"{name}_tissues_mm2"])
            total = sum(tissues.values())
            probability = np.nanmedian([r[f"{name}_probability"] for r in group]) if group else np.nan
            top = ", ".join(f"{tissue} {area / total:.0%}" for tissue, area in tissues.most_common(TOP_TISSUES))
            print(f"  {name} pixels: {total:.0f} mm², median canal probability {probability:.2f}; {top}")


def print_ruler_ends(records: list[dict]) -> None:
    for title, chosen in ERROR_CLASSES:
        group = [r for r in records if chosen(r["ap_error_mm"]) and "anterior_end_out_mm" in r]
        if not group:
            continue
        anterior = np.array([r["anterior_end_out_mm"] for r in group])
        posterior = np.array([r["posterior_end_out_mm"] for r in group])
        print(f"AP ruler ends, {title} ({len(group)} slices): beyond the true ends by (median) anterior "
              f"{np.median(anterior):+.2f} mm, posterior {np.median(posterior):+.2f} mm; the posterior end the "
              f"further off on {np.mean(np.abs(posterior) > np.abs(anterior)):.0%}")


def print_edge_flags(records: list[dict]) -> None:
    for group in GROUPS:
        chosen = in_group(records, group)
        errors = np.array([abs(r["ap_error_mm"]) for r in chosen])
        contrasts = np.array([r["edge_contrast"] for r in chosen])
        cells = []
        for threshold in EDGE_CONTRAST_THRESHOLDS:
            kept = contrasts >= threshold
            cells.append(f">= {threshold}: kept {kept.mean():.0%}, within 1 mm {np.mean(errors[kept] <= 1):.1%}")
        print(f"edge contrast, {group} ({len(chosen)} slices, within 1 mm {np.mean(errors <= 1):.1%}): "
              + "; ".join(cells))


def print_dark_lines(records: list[dict]) -> None:
    for group in GROUPS:
        chosen = in_group(records, group)
        before = np.array([abs(r["ap_error_mm"]) for r in chosen])
        cells = []
        for ratio in DARK_LINE_RATIOS:
            after = np.array([abs(r["dark_line_ap_errors_mm"][ratio]) for r in chosen])
            changed = np.sum(np.abs(after - before) > 1e-6)
            better, worse = np.sum((after <= 1) & (before > 1)), np.sum((after > 1) & (before <= 1))
            cells.append(f"ratio {ratio}: {changed} changed, within 1 mm {np.mean(after <= 1):.1%} "
                         f"({better} better, {worse} worse)")
        print(f"AP ends moved in to a dark line, {group} (within 1 mm {np.mean(before <= 1):.1%}): " + "; ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    add_noise_scale_option(parser)
    args = parser.parse_args()
    segmenter = load_segmenter(threads=2)
    found = [r for r in (slice_record(segmenter, n, args.noise_scale) for n in range(args.count)) if r is not None]
    records = [r for r in found if r["dice"] >= 0.8]
    print(f"{len(records)} of the {args.count} held-out slices: canal found and its Dice on the crop >= 0.8 "
          f"(left out: {len(found) - len(records)} found canals below that)")
    print_error_classes(records)
    print_ruler_ends(records)
    print_edge_flags(records)
    print_dark_lines(records)


if __name__ == "__main__":
    main()
