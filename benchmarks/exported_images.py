"""Slices exported as a viewer or PACS exports them (8 bits, a narrow window, burnt-in text, JPEG): what is lost.

    .venv/bin/python benchmarks/exported_images.py [--count 300] [--contrast T2FS] [--validation] [--precision float32]

Each case is a lumbar synthetic T2 slice with a whole-body field of view (at least 200 pixels on its shorter side),
drawn on an upright grid of square pixels as a displayed slice is read. It is written as the original floating-point
image and as six exports of it, and each file is measured as ``measure FILE --pixel-mm`` measures it
(volume_io.open_axial):
- 8-bit, whole range: its lowest to its highest intensity stretched to 0-255;
- 8-bit: stretched from its 0.5th to its 99.5th intensity percentile to 0-255 (colour_composites.eight_bit), as
  many viewers export, which clips its brightest half percent;
- windowed: the same with a window a quarter narrower at the top, so that the CSF and fat are clipped white;
- annotated: the 8-bit image with text (series, sequence, name, window) in its corners, orientation letters and a
  scale bar burnt in, white;
- JPEG: the 8-bit image saved at quality 75; the annotated one at quality 50.
Prints the canal AP within 1 / 2 / 3 mm of the truth, the canal Dice on the native grid, and for each export on how
many slices its canal AP is within 1 mm where the original's is not and the reverse (with the exact McNemar p); then
on how many slices of each file the canal is flagged as cut by the field of view (the whole body is in view: a
flag is a canal network 2 draws out to its crop's edge, or an export's dark pixels taken for padding,
visibility.padding), on how many the product warns that the image is clipped at its bright end
(visibility.clipped_image_warnings), and the canal AP within 1 mm on those slices, as exported and as the original.
The slices come from the held-out seed's stream (evaluate_synthetic.HELD_OUT_SEED, never trained on), but are not
the held-out set; with --validation from the validation seed's (training.VALIDATION_SEED), where the clipping
warning's cut-off was chosen. --contrast T2FS draws fat-suppressed T2 instead.
"""
from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from colour_composites import eight_bit, to_8_bit, upright  # noqa: E402
from evaluate_synthetic import HELD_OUT_SEED, add_network_options, exact_mcnemar_p, network_options  # noqa: E402
from SpinalStenosisLib.evaluation import dice, error  # noqa: E402
from SpinalStenosisLib.inference import load_segmenter  # noqa: E402
from SpinalStenosisLib.pipeline import measure_with_segmenter  # noqa: E402
from SpinalStenosisLib.synth.dataset import synthetic_slice  # noqa: E402
from SpinalStenosisLib.synth.sampler import native_grid, sample_scene  # noqa: E402
from SpinalStenosisLib.training import VALIDATION_SEED  # noqa: E402
from SpinalStenosisLib.volume_io import open_axial  # noqa: E402

WHOLE_BODY_PIXELS = 200


def whole_range(image: np.ndarray) -> np.ndarray:
    """The image's lowest to highest intensity stretched to 0-255."""
    return to_8_bit(image, image.min(), image.max())


def windowed(image: np.ndarray) -> np.ndarray:
    """eight_bit with the top quarter of its window clipped white."""
    low, high = np.percentile(image, (0.5, 99.5))
    return to_8_bit(image, low, low + 0.75 * (high - low))


def annotated(image: np.ndarray) -> np.ndarray:
    """An 8-bit image with a viewer's white text, orientation letters and a scale bar burnt into it."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    rows, columns = image.shape
    for place, text in (((4, 4), "SE 7 IM 12 / 20"), ((4, 16), "T2 TSE TRA TR 4000 TE 100"),
                        ((columns - 110, 4), "DOE^JANE 1950"), ((4, rows - 28), "W 1200 L 600"),
                        ((columns - 70, rows - 28), "5 cm"), ((columns // 2 - 3, 2), "A"), ((2, rows // 2), "R")):
        draw.text(place, text, fill=255)
    draw.line([(columns - 70, rows - 10), (columns - 20, rows - 10)], fill=255, width=2)
    return np.asarray(canvas)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    saved = io.BytesIO()
    Image.fromarray(image).save(saved, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(saved.getvalue())))


EXPORTS = {"8-bit, whole range": whole_range, "8-bit": eight_bit, "windowed": windowed,
           "annotated": lambda image: annotated(eight_bit(image)), "JPEG 75": lambda image: jpeg(eight_bit(image), 75),
           "annotated JPEG 50": lambda image: jpeg(annotated(eight_bit(image)), 50)}
WAYS = ("original", *EXPORTS)


def whole_body_cases(count: int, contrast: str, seed: int = HELD_OUT_SEED):
    """The first count lumbar slices of this contrast in the seed's stream whose upright grid is whole-body sized:
    (image, pixel size, true canal AP, true canal labels)."""
    n, found = -1, 0
    while found < count:
        n += 1
        rng = np.random.default_rng([seed, 11, n])
        scene = sample_scene(rng, "lumbar", contrast=contrast)
        grid = upright(native_grid(rng, scene))
        if min(grid.shape) < WHOLE_BODY_PIXELS:
            continue
        found += 1
        case = synthetic_slice(rng, scene=scene, grid=grid, with_truth=True)
        yield case.image.astype(np.float32), grid.pixel_size_mm[0], case.truth["canal_ap_mm"], case.labels == 1


def main() -> None:
    import SimpleITK as sitk

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--contrast", choices=("T2", "T2FS"), default="T2")
    parser.add_argument("--validation", action="store_true", help="the validation seed's slices")
    add_network_options(parser, compare=False)
    args = parser.parse_args()
    segmenter = load_segmenter(threads=2, **network_options(args))
    errors, dices, warned, cut = ({way: [] for way in WAYS} for _ in range(4))
    with tempfile.TemporaryDirectory() as folder:
        seed = VALIDATION_SEED if args.validation else HELD_OUT_SEED
        for image, pixel_mm, true_ap_mm, true_canal in whole_body_cases(args.count, args.contrast, seed):
            files = {"original": image, **{way: export(image) for way, export in EXPORTS.items()}}
            for way, pixels in files.items():
                path = Path(folder) / ("slice.nrrd" if way == "original" else "slice.png")
                sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
                run = measure_with_segmenter(open_axial(path, pixel_mm=pixel_mm), segmenter)
                errors[way].append(error(run.measurements[0].values["canal_ap_mm"], true_ap_mm))
                dices[way].append(dice(run.stack_labels[0] == 1, true_canal))
                warned[way].append(any(w.startswith("the image is clipped") for w in run.warnings))
                cut[way].append("canal" in run.measurements[0].cut_by_field_of_view)
    original = np.array(errors["original"]) <= 1
    stream = "validation" if args.validation else "held-out"
    print(f"{args.count} lumbar {args.contrast} slices ({stream} seed), whole-body field of view, measured as exported")
    print(f"{'file':<20} {'canal AP within 1 / 2 / 3 mm':>30} {'canal Dice':>11}  within 1 mm against the original")
    for way in WAYS:
        found = np.array(errors[way])
        within = " / ".join(f"{100 * np.mean(found <= mm):.1f}" for mm in (1, 2, 3))
        mean_dice = np.mean([d for d in dices[way] if not math.isnan(d)])
        better, worse = int(((found <= 1) & ~original).sum()), int((original & ~(found <= 1)).sum())
        paired = "" if way == "original" else (f"better on {better}, worse on {worse} "
                                               f"(p = {exact_mcnemar_p(better, worse):.3f})")
        print(f"{way:<20} {within + ' %':>30} {mean_dice:>11.3f}  {paired}")
    print(f"\n{'file':<20} {'canal cut':>10} {'warned clipped':>15}  canal AP within 1 mm there: as exported / the "
          "original")
    for way in WAYS:
        flagged = np.array(warned[way])
        there = (" / ".join(f"{100 * np.mean(np.array(errors[source])[flagged] <= 1):.1f}"
                            for source in (way, "original")) + " %") if flagged.any() else ""
        print(f"{way:<20} {sum(cut[way]):>10} {int(flagged.sum()):>15}  {there}")


if __name__ == "__main__":
    main()
