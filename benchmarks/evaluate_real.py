"""Real-image validation of the shipped networks on ../shared/eval/real (validation only: never trained on).

    .venv/bin/python benchmarks/evaluate_real.py [--real ../shared/eval/real] [--overlays /tmp/real-overlays]
                                                 [--only t2s] [--no-stack-step] [--compare MODELS_FOLDER]

Cervical sets with manual cord masks: the canal must contain the cord (>= 95 % of cord pixels inside) and the
canal/cord area ratio should lie in [1.5, 5]. Lumbar sets (no labels): a canal found, one plausible canal per slice
(one component, area 50-350 mm², AP 6-20 mm), and each of those with the canal in line with the spine (see
lumbar_checks); blank slices (one value throughout, e.g. the padding slice of the CHAOS spine crops) show no anatomy
and are counted apart. Every slice with both foramina: the left one must lie on the patient's left (RAS x smaller
than the canal's). The check column: on how many slices whose canal passes the checks the canal is to check (network
2's confidence in it below measurement.CHECK_BELOW, or an outline the image barely shows: visibility.faint), on how
many whose canal fails them, and how many of the reported foramina are to check. How many volumes `measure` would
refuse as a label image or a CT (none should be: they are MR), with the largest share of pixels at CT fat's
intensity or below; and the largest darkest level over bright level (none should reach the share from which an image
is taken to carry an offset); the range over the volumes of the canal's area on their median slice, which `measure`
warns of over 400 mm² (pipeline.oversized_canal_warnings); and the range over the lumbar volumes of the median canal
AP of the slices whose canal is not to check, and of the share of them under the absolute cut-off (the narrowest of
a healthy volume's slices is the headline, README Evaluation). Writes one overlay PNG per volume to --overlays
(outside the repository).

With --compare it also runs the networks of another models folder (see `spinal-stenosis package-models`) on the same
volumes and prints, per outcome, both models' shares, on how many slices the candidate is better and worse, the exact
McNemar p-value of that split, and in how many volumes it is better and worse; and how far the candidate's lumbar
canal AP lies from the shipped one's (no truth there: whether the two draw the sac alike).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from evaluate_synthetic import add_network_options, models_name, network_options, paired_outcome  # noqa: E402
from SpinalStenosisLib.body_region import CORD, NECK  # noqa: E402
from SpinalStenosisLib.findings import worst_findings  # noqa: E402
from SpinalStenosisLib.grading import CANAL_AP_CUTOFFS_MM, grade  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.measurement import STRUCTURE_WORDS, STRUCTURES, unmatched_foramen  # noqa: E402
from SpinalStenosisLib.pipeline import (coarse_pixel_warnings, measure_with_segmenter,  # noqa: E402
                                        median_canal_area_mm2, oversized_canal_warnings)
from SpinalStenosisLib.report import write_report  # noqa: E402
from SpinalStenosisLib.visibility import (CT_FAT_SHARE, FAT_HU, RAISED_FLOOR_SHARE, checked_pixels,  # noqa: E402
                                          darkest_share, fat_share, not_an_mr_image)
from SpinalStenosisLib.volume_io import open_axial  # noqa: E402

CERVICAL = [("gmchallenge_cervical_t2star", f"sub-{s}_run-1_T2starw.nii.gz", f"sub-{s}_run-1_T2starw_seg-manual.nii.gz")
            for s in ("9418", "9584", "9604", "9669")] + [
    ("sct_testing_cervical/t2s", "t2s.nii.gz", "t2s_seg.nii.gz"),
    ("sct_testing_cervical/t2", "t2.nii.gz", "t2_seg-manual.nii.gz")]
REAL_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "eval" / "real"  # beside a clone, as in CI
LUMBAR_FOLDERS = ("lumbar_unlabelled/sct_tutorial_t2_lumbar", "lumbar_unlabelled/chaos_t2spir_spinecrop",
                  "lumbar_unlabelled/chaos_and_myosegmentum", "lumbar_unlabelled/totalsegmentator_example_mr")
LABEL_FILE_MARKERS = ("seg", "label")
# lumbar volumes whose labels say where the canal is (MANIFEST): TotalSegmentator's class 21 covers the whole dural
# sac; MyoSegmenTUM's muscles put it between the right (2) and left (3) multifidus and in front of them
CANAL_REFERENCES = {
    "example_mr_sm.nii.gz": ("example_seg_mr.nii.gz", "sac"),
    "TUM01_water_img_img_L2-L5.nii.gz": ("TUM01_water_manual_label_segmentation_L2-L5.nii.gz", "multifidi"),
    "TUM02_water_img_img_L2-L5.nii.gz": ("TUM02_water_img_img_L2-L5_nnunet_to_seg-segmentation-label.nii.gz",
                                         "multifidi")}
SAC_LABEL, RIGHT_MULTIFIDUS, LEFT_MULTIFIDUS = 21, 2, 3
SAC_CENTROID_MM, SAC_AREA_SHARE = 3.0, 0.3  # the MANIFEST's crude check against class 21
IN_LINE_MM = 10.0
CERVICAL_OUTCOMES = ("canal contains the cord", "canal/cord area ratio in 1.5-5", "cord slice not graded stenosis")
LUMBAR_OUTCOMES = ("canal found", "one plausible canal", "one plausible canal, in line")


class SliceBySlice:
    """A segmenter without the stack step: the pipeline looks again only with a segmenter that has look_again."""

    def __init__(self, segmenter):
        self.segment, self.provenance = segmenter.segment, segmenter.provenance


def centre_x_ras(run, slice_index: int, mask: np.ndarray) -> float:
    """RAS x (towards the patient's right) of a mask's centroid on one slice of the run."""
    return float(run.volume.layout.slice_grid(slice_index).centroid_ras(mask)[0])


def sides_correct(run) -> tuple[int, int]:
    """(slices with canal and both foramina, of which the left foramen is on the patient's left)."""
    both = correct = 0
    for s, m in enumerate(run.measurements):
        labels = run.stack_labels[s]
        if not all((labels == v).any() for v in (1, 2, 3)):
            continue
        x = {v: centre_x_ras(run, s, labels == v) for v in (1, 2, 3)}
        both += 1
        correct += x[2] < x[1] < x[3]  # RAS x grows to the patient's right
    return both, correct


def cervical_checks(run, cord_source: np.ndarray) -> dict:
    cord = run.volume.from_source_grid((cord_source > 0.5).astype(np.uint8))
    per_slice, canal_to_check, found = {name: [] for name in CERVICAL_OUTCOMES}, [], []
    for s in range(cord.shape[0]):
        cord_pixels = cord[s] > 0
        if cord_pixels.sum() < 5:
            continue
        canal = run.stack_labels[s] == 1
        ratio = canal.sum() / cord_pixels.sum()
        per_slice["canal contains the cord"].append(bool((canal & cord_pixels).sum() >= 0.95 * cord_pixels.sum()))
        per_slice["canal/cord area ratio in 1.5-5"].append(bool(1.5 <= ratio <= 5.0))
        per_slice["cord slice not graded stenosis"].append(
            not grade(run.measurements[s].values, "cervical")["canal_ap_grade"].endswith("stenosis"))
        canal_to_check.append(run.measurements[s].is_to_check("canal"))
        found.append(bool(canal.any()))
    outcomes = [per_slice[name] for name in CERVICAL_OUTCOMES]
    passed = np.logical_and.reduce(outcomes) if outcomes[0] else np.zeros(0, bool)
    return {"slices_with_cord": len(outcomes[0]), "canal_contains_cord": sum(outcomes[0]),
            "area_ratio_in_1.5_5": sum(outcomes[1]), "canal_ap_graded_stenosis": len(outcomes[2]) - sum(outcomes[2]),
            "per_slice": per_slice, "canal_to_check": _flags(canal_to_check, passed, np.array(found, bool))}


def lumbar_checks(run) -> dict:
    """Counts of slices with a canal, with one plausible canal, and of each of those with the canal in line with
    the spine: its centroid within IN_LINE_MM (patient left-right) of the volume's median. The canal is a tube whose
    left-right position barely changes from slice to slice, so a canal found off that line is on another structure
    (a kidney, a vessel, bowel) even when its size is plausible. Blank slices are left out of these counts; how
    many there are, and on how many of them a canal was reported (it should be none), is counted apart."""
    plausible, centre_x, canal_ap_mm, canal_to_check, blank, canal_on_blank = [], [], [], [], 0, 0
    for s, m in enumerate(run.measurements):
        if np.ptp(run.volume.read_slice(s)) == 0:
            blank += 1
            canal_on_blank += bool((run.stack_labels[s] == 1).any())
            continue
        canal = run.stack_labels[s] == 1
        centre_x.append(centre_x_ras(run, s, canal) if canal.any() else np.nan)
        canal_ap_mm.append(m.values["canal_ap_mm"])
        canal_to_check.append(m.is_to_check("canal"))
        plausible.append(one_plausible_canal(run, s))
    centre_x, plausible = np.array(centre_x), np.array(plausible)
    found = ~np.isnan(centre_x)
    in_line = found & (np.abs(centre_x - (np.median(centre_x[found]) if found.any() else 0.0)) <= IN_LINE_MM)
    per_slice = dict(zip(LUMBAR_OUTCOMES, ([bool(v) for v in outcome]
                                           for outcome in (found, plausible, plausible & in_line))))
    headline = {name: finding.grade for name, finding in worst_findings(run.measurements, "lumbar").items()}
    trusted_ap_mm = [ap for ap, doubted in zip(canal_ap_mm, canal_to_check) if not (doubted or math.isnan(ap))]
    return {"slices": len(plausible), "blank_slices": blank, "canal_on_blank_slice": canal_on_blank,
            "headline_grades": headline, "canal_found": int(found.sum()),
            "single_plausible_canal": int(plausible.sum()), "canal_found_in_line": int(in_line.sum()),
            "single_plausible_canal_in_line": int((plausible & in_line).sum()), "per_slice": per_slice,
            "canal_ap_mm": canal_ap_mm, "canal_ap_not_to_check_mm": trusted_ap_mm,
            "canal_to_check": _flags(canal_to_check, plausible & in_line, found)}


def reference_checks(run, labels_source: np.ndarray, kind: str) -> dict:
    """On each slice the reference labels cover: whether the canal lies where they put it, and if not, whether it is
    to check. "sac": its centroid within SAC_CENTROID_MM of class 21's (and, counted apart, its area within
    SAC_AREA_SHARE of class 21's); "multifidi": its centroid left-right between the two multifidi and in front of
    both."""
    labels = run.volume.from_source_grid(labels_source.astype(np.uint8))
    wanted = (SAC_LABEL,) if kind == "sac" else (RIGHT_MULTIFIDUS, LEFT_MULTIFIDUS)
    slices = where = area = elsewhere_to_check = 0
    for s in range(labels.shape[0]):
        references = [labels[s] == value for value in wanted]
        if any(reference.sum() < 5 for reference in references):
            continue
        slices += 1
        canal = run.stack_labels[s] == 1
        if not canal.any():
            continue
        grid = run.volume.layout.slice_grid(s)
        centre, centres = grid.centroid_ras(canal), [grid.centroid_ras(reference) for reference in references]
        if kind == "sac":
            in_place = np.linalg.norm(centre - centres[0]) <= SAC_CENTROID_MM
            area += bool(abs(canal.sum() / references[0].sum() - 1) <= SAC_AREA_SHARE)
        else:  # RAS: x grows to the patient's right, y to the front
            right, left = centres
            in_place = left[0] < centre[0] < right[0] and centre[1] > max(left[1], right[1])
        where += bool(in_place)
        elsewhere_to_check += bool(not in_place and run.measurements[s].is_to_check("canal"))
    return {"kind": kind, "slices": slices, "where": where, "area": area, "elsewhere_to_check": elsewhere_to_check}


def one_plausible_canal(run, s: int) -> bool:
    """Whether slice s of the run has one canal component, of a plausible size (area 50-350 mm², AP 6-20 mm)."""
    values = run.measurements[s].values
    return (ndimage.label(run.stack_labels[s] == 1)[1] == 1 and 50 <= values["canal_area_mm2"] <= 350
            and 6 <= values["canal_ap_mm"] <= 20)


def _flags(canal_to_check: list[bool], passed: np.ndarray, found: np.ndarray) -> dict:
    """On how many of the slices that pass the checks, and of those with a canal that fail them, the canal is to
    check."""
    flagged, passed = np.array(canal_to_check, bool), np.asarray(passed, bool)
    failed = np.asarray(found, bool) & ~passed
    return {"passed": int(passed.sum()), "passed_flagged": int((flagged & passed).sum()),
            "failed": int(failed.sum()), "failed_flagged": int((flagged & failed).sum())}


def print_table(title: str, results: dict, keys: tuple[str, str, str], headers: tuple[str, str, str]) -> None:
    """A count column then two fractions of it, one row per volume and a total."""
    width = max(14, *(len(h) + 2 for h in headers))
    print(f"\n{title:<70}" + "".join(f"{h:>{width}}" for h in headers))
    totals = np.zeros(3)
    for name, r in [*results.items(), (f"all ({len(results)} volumes)", None)]:
        values = totals if r is None else np.array([r[k] for k in keys], float)
        if r is not None:
            totals += values
        print(f"{name[-70:]:<70}{int(values[0]):>{width}}{values[1] / max(values[0], 1):>{width}.1%}"
              f"{values[2] / max(values[0], 1):>{width}.1%}")


def evaluate_volumes(segmenter, real: Path, overlays: Path, only: str = "") -> dict:
    """Every real volume measured by segmenter (overlay PNGs written to overlays): the checks per volume and the
    foramen sides."""
    import SimpleITK as sitk

    overlays.mkdir(parents=True, exist_ok=True)
    results = {"cervical": {}, "lumbar": {}, "foramen_sides": {"slices": 0, "correct": 0},
               "foramina_to_check": {region: {"reported": 0, "to_check": 0, "unmatched": 0, "unmatched_alone": 0}
                                     for region in ("cervical", "lumbar")},
               "warned_clipped": [], "shown_region": {"cervical": [], "lumbar": []}, "not_mr": [], "fat_share": [],
               "darkest_share": {},
               "cut_by_field_of_view": {}, "canal_references": {}, "warned_coarse": [], "warned_oversized": [],
               "median_canal_area_mm2": {"cervical": [], "lumbar": []}}

    def run_volume(name: str, path: Path, region: str):
        volume = open_axial(path)
        if not_an_mr_image(volume.read_slice, volume.n_slices):
            results["not_mr"].append(name)
        pixels = checked_pixels(volume.read_slice, volume.n_slices)
        results["fat_share"].append(fat_share(pixels))
        results["darkest_share"][name] = darkest_share(pixels)
        run = measure_with_segmenter(volume, segmenter)
        warnings = run.warnings
        write_report(overlays / f"{path.parent.name}_{path.name.split('.')[0]}.png", run.measurements,
                     run.volume.read_slice, lambda s: run.stack_labels[s], run.volume.layout.slice_grid, region,
                     f"{path.name} (real, validation only)", warnings)
        if any(warning.startswith("the image is clipped") for warning in warnings):
            results["warned_clipped"].append(name)
        if coarse_pixel_warnings(volume.layout):
            results["warned_coarse"].append(name)
        canal_stack = run.stack_labels == 1
        results["median_canal_area_mm2"][region].append(median_canal_area_mm2(canal_stack, run.volume.layout))
        if oversized_canal_warnings(canal_stack, run.volume.layout):
            results["warned_oversized"].append(name)
        shown = run.shown_region
        if shown:
            results["shown_region"][region].append(shown.evidence)
        both, correct = sides_correct(run)
        results["foramen_sides"]["slices"] += both
        results["foramen_sides"]["correct"] += correct
        reported = [m.is_to_check(side) for m in run.measurements for side in ("left_foramen", "right_foramen")
                    if not math.isnan(m.confidences[f"{side}_confidence"])]
        results["foramina_to_check"][region]["reported"] += len(reported)
        results["foramina_to_check"][region]["to_check"] += sum(reported)
        for m in run.measurements:
            unmatched = [side for side in ("left_foramen", "right_foramen") if unmatched_foramen(side, m.confidences)]
            results["foramina_to_check"][region]["unmatched"] += len(unmatched)
            # the slice would hold nothing else to check without them
            results["foramina_to_check"][region]["unmatched_alone"] += bool(unmatched) and not any(
                m.is_to_check(name) for name in STRUCTURES if name not in unmatched)
        cut = {name: sum(name in m.cut_by_field_of_view for m in run.measurements) for name in STRUCTURES}
        if any(cut.values()):
            results["cut_by_field_of_view"][name] = cut
        return run

    for name, path, region, cord in real_volumes(real, only):
        run = run_volume(name, path, region)
        if region == "cervical":
            results["cervical"][name] = cervical_checks(run, sitk.GetArrayFromImage(sitk.ReadImage(str(cord))))
        else:
            results["lumbar"][name] = lumbar_checks(run)
        if path.name in CANAL_REFERENCES:
            labels_file, kind = CANAL_REFERENCES[path.name]
            results["canal_references"][name] = reference_checks(
                run, sitk.GetArrayFromImage(sitk.ReadImage(str(path.parent / labels_file))), kind)
    return results


def real_volumes(real: Path, only: str = "") -> list[tuple[str, Path, str, Path | None]]:
    """(name, image path, region, cord mask path or None) of every real volume whose path contains only: the cervical
    ones with their cord masks, then the lumbar ones."""
    cervical = [(f"{folder}/{image}", real / folder / image, "cervical", real / folder / cord)
                for folder, image, cord in CERVICAL]
    lumbar = [(f"{folder}/{path.name}", path, "lumbar", None) for folder in LUMBAR_FOLDERS
              for path in sorted((real / folder).glob("*.nii.gz"))
              if not any(marker in path.name for marker in LABEL_FILE_MARKERS)]
    return [volume for volume in cervical + lumbar if only in str(volume[1])]


def print_results(results: dict) -> None:
    print_table("cervical volume", results["cervical"], ("slices_with_cord", "canal_contains_cord",
                                                        "area_ratio_in_1.5_5"), ("cord slices", "canal ⊇ cord",
                                                                                 "ratio 1.5-5"))
    flagged = sum(r["canal_ap_graded_stenosis"] for r in results["cervical"].values())
    cord_slices = sum(r["slices_with_cord"] for r in results["cervical"].values())
    print(f"cervical cord slices whose canal AP is graded stenosis (no subject is known to have one): {flagged} of "
          f"{cord_slices}")
    print_table("lumbar volume", results["lumbar"], ("slices", "canal_found", "single_plausible_canal"),
                ("slices", "canal found", "1 plausible"))
    print_table("lumbar volume, canal in line with the spine", results["lumbar"],
                ("slices", "canal_found_in_line", "single_plausible_canal_in_line"),
                ("slices", "found, in line", "1 plausible, in line"))
    blank = sum(r["blank_slices"] for r in results["lumbar"].values())
    print(f"\nlumbar blank slices left out: {blank}; canal reported on "
          f"{sum(r['canal_on_blank_slice'] for r in results['lumbar'].values())} of them")
    for region, passing in (("cervical", "that pass every cord check"), ("lumbar", "with one plausible canal in line")):
        flags = {key: sum(r["canal_to_check"][key] for r in results[region].values())
                 for key in ("passed", "passed_flagged", "failed", "failed_flagged")}
        print(f"{region}: the canal to check on {flags['passed_flagged']} of the {flags['passed']} slices {passing}, "
              f"on {flags['failed_flagged']} of the {flags['failed']} with a canal that do not")
    print("reported foramina to check: " + "; ".join(f"{region} {f['to_check']} of {f['reported']}"
                                                     for region, f in results["foramina_to_check"].items()))
    print("foramina not found where the other side's is, to check (measurement.unmatched_foramen): " + "; ".join(
        f"{region} {f['unmatched']}, on {f['unmatched_alone']} slices with nothing else to check"
        for region, f in results["foramina_to_check"].items()))
    sides = results["foramen_sides"]
    print(f"slices with canal and both foramina: {sides['slices']}; left foramen on the patient's left: "
          f"{sides['correct'] / max(sides['slices'], 1):.1%}")
    volumes = len(results["cervical"]) + len(results["lumbar"])
    for what, names in (("the image is clipped at its bright end", results["warned_clipped"]),
                        ("the pixels are coarser than the networks learnt from", results["warned_coarse"]),
                        ("the canal is larger than any dural sac", results["warned_oversized"])):
        print(f"warned that {what}: {len(names)} of {volumes} volumes"
              + (f" ({', '.join(map(_file_stem, names))})" if names else ""))
    areas = results["median_canal_area_mm2"]
    print("canal area on the median slice with a canal (pipeline.median_canal_area_mm2), over the volumes: "
          + "; ".join(f"{region} {min(values):.0f}-{max(values):.0f} mm²"
                      for region, values in areas.items() if values))
    lumbar = results["lumbar"].values()
    absolute = {label: sum(r["headline_grades"].get(name) == "absolute stenosis" for r in lumbar)
                for name, label in (("canal_ap_mm", "canal AP"), ("canal_area_mm2", "dural-sac area"))}
    print("lumbar volumes whose worst finding is an absolute stenosis (mostly healthy abdominal series and "
          "volunteers): " + "; ".join(f"by {label} {count} of {len(lumbar)}" for label, count in absolute.items()))
    trusted = [np.array(r["canal_ap_not_to_check_mm"]) for r in lumbar if r["canal_ap_not_to_check_mm"]]
    absolute_below = CANAL_AP_CUTOFFS_MM["lumbar"][0]
    medians = [np.median(ap) for ap in trusted]
    under = [(ap < absolute_below).mean() for ap in trusted]  # each volume's share of slices under the cut-off
    print(f"lumbar canal AP on the slices whose canal is not to check, over the volumes: median "
          f"{min(medians):.1f}-{max(medians):.1f} mm; under {absolute_below:.0f} mm (absolute stenosis) on "
          f"{min(under):.0%}-{max(under):.0%} of a volume's slices, on {sum(share > 0 for share in under)} of "
          f"{len(trusted)} volumes at least one")
    print(f"taken for a label image or a CT, which measure refuses (visibility.not_an_mr_image): "
          f"{len(results['not_mr'])} of {len(results['fat_share'])} volumes; largest share of pixels at "
          f"{FAT_HU:.0f} or below: {max(results['fat_share'], default=0.0):.1%} (a CT is refused from "
          f"{CT_FAT_SHARE:.0%})")
    darkest = max(results["darkest_share"], key=results["darkest_share"].get)
    print(f"darkest level over bright level (visibility.darkest_share): at most "
          f"{results['darkest_share'][darkest]:.1%} ({_file_stem(darkest)}); seen from the darkest level up as an "
          f"image with an offset added (from {RAISED_FLOOR_SHARE:.0%}): "
          f"{sum(share >= RAISED_FLOOR_SHARE for share in results['darkest_share'].values())} of "
          f"{len(results['darkest_share'])} volumes")
    print("lumbar volumes whose labels say where the canal is: " + "; ".join(
        f"{_file_stem(name)}, canal "
        + (f"centroid within {SAC_CENTROID_MM:.0f} mm of TotalSegmentator's sac (class 21) on {r['where']} of "
           f"{r['slices']} slices, area within {SAC_AREA_SHARE:.0%} of it on {r['area']}" if r["kind"] == "sac" else
           f"between the multifidi and in front of them on {r['where']} of {r['slices']} slices")
        + f" (elsewhere and to check: {r['elsewhere_to_check']})"
        for name, r in results["canal_references"].items()))
    cut = results["cut_by_field_of_view"]
    print(f"volumes where the edge of the image or its padding cuts a measured structure: {len(cut)}"
          + "".join(f"\n  {name}: " + ", ".join(f"{STRUCTURE_WORDS[structure]} on {slices} slices"
                                                for structure, slices in counts.items() if slices)
                    for name, counts in cut.items()))
    shown = results["shown_region"]
    print("graded cervical without --region, by what the image shows (body_region): " + "; ".join(
        f"{len(shown[region])} of {len(results[region])} {region} volumes"
        + "".join(f", {shown[region].count(evidence)} by {evidence}" for evidence in (NECK, CORD)) for region in shown))


def _file_stem(name: str) -> str:
    """A volume's file name without its folder and suffixes (image_15_spinecrop)."""
    return name.split("/")[-1].split(".")[0]


def paired_comparison(results: dict, candidate: dict) -> dict:
    """Per outcome, over all slices it is counted on: its paired_outcome (slices of one volume are not independent, so
    the p-value is a lower bound), and in how many volumes the candidate's share is higher and lower."""
    comparison = {}
    for region, outcomes in (("cervical", CERVICAL_OUTCOMES), ("lumbar", LUMBAR_OUTCOMES)):
        for name in outcomes:
            volumes = [(results[region][v]["per_slice"][name], candidate[region][v]["per_slice"][name])
                       for v in results[region]]
            pairs = [(a, b) for shipped, tried in volumes for a, b in zip(shipped, tried)]
            if not pairs:
                continue
            comparison[f"{region}: {name}"] = {
                **paired_outcome([a for a, _ in pairs], [b for _, b in pairs]),
                "volumes_better": sum(sum(b) > sum(a) for a, b in volumes),
                "volumes_worse": sum(sum(b) < sum(a) for a, b in volumes)}
    return comparison


def canal_ap_differences(results: dict, candidate: dict) -> dict | None:
    """The candidate's lumbar canal AP minus the shipped one's, over the slices where both find a canal."""
    differences = np.array([b - a for volume, shipped in results["lumbar"].items()
                            for a, b in zip(shipped["canal_ap_mm"], candidate["lumbar"][volume]["canal_ap_mm"])])
    differences = differences[~np.isnan(differences)]
    if not differences.size:
        return None
    return {"slices": int(differences.size), "median_mm": float(np.median(differences)),
            "quartiles_mm": [float(q) for q in np.percentile(differences, [25, 75])]}


def print_comparison(comparison: dict, shipped: str, candidate: str, candidate_sides: dict) -> None:
    print(f"\n== Paired comparison on the same slices: {shipped} against the candidate {candidate}")
    print(f"{'outcome':<48}{'shipped':>9}{'candidate':>11}{'better':>8}{'worse':>7}{'exact p':>9}"
          f"{'volumes better / worse':>24}")
    for name, c in comparison.items():
        print(f"{name:<48}{c['shipped']:>9.1%}{c['candidate']:>11.1%}{c['better']:>8}{c['worse']:>7}{c['p']:>9.3f}"
              f"{c['volumes_better']:>16} / {c['volumes_worse']}")
    print(f"candidate: slices with canal and both foramina {candidate_sides['slices']}, left foramen on the "
          f"patient's left {candidate_sides['correct'] / max(candidate_sides['slices'], 1):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    parser.add_argument("--overlays", type=Path, default=Path("/tmp/spinal-stenosis-real-overlays"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", default="", help="evaluate only volumes whose path contains this text")
    parser.add_argument("--no-stack-step", action="store_true",
                        help="segment every slice on its own (ablation of the stack step, centreline.py)")
    parser.add_argument("--compare", type=Path, metavar="MODELS_FOLDER",
                        help="also run the networks of this models folder (see package-models) on the same volumes "
                             "(overlays in --overlays/candidate) and compare them slice by slice with the shipped "
                             "ones")
    add_network_options(parser)
    args = parser.parse_args()
    if not args.real.is_dir():
        sys.exit(f"no real validation folder at {args.real}")
    segmenters = {"shipped": load_segmenter(threads=2, **network_options(args))}
    if args.compare:
        segmenters["candidate"] = load_segmenter(threads=2, folder=args.compare,
                                                 **network_options(args, candidate=True))
    if args.no_stack_step:
        segmenters = {name: SliceBySlice(segmenter) for name, segmenter in segmenters.items()}
    results = evaluate_volumes(segmenters["shipped"], args.real, args.overlays, args.only)
    print_results(results)
    print(f"overlays: {args.overlays}")
    if args.compare:
        candidate = evaluate_volumes(segmenters["candidate"], args.real, args.overlays / "candidate", args.only)
        results["compare"] = {"models": str(args.compare), "candidate": candidate,
                              "paired": paired_comparison(results, candidate),
                              "lumbar_canal_ap_difference": canal_ap_differences(results, candidate)}
        print_comparison(results["compare"]["paired"], models_name(segmenters["shipped"]),
                         models_name(segmenters["candidate"]), candidate["foramen_sides"])
        ap = results["compare"]["lumbar_canal_ap_difference"]
        if ap:
            print(f"lumbar canal AP, candidate - shipped, on the {ap['slices']} slices where both find a canal: "
                  f"median {ap['median_mm']:+.2f} mm, quartiles {ap['quartiles_mm'][0]:+.2f} to "
                  f"{ap['quartiles_mm'][1]:+.2f} mm")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=lambda v: int(v) if not math.isnan(v) else None),
                             encoding="utf-8")


if __name__ == "__main__":
    main()
