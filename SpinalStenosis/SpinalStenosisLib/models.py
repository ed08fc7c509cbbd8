"""Shipped network weights: a manifest (name, version, sha256, licence, metrics) and verified loading."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from .crop import CROP_SIZE, ROI_SIZE

MANIFEST = "manifest.json"
MODELS_ENV = "SPINAL_STENOSIS_MODELS"
INPUT_SIZE = {"roi": ROI_SIZE, "roi_second": ROI_SIZE, "canal": CROP_SIZE}  # each network's square view (crop.py)


class ModelError(RuntimeError):
    """A model file is missing or does not match its manifest; the message is meant for the user."""


def models_folder() -> Path:
    """``$SPINAL_STENOSIS_MODELS``, else Resources/Models of the extension, else the copy inside a pip install."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "Resources" / "Models", here / "_models"):
        if (candidate / MANIFEST).exists():
            return candidate
    raise ModelError(f"no {MANIFEST} found in {here.parent / 'Resources' / 'Models'} or {here / '_models'}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path | None = None) -> dict:
    folder = folder or models_folder()
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no {MANIFEST} in {folder}: not a models folder") from None
    except json.JSONDecodeError as error:
        raise ModelError(f"{folder / MANIFEST} is damaged ({error}); reinstall the extension") from None


def verified_path(name: str, folder: Path | None = None) -> tuple[Path, dict]:
    """Path of model ``name`` after checking its sha256 against the manifest."""
    folder = folder or models_folder()
    entry = read_manifest(folder)["models"].get(name)
    if entry is None:
        raise ModelError(f"model {name!r} is not in {folder / MANIFEST}")
    path = folder / entry["file"]
    if not path.exists():
        raise ModelError(f"model file {path} is missing; reinstall the extension")
    actual = sha256(path)
    if actual != entry["sha256"]:
        raise ModelError(f"model file {path} is damaged or replaced (sha256 {actual[:12]}…, manifest says "
                         f"{entry['sha256'][:12]}…); reinstall the extension")
    return path, entry


def load_network(name: str, folder: Path | None = None, device: str = "cpu"):
    """A verified CoU-Net ready for inference (see network.for_inference), with its manifest entry."""
    from .network import for_inference

    model, entry = load_trained_network(name, folder)
    return for_inference(model).to(device), entry


def load_trained_network(name: str, folder: Path | None = None):
    """A verified CoU-Net as it was trained (float32, BatchNorm layers of its own, in eval mode), with its manifest
    entry."""
    from .network import CoUNet

    path, entry = verified_path(name, folder)
    if entry.get("input_size") != INPUT_SIZE[name]:
        raise ModelError(f"model {name!r} in {path.parent / MANIFEST} takes {entry.get('input_size')}-pixel inputs; "
                         f"this version of SpinalStenosis gives it {INPUT_SIZE[name]}: use the models it ships with")
    state = load_weights(path)
    model = CoUNet(**entry["network"])
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval(), entry


def load_weights(path: Path):
    """A weights file's contents (tensors and plain data only: torch.load's weights_only), on the CPU. torch 2.0's
    weights-only loader warns of TypedStorage, which it uses itself, on every load: that warning is not the user's
    concern, and is not shown."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def saved_trained_weights(checkpoint: dict, path: Path) -> dict:
    """A training run's weights (its loaded best.pt) saved in fp16 at path; the manifest fields that say what they
    are and how they were trained, from the run's own record."""
    import torch

    torch.save({k: v.half() if v.is_floating_point() else v for k, v in checkpoint["model"].items()}, path)
    return {"sha256": sha256(path), "network": checkpoint["network"],
            "training_command": checkpoint.get("training_command", "unknown"),
            "training_data": checkpoint.get("training_data", "unknown"),
            "code_revision": checkpoint.get("code_revision", "unknown"),
            "trained_steps": checkpoint.get("step"),
            "synthetic_validation_dice": checkpoint.get("validation_dice")}


def package_models(out_dir: Path, trained: dict[str, Path], base: Path | None = None,
                   overwrite: bool = False) -> Path:
    """A models folder (for ``measure --models`` or $SPINAL_STENOSIS_MODELS): the base folder's networks (the
    shipped ones by default) with those named in trained replaced by a training run's best.pt, saved in fp16 and
    entered in the manifest with their sha256 and how they were trained. The base release's evaluation figures are
    left out: they are not the new weights'."""
    import pickle
    import shutil

    base, out_dir = Path(base or models_folder()), Path(out_dir)
    manifest = read_manifest(base)
    unknown = sorted(set(trained) - set(manifest["models"]))
    if unknown:
        raise ModelError(f"no network named {', '.join(unknown)} in {base / MANIFEST}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ModelError(f"{out_dir} is not empty; give --overwrite to replace it")
    checkpoints = {}
    for name, path in trained.items():
        try:
            checkpoint = load_weights(path)
        except (RuntimeError, EOFError, pickle.UnpicklingError):
            checkpoint = None  # not a torch file
        expected = manifest["models"][name]["network"]["out_channels"]
        if not isinstance(checkpoint, dict) or checkpoint.get("network", {}).get("out_channels") != expected:
            raise ModelError(f"{path}: not the best.pt of a {name}-network training run")
        checkpoints[name] = checkpoint
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, entry in manifest["models"].items():
        if name not in checkpoints:
            verified_path(name, base)
            shutil.copyfile(base / entry["file"], out_dir / entry["file"])
    if (base / "LICENSE.txt").exists():
        shutil.copyfile(base / "LICENSE.txt", out_dir / "LICENSE.txt")
    for name, checkpoint in checkpoints.items():
        entry = manifest["models"][name]
        entry.update({"version": f"{entry['version']}+{Path(trained[name]).resolve().parent.name}",
                      **saved_trained_weights(checkpoint, out_dir / entry["file"]),
                      # runs from before the size was recorded were all trained at the shipped size
                      "input_size": checkpoint.get("input_size", entry["input_size"])})
    manifest["release"] = f"{manifest.get('release', '')}+local"
    manifest["licence"] = (f"{manifest.get('licence', '')}; the networks whose version has a '+' were trained "
                           "locally, on the data their training_data names")
    manifest.pop("evaluation", None)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return out_dir
