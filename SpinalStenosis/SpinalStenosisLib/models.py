"""Shipped network weights: a manifest (name, version, sha256, licence, metrics) and verified loading."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.json"
MODELS_ENV = "SPINAL_STENOSIS_MODELS"


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
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


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
    import torch

    from .network import CoUNet, for_inference

    path, entry = verified_path(name, folder)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = CoUNet(**entry["network"])
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return for_inference(model).to(device), entry
