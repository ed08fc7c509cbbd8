"""Copy trained checkpoints into SpinalStenosis/Resources/Models as fp16 weights with a manifest.

    python scripts/package_models.py --roi runs/roi --roi-second runs/roi_second --canal runs/canal \
        [--metrics evaluation.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "SpinalStenosis"))

from SpinalStenosisLib import __version__  # noqa: E402
from SpinalStenosisLib.models import INPUT_SIZE, MANIFEST, saved_trained_weights  # noqa: E402

MODELS = ROOT / "SpinalStenosis" / "Resources" / "Models"
DESCRIPTIONS = {"roi": "Network 1 (CoU-Net): region of interest around canal and foramina on the whole slice",
                "roi_second": "Network 1, second opinion (CoU-Net one level deeper): region of interest on the whole "
                              "slice, asked only where network 1 gives no region, or none in which network 2 finds a "
                              "canal",
                "canal": "Network 2 (CoU-Net): left foramen, canal (thecal sac), right foramen on the upsampled crop"}


def package(run: Path, name: str, release: str, out: Path, revision: str | None) -> dict:
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    entry = {"file": f"{name}.pt", "version": release, "description": DESCRIPTIONS[name],
             "input_size": INPUT_SIZE[name], **saved_trained_weights(best, out / f"{name}.pt")}
    return {**entry, "code_revision": revision} if revision else entry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--roi", type=Path, required=True)
    parser.add_argument("--roi-second", type=Path, required=True, help="run folder of the second-opinion ROI network")
    parser.add_argument("--canal", type=Path, required=True)
    parser.add_argument("--release", default="1.0.0")
    parser.add_argument("--metrics", type=Path, help="evaluation JSON to record in the manifest")
    parser.add_argument("--out", type=Path, default=MODELS, help="models folder (default: the extension's)")
    parser.add_argument("--roi-revision", help="code revision(s) the ROI network was trained with, if not logged")
    parser.add_argument("--roi-second-revision", help="code revision(s) the second ROI network was trained with")
    parser.add_argument("--canal-revision", help="code revision(s) the canal network was trained with")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {"release": args.release, "engine_version": __version__,
                "licence": "Apache-2.0 (weights trained by this project on synthetic images only; see LICENSE.txt)",
                "models": {"roi": package(args.roi, "roi", args.release, args.out, args.roi_revision),
                           "roi_second": package(args.roi_second, "roi_second", args.release, args.out,
                                                 args.roi_second_revision),
                           "canal": package(args.canal, "canal", args.release, args.out, args.canal_revision)}}
    if args.metrics:
        manifest["evaluation"] = json.loads(args.metrics.read_text(encoding="utf-8"))
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(json.dumps({k: v["sha256"] for k, v in manifest["models"].items()}, indent=1))


if __name__ == "__main__":
    main()
