"""The built-in default job: synthesise a multi-level lumbar (or cervical) T2 series and measure it."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .outputs import check_output_folder
from .synth.dataset import synthetic_stack
from .volume_io import write_image, write_labels

if TYPE_CHECKING:
    from .pipeline import MeasurementRun

# the first series (by seed) that looks like a usual clinical T2 and holds a normal level and an absolute
# stenosis (true dural sac under 75 mm²) at a disc
DEMO_SEED = 11


def run_demo(out: Path, overwrite: bool = False, seed: int = DEMO_SEED, use_masks: bool = False,
             region: str = "lumbar") -> tuple[Path, list[MeasurementRun]]:
    """Write the demo stack under out/input/, then measure it into out/ (networks, or the true masks) with the
    region's cut-offs, each slice named by its level; the output folder and the measurement runs."""
    from .pipeline import measure_file

    out = Path(out).resolve()
    image_path = out / "input" / f"demo_{region}_t2.nii.gz"
    labels_path = out / "input" / f"demo_{region}_true_labels.nii.gz"
    check_output_folder(out, image_path, overwrite)
    image, labels, geometry, truth = synthetic_stack(seed, region)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    for earlier in image_path.parent.glob("demo_*.nii.gz"):  # an earlier demo's series, perhaps another region's
        earlier.unlink()
    write_image(image_path, image, geometry)
    write_labels(labels_path, labels, geometry)
    segmenter = None
    if not use_masks:
        from .inference import load_segmenter

        segmenter = load_segmenter()
    runs = measure_file(image_path, out, labels_path=labels_path if use_masks else None, segmenter=segmenter,
                        region=region, overwrite=overwrite, levels=slice_levels(truth))
    return out, runs


def slice_levels(truth: list[dict]) -> dict[int, str]:
    """The level of every slice of a synthetic stack (e.g. {3: "L4-L5", 4: "L4-L5", 5: "L4-L5"}: the pedicle, disc
    and mid-body slices drawn for a level), as `measure --levels "3-5=L4-L5"` names them."""
    return {s: slice_truth["level"] for s, slice_truth in enumerate(truth)}


def add_demo_volume(scene, region: str = "lumbar", seed: int = DEMO_SEED):
    """The demo series as a scalar volume node of an MRML scene, made here (nothing is downloaded), its slices'
    levels in its scene.LEVELS_ATTRIBUTE; the node made before if the scene still holds it, so that asking again adds
    no duplicate."""
    import json

    from .scene import LEVELS_ATTRIBUTE
    from .scene_bundle import add_volume

    name = f"Synthetic {region} T2 (demo)"
    existing = scene.GetFirstNodeByName(name)
    if existing is not None and existing.IsA("vtkMRMLScalarVolumeNode"):
        return existing
    image, _, geometry, truth = synthetic_stack(seed, region)
    volume = add_volume(scene, image, geometry.ijk_to_ras, name)
    volume.SetAttribute(LEVELS_ATTRIBUTE, json.dumps(slice_levels(truth)))
    return volume
