"""The built-in default job: synthesise a multi-level lumbar stack and measure it."""
from __future__ import annotations

from pathlib import Path

from .outputs import check_output_folder
from .synth.dataset import synthetic_stack
from .volume_io import write_image, write_labels

DEMO_INPUT = "input/demo_lumbar_t2.nii.gz"
DEMO_TRUTH_MASKS = "input/demo_lumbar_true_labels.nii.gz"


def run_demo(out: Path, overwrite: bool = False, seed: int = 8, use_masks: bool = False) -> Path:
    """Write the demo stack under out/input/, then measure it into out/ (networks, or the true masks)."""
    from .pipeline import measure_file

    out = Path(out).resolve()
    image_path, labels_path = out / DEMO_INPUT, out / DEMO_TRUTH_MASKS
    check_output_folder(out, image_path, overwrite)
    image, labels, geometry, _ = synthetic_stack(seed)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    write_image(image_path, image, geometry)
    write_labels(labels_path, labels, geometry)
    segmenter = None
    if not use_masks:
        from .inference import load_segmenter

        segmenter = load_segmenter()
    measure_file(image_path, out, labels_path=labels_path if use_masks else None, segmenter=segmenter,
                 overwrite=overwrite)
    return out
