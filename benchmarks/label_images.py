"""Label images and probability maps told from MR images, on the real validation volumes: no networks run.

    .venv/bin/python benchmarks/label_images.py [--real ../shared/eval/real]

Each real label volume (cord and grey-matter masks, MyoSegmenTUM's muscle labels, the TotalSegmentator example's
segmentation) given as if it were the image, as it is and blurred into a probability map (its labelled pixels, 1,
under a Gaussian of 1 pixel in-plane, as a network's soft output), and into that of the background (its unlabelled
pixels so blurred, as a softmax's first channel: a map of a structure that fills most of the image); and each real
MR volume as acquired and exported 8-bit: its whole range stretched to 0-255 (colour_composites.to_8_bit), the same
with 31 grey levels only, from 0 to its 70th and 50th intensity percentile, so that a third or half of the body is
white, and saved as JPEG at quality 75 and 15 (exported_images.jpeg); and as acquired with 60 % of its width zeroed,
as padding beyond an imaged area is.
Prints, per volume:
- the share of labelled pixels in flat regions (visibility.flat_pixels: a label image of more than MAX_LABEL_VALUES
  values from MIN_FLAT_SHARE) and whether measure refuses it (visibility.not_an_mr_image);
- the share of pixels at the image's extremes, 0 or its brightest value (visibility.two_level_share: a warning from
  TWO_LEVEL_SHARE).
Then how many label volumes and probability maps are refused or warned of, and how many MR volumes in each view; and
the same for the first --synthetic whole-body lumbar T2 slices of the held-out seed's stream exported as
exported_images.py exports them, and as JPEG at quality 15 (their largest share of flat pixels).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpinalStenosis"))

from colour_composites import eight_bit, to_8_bit  # noqa: E402
from evaluate_real import LABEL_FILE_MARKERS, REAL_FOLDER  # noqa: E402
from exported_images import EXPORTS, jpeg, whole_body_cases  # noqa: E402
from SpinalStenosisLib.visibility import (MIN_FLAT_SHARE, TWO_LEVEL_SHARE, checked_pixels, flat_pixels,  # noqa: E402
                                          not_an_mr_image, two_level_share, two_level_warnings)
from SpinalStenosisLib.volume_io import open_axial  # noqa: E402


def flat_share(read_slice, n_slices: int) -> float:
    """The share of a volume's labelled pixels in flat regions, over all its slices."""
    flat, labelled = np.sum([flat_pixels(read_slice(s)) for s in range(n_slices)], axis=0)
    return flat / max(labelled, 1)


def exports(volume) -> dict:
    """The volume's slices as acquired and as the 8-bit exports of the module docstring, by name."""
    pixels = np.concatenate([volume.read_slice(s).ravel() for s in range(volume.n_slices)])
    body = pixels[pixels > 0]
    low, high = 0.0, float(pixels.max())
    return {"as acquired": volume.read_slice,
            "8-bit": lambda s: to_8_bit(volume.read_slice(s), low, high),
            "31 levels": lambda s: np.round(to_8_bit(volume.read_slice(s), low, high) / 255.0 * 30.0),
            "8-bit to p70": lambda s: to_8_bit(volume.read_slice(s), low, float(np.percentile(body, 70))),
            "8-bit to p50": lambda s: to_8_bit(volume.read_slice(s), low, float(np.percentile(body, 50))),
            "JPEG 75": lambda s: jpeg(to_8_bit(volume.read_slice(s), low, high), 75),
            "JPEG 15": lambda s: jpeg(to_8_bit(volume.read_slice(s), low, high), 15),
            "60 % padded": lambda s: padded(volume.read_slice(s), 0.6)}


def padded(image: np.ndarray, share: float) -> np.ndarray:
    """The image with its last columns, share of its width, zeroed as padding beyond an imaged area is."""
    image = image.copy()
    image[:, round((1.0 - share) * image.shape[1]):] = 0.0
    return image


def label_views(volume) -> dict:
    """The label volume as it is and blurred into probability maps of its labels and of its background, by name."""
    return {"as the image": volume.read_slice,
            "as a probability map": lambda s: ndimage.gaussian_filter((volume.read_slice(s) > 0).astype(float), 1.0),
            "as the background's": lambda s: ndimage.gaussian_filter((volume.read_slice(s) == 0).astype(float), 1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REAL_FOLDER)
    parser.add_argument("--synthetic", type=int, default=100)
    args = parser.parse_args()
    counts = {"label": {}, "MR": {}}  # by view: refused or warned of, of all
    print(f"per view: share of labelled pixels in flat regions (a label image from {MIN_FLAT_SHARE:.0%} where it "
          f"holds more than a few values), share of pixels at its extremes (warned of from {TWO_LEVEL_SHARE:.0%}), "
          "and what measure does")
    for path in sorted(args.real.rglob("*.nii.gz")):
        volume = open_axial(path)
        kind = "label" if any(marker in path.name for marker in LABEL_FILE_MARKERS) else "MR"
        cells = []
        for name, read_slice in (label_views(volume) if kind == "label" else exports(volume)).items():
            reason = not_an_mr_image(read_slice, volume.n_slices)
            extremes = two_level_share(checked_pixels(read_slice, volume.n_slices))
            outcome = (f" refused ({reason.split(':')[0]})" if reason
                       else " warned" if two_level_warnings(extremes) else "")
            flagged, of = counts[kind].get(name, (0, 0))
            counts[kind][name] = (flagged + bool(outcome), of + 1)
            cells.append(f"{name} {flat_share(read_slice, volume.n_slices):.2f}, {extremes:.2f}{outcome}")
        print(f"{kind:5s} {path.relative_to(args.real)}: " + "; ".join(cells))
    for kind, views in counts.items():
        print(f"{kind} volumes refused or warned of: "
              + "; ".join(f"{name} {flagged} of {of}" for name, (flagged, of) in views.items()))
    synthetic_exports = {**EXPORTS, "JPEG 15": lambda image: jpeg(eight_bit(image), 15)}
    flagged, flattest = dict.fromkeys(synthetic_exports, 0), dict.fromkeys(synthetic_exports, 0.0)
    for image, *_ in whole_body_cases(args.synthetic, "T2"):
        for name, export in synthetic_exports.items():
            exported = export(image).astype(float)
            flagged[name] += bool(not_an_mr_image(lambda s: exported, 1)
                                  or two_level_warnings(two_level_share(exported.ravel())))
            flattest[name] = max(flattest[name], flat_share(lambda s: exported, 1))
    print(f"synthetic T2 slices ({args.synthetic}), refused or warned of / largest share of flat pixels: "
          + "; ".join(f"{name} {flagged[name]} / {flattest[name]:.2f}" for name in synthetic_exports))


if __name__ == "__main__":
    main()
