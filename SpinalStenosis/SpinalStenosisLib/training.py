"""Train the ROI or canal CoU-Net on on-the-fly synthetic slices (optionally mixed with real labelled data)."""
from __future__ import annotations

import contextlib
import csv
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .inference import CHANNELS, MIRRORED_CHANNELS, network_dtype
from .network import (CoUNet, chord_loss, deepened, dice_bce_loss, mirrored, paper_loss, saved_depth, saved_width,
                      widened)
from .real_data import RealPairs
from .synth.augment import AUGMENTATIONS, domain_randomised
from .synth.render import CONTRASTS
from .synth.sampler import AUXILIARY_GROUPS, canal_pair, roi_pair

OUT_CHANNELS = {"roi": 1, "canal": 3}
LOSSES = {"bce_dice": dice_bce_loss, "paper": paper_loss}
CERVICAL_FRACTION = 0.3
VALIDATION_SEED = 2_000_000  # synthetic validation cases; training seeds never reach it
VALIDATION_SIZE = 48
RECALIBRATION_SEED = 3_000_000  # the batches BatchNorm statistics are averaged over; training seeds never reach it


@dataclass
class TrainConfig:
    network: str
    out_dir: Path
    steps: int = 4000
    batch_size: int = 8
    width: int = 16
    depth: int = 3  # poolings; weights of a shallower network given by init are deepened (network.deepened)
    dropout: float = 0.1  # Dropout2d after every block while training (the CoU-Net's)
    seed: int = 1
    learning_rate: float = 2e-3
    resume: bool = False
    real_data: Path | None = None
    real_fraction: float = 0.25
    threads: int = 2
    validate_every: int = 250
    loss: str = "bce_dice"  # or "paper": MSE - 1e-4 Dice (Upadhyay et al. 2019)
    init: Path | None = None  # start from these weights (a best.pt or a shipped .pt; widened if narrower)
    augment: tuple[str, ...] = ()  # domain randomisations of the synthetic training images (synth.augment)
    freeze_encoder: bool = False  # train the decoder and head only; the encoder (weights, BatchNorm statistics) stays
    batchnorm_batches: int = 250  # best.pt's BatchNorm statistics averaged over this many batches at the end; 0: not
    edge_weight: float = 0.0  # BCE counts pixels within 2 of an edge 1 + edge_weight times (network.edge_weights)
    hard_fraction: float = 0.0  # > 0: network.hard_pixel_loss over this fraction of each image's pixels is added
    foramen_weight: float = 1.0  # the canal network's foramen channels counted this many times in its loss
    contrasts: tuple[str, ...] = CONTRASTS  # the synthetic images' contrasts (training, validation, recalibration)
    average_from: int = 0  # from this step on, a constant learning rate and the weights averaged (WeightAverage)
    auxiliary_weight: float = 0.0  # > 0: the canal network also learns the tissues around the sac on extra outputs
    # (synth.sampler.AUXILIARY_GROUPS), their loss counted this many times; those outputs are not saved
    noise_scale: float = 1.0  # the synthetic images' noise level multiplied by this (training, validation, ...)
    chord_weight: float = 0.0  # > 0: each structure's network.chord_loss (its rulers' lengths) is added, so weighted
    precision: str = "float32"  # the training step's forward pass; bfloat16: under autocast (inference.network_dtype)
    mirror_weight: float = 0.0  # > 0: each batch trained with its left-right mirror, and mirror_disagreement added


def synthetic_batch(network: str, rng: np.random.Generator, batch_size: int, augment: tuple[str, ...] = (),
                    contrasts: tuple[str, ...] = CONTRASTS, auxiliary: bool = False, noise_scale: float = 1.0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [synthetic_pair(network, rng, augment, contrasts, auxiliary, noise_scale) for _ in range(batch_size)]
    return (torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs])))


def synthetic_pair(network: str, rng: np.random.Generator, augment: tuple[str, ...] = (),
                   contrasts: tuple[str, ...] = CONTRASTS, auxiliary: bool = False, noise_scale: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One training pair: image [1, H, W] and target [C, H, W] (the canal network's auxiliary tissues after its
    three channels when auxiliary; ``noise_scale``: see synth.render.acquire)."""
    region = "cervical" if rng.random() < CERVICAL_FRACTION else "lumbar"
    if network == "roi":
        image, target = roi_pair(rng, region, contrasts, noise_scale)
        targets = target[None]
    else:
        image, targets = canal_pair(rng, region, contrasts, auxiliary, noise_scale)
    if augment:
        image = domain_randomised(rng, image, augment)
    return image[None], targets


def validation_set(network: str, contrasts: tuple[str, ...] = CONTRASTS, noise_scale: float = 1.0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic_batch(network, np.random.default_rng(VALIDATION_SEED), VALIDATION_SIZE, contrasts=contrasts,
                           noise_scale=noise_scale)


def training_loss(config: TrainConfig, logits: torch.Tensor, targets: torch.Tensor,
                  channel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The configured loss (edge-weighted, with hard pixels mined and channels weighted when config.edge_weight,
    hard_fraction and channel_weights are set)."""
    if config.edge_weight or config.hard_fraction or channel_weights is not None:
        return dice_bce_loss(logits, targets, config.edge_weight, config.hard_fraction, channel_weights)
    return LOSSES[config.loss](logits, targets)


def step_loss(config: TrainConfig, logits: torch.Tensor, targets: torch.Tensor, channels: slice) -> torch.Tensor:
    """The training loss over the labelled output channels, plus config.chord_weight times each one's chord
    loss, plus config.auxiliary_weight times the auxiliary tissues' (BCE + Dice) where the targets hold them."""
    outputs = OUT_CHANNELS[config.network]
    channel_weights = None
    if config.foramen_weight != 1.0:
        channel_weights = torch.tensor([config.foramen_weight if name.endswith("_foramen") else 1.0
                                        for name in CHANNELS])[channels]
    loss = training_loss(config, logits[:, :outputs][:, channels], targets[:, :outputs][:, channels],
                         channel_weights)
    if config.chord_weight:
        chords = [chord_loss(torch.sigmoid(logits[:, c]), targets[:, c]) for c in range(outputs)[channels]]
        loss = loss + config.chord_weight * sum(chords)
    if targets.shape[1] > outputs:
        loss = loss + config.auxiliary_weight * dice_bce_loss(logits[:, outputs:], targets[:, outputs:])
    return loss


def mirrored_maps(maps: torch.Tensor, network: str) -> torch.Tensor:
    """A network's per-pixel maps [N, C, H, W] (targets or probabilities) as on the left-right mirrored images: the
    canal network's foramina swapped (inference.MIRRORED_CHANNELS); auxiliary tissues after them have no side."""
    sided = list(MIRRORED_CHANNELS) if network == "canal" else []
    return mirrored(maps, sided + list(range(len(sided), maps.shape[1])))


def with_mirrors(network: str, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch followed by its left-right mirror, images and targets."""
    return torch.cat([inputs, inputs.flip(-1)]), torch.cat([targets, mirrored_maps(targets, network)])


def mirror_disagreement(logits: torch.Tensor, network: str) -> torch.Tensor:
    """Mean squared difference between the output probabilities of each image of a batch's first half and those of
    its mirror in the second half (with_mirrors), mirrored back."""
    probabilities = torch.sigmoid(logits[:, :OUT_CHANNELS[network]])
    half = len(logits) // 2
    return torch.mean((probabilities[:half] - mirrored_maps(probabilities[half:], network)) ** 2)


def training_mode(model: CoUNet, config: TrainConfig) -> None:
    """Train mode (BatchNorm statistics updated, dropout on), except a frozen encoder, which stays in eval mode."""
    model.train()
    if config.freeze_encoder:
        model.encoders.eval()


def recalibrate_batchnorm(model: CoUNet, config: TrainConfig, real: RealPairs | None) -> None:
    """Each trained BatchNorm layer's running statistics replaced by their plain average over
    config.batchnorm_batches fresh batches drawn as in training (dropout on), the weights unchanged. Training leaves
    an exponential average dominated by its last ten or so batches: noise that cost one fine-tune 1.2 points of its
    real-image figures (README, Evaluation)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.weight.requires_grad]
    training_mode(model, config)
    rng = np.random.default_rng(RECALIBRATION_SEED)
    average_batchnorm_statistics(model, norms, (training_batch(config, real, rng)[0]
                                                for _ in range(config.batchnorm_batches)))
    model.eval()


def average_batchnorm_statistics(model: CoUNet, norms: list[torch.nn.BatchNorm2d], batches) -> None:
    """The running statistics of norms (BatchNorm layers of model, in train mode) replaced by their plain average over
    model's passes of batches (input tensors); their momenta are kept."""
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


class WeightAverage:
    """The running mean of a network's weights after each training step (stochastic weight averaging, dense as in
    SWAD, Cha et al. 2021: averaging along a constant-rate trajectory seeks a flat minimum, which carries better to
    images unlike the training ones). BatchNorm statistics are not averaged: they are recalibrated for the averaged
    weights (recalibrate_batchnorm)."""

    def __init__(self, state: dict | None = None):
        self.count = state["count"] if state else 0
        self.weights = state["weights"] if state else {}

    def update(self, model: CoUNet) -> None:
        self.count += 1
        for name, value in model.named_parameters():
            value = value.detach()
            if name not in self.weights:
                self.weights[name] = value.clone()
            else:
                self.weights[name] += (value - self.weights[name]) / self.count

    def state(self) -> dict:
        return {"count": self.count, "weights": self.weights}

    def averaged(self, model: CoUNet) -> CoUNet:
        """A copy of model with the averaged weights."""
        copy = CoUNet(**model.config)
        copy.load_state_dict({**model.state_dict(), **self.weights})
        return copy


def dice_per_channel(probabilities: torch.Tensor, target: torch.Tensor) -> list[float]:
    predicted = probabilities >= 0.5
    truth = target >= 0.5
    scores = []
    for c in range(target.shape[1]):
        p, t = predicted[:, c], truth[:, c]
        denominator = p.sum() + t.sum()
        scores.append(float(2 * (p & t).sum() / denominator) if denominator > 0 else 1.0)
    return scores


def initial_model(config: TrainConfig) -> CoUNet:
    """A new network, or config.init's weights (grown to config.width if narrower, to config.depth if shallower, and
    given new auxiliary outputs), its encoder frozen if asked."""
    auxiliary = len(AUXILIARY_GROUPS) if config.auxiliary_weight else 0
    outputs = OUT_CHANNELS[config.network] + auxiliary
    model = CoUNet(outputs, width=config.width, depth=config.depth, dropout=config.dropout)
    if config.init is not None:
        weights = torch.load(config.init, map_location="cpu", weights_only=False)
        state = {k: v.float() for k, v in weights.get("model", weights).items()}
        depth = saved_depth(state)
        if depth > config.depth:
            raise ValueError(f"--depth {config.depth}: the --init weights have depth {depth}; a network can be "
                             "deepened, not made shallower")
        shallow = model if depth == config.depth else CoUNet(outputs, config.width, depth, config.dropout)
        if saved_width(state) < config.width or len(state["head.bias"]) < outputs:
            state = widened(state, shallow)
        if depth < config.depth:
            shallow.load_state_dict(state)
            state = deepened(state, model, *deepest_statistics(shallow, config))
        model.load_state_dict(state)
    model.encoders.requires_grad_(not config.freeze_encoder)
    return model


def deepest_statistics(model: CoUNet, config: TrainConfig, batches: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of model's deepest encoder output (eval mode) over synthetic training batches:
    what the BatchNorm of a deepened network's pass-through decoder is set to undo (network.deepened)."""
    outputs = []
    hook = model.encoders[-1].register_forward_hook(lambda _module, _inputs, output: outputs.append(output))
    rng = np.random.default_rng(RECALIBRATION_SEED)
    model.eval()
    with torch.no_grad():
        for _ in range(batches):
            model(training_batch(config, None, rng)[0])
    hook.remove()
    features = torch.cat(outputs).transpose(0, 1).flatten(1)
    return features.mean(1), features.var(1, unbiased=False)


def training_batch(config: TrainConfig, real: RealPairs | None, rng: np.random.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor, slice]:
    """One step's inputs, targets and the output channels they label: real pairs config.real_fraction of the time
    when given (the Lumbar Spine MRI PNGs label the canal only), synthetic otherwise."""
    if real is not None and rng.random() < config.real_fraction:
        return real.batch(rng, config.batch_size)
    return (*synthetic_batch(config.network, rng, config.batch_size, config.augment, config.contrasts,
                             bool(config.auxiliary_weight), config.noise_scale), slice(None))


def validate(model: CoUNet, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, list[float]]:
    """Validation loss (BCE + Dice, whatever the training loss) and Dice per channel of the targets."""
    model.eval()
    with torch.inference_mode():
        logits = model(inputs)[:, :targets.shape[1]]
        return float(dice_bce_loss(logits, targets)), dice_per_channel(torch.sigmoid(logits), targets)


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def recalibrated(record: dict, model: CoUNet, config: TrainConfig, real: RealPairs | None,
                 validation_inputs: torch.Tensor, validation_targets: torch.Tensor) -> dict:
    """A weights record (see weights_record) of model with its BatchNorm statistics recalibrated (see
    recalibrate_batchnorm) and its validation Dice measured again."""
    model.encoders.requires_grad_(not config.freeze_encoder)
    recalibrate_batchnorm(model, config, real)
    _, dice = validate(model, validation_inputs, validation_targets)
    return {**record, **saved_network(model, config), "validation_dice": dice,
            "batchnorm": f"statistics averaged over {config.batchnorm_batches} batches"}


def recalibrate_best(path: Path, config: TrainConfig, real: RealPairs | None, validation_inputs: torch.Tensor,
                     validation_targets: torch.Tensor) -> None:
    """best.pt recalibrated (see recalibrated)."""
    best = torch.load(path, weights_only=False)
    model = CoUNet(**best["network"])
    model.load_state_dict(best["model"])
    torch.save(recalibrated(best, model, config, real, validation_inputs, validation_targets), path)


def blended_weights(start: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], tuned_share: float,
                    encoder_share: float | None = None) -> dict[str, torch.Tensor]:
    """Each weight tuned_share of the way from start to tuned, the encoder's encoder_share of the way if given
    (weight-space ensembling, WiSE-FT: Wortsman et al. 2022 found that a network part way between its start and its
    fine-tune keeps most of what the fine-tune gains and most of the start's robustness to images unlike the
    fine-tuning ones). Counters are tuned's; BatchNorm statistics interpolated so are only a starting point (see
    blend)."""
    for option, share in (("--share", tuned_share), ("--encoder-share", encoder_share)):
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError(f"{option} {share:g}: expected the fine-tune's share of each weight, 0 to 1")
    shapes = {name: tuple(value.shape) for name, value in start.items()}
    if shapes != {name: tuple(value.shape) for name, value in tuned.items()}:
        raise ValueError("the start and tuned weights are not the same network (names or shapes differ)")

    def share(name: str) -> float:
        return encoder_share if encoder_share is not None and name.startswith("encoders.") else tuned_share

    return {name: torch.lerp(start[name].float(), value.float(), share(name)) if value.is_floating_point() else value
            for name, value in tuned.items()}


def blend(network: str, start_path: Path, tuned_path: Path, tuned_share: float, out_path: Path,
          encoder_share: float | None = None, threads: int = 2,
          batchnorm_batches: int = TrainConfig.batchnorm_batches) -> Path:
    """``spinal-stenosis blend``: the weights between a network and its fine-tune (blended_weights), BatchNorm
    statistics recalibrated for them (recalibrate_batchnorm), validation Dice measured; written like a best.pt, its
    training command the fine-tune's followed by this one."""
    if batchnorm_batches < 1:
        raise ValueError("--batchnorm-batches: blended weights need their BatchNorm statistics recalibrated "
                         "(1 or more batches)")
    torch.set_num_threads(threads)
    start = torch.load(start_path, map_location="cpu", weights_only=False)
    tuned = torch.load(tuned_path, map_location="cpu", weights_only=False)
    if "training_command" not in tuned or tuned["network"]["out_channels"] != OUT_CHANNELS[network]:
        raise ValueError(f"{tuned_path}: not the best.pt of a {network}-network training run")
    model = CoUNet(**tuned["network"])
    model.load_state_dict(blended_weights(start.get("model", start), tuned["model"], tuned_share, encoder_share))
    config = TrainConfig(network=network, out_dir=Path(out_path).parent, threads=threads,
                         batchnorm_batches=batchnorm_batches)
    shares = f"--share {tuned_share:g}" + ("" if encoder_share is None else f" --encoder-share {encoder_share:g}")
    command = f"spinal-stenosis blend {network} --start {start_path} --tuned {tuned_path} {shares} --out {out_path}"
    encoder_words = "" if encoder_share is None else f" (the encoder {encoder_share:g})"
    record = {**tuned, "training_command": f"{tuned['training_command']}; then {command}",
              "blended": f"{tuned_share:g}{encoder_words} of the way from {start_path} to {tuned_path}"}
    validation_inputs, validation_targets = validation_set(network)
    torch.manual_seed(RECALIBRATION_SEED)  # the dropout masks of the recalibration batches: the same blend each time
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(recalibrated(record, model, config, None, validation_inputs, validation_targets), out_path)
    return Path(out_path)


def command_line(config: TrainConfig) -> str:
    """The ``spinal-stenosis train`` command that runs this configuration (for provenance)."""
    parts = ["spinal-stenosis train", config.network, "--out", str(config.out_dir), "--steps", str(config.steps),
             "--batch-size", str(config.batch_size), "--width", str(config.width), "--lr", f"{config.learning_rate:g}",
             "--seed", str(config.seed), "--threads", str(config.threads)]
    parts += ["--depth", str(config.depth)] if config.depth != TrainConfig.depth else []
    parts += ["--dropout", f"{config.dropout:g}"] if config.dropout != TrainConfig.dropout else []
    parts += ["--loss", config.loss] if config.loss != "bce_dice" else []
    parts += ["--real-data", str(config.real_data)] if config.real_data else []
    parts += ["--init", str(config.init)] if config.init else []
    if config.augment:
        parts += ["--augment"] if config.augment == AUGMENTATIONS else ["--augment", ",".join(config.augment)]
    parts += ["--freeze-encoder"] if config.freeze_encoder else []
    parts += ["--edge-weight", f"{config.edge_weight:g}"] if config.edge_weight else []
    parts += ["--hard-pixels", f"{config.hard_fraction:g}"] if config.hard_fraction else []
    parts += ["--foramen-weight", f"{config.foramen_weight:g}"] if config.foramen_weight != 1.0 else []
    parts += ["--contrasts", ",".join(config.contrasts)] if config.contrasts != CONTRASTS else []
    parts += ["--average-from", str(config.average_from)] if config.average_from else []
    parts += ["--auxiliary", f"{config.auxiliary_weight:g}"] if config.auxiliary_weight else []
    parts += ["--noise-scale", f"{config.noise_scale:g}"] if config.noise_scale != 1.0 else []
    parts += ["--chord-weight", f"{config.chord_weight:g}"] if config.chord_weight else []
    parts += ["--mirror-weight", f"{config.mirror_weight:g}"] if config.mirror_weight else []
    parts += ["--precision", config.precision] if config.precision != TrainConfig.precision else []
    if config.batchnorm_batches != TrainConfig.batchnorm_batches:
        parts += ["--batchnorm-batches", str(config.batchnorm_batches)]
    return " ".join(parts)


def _randomisation_words(augment: tuple[str, ...]) -> str:
    if not augment:
        return ""
    return ", domain-randomised" + ("" if augment == AUGMENTATIONS else f" ({', '.join(augment)} only)")


def training_data(config: TrainConfig) -> str:
    """What the network is trained on, in words (for provenance)."""
    synthetic = ("synthetic (SpinalStenosisLib.synth" + _randomisation_words(config.augment)
                 + ("" if config.contrasts == CONTRASTS else f", contrasts {', '.join(config.contrasts)} only")
                 + ("" if config.noise_scale == 1.0 else f", noise level x {config.noise_scale:g}") + ")")
    if config.real_data is None:
        return f"{synthetic} only"
    return (f"{synthetic} and real labelled data from {config.real_data} "
            f"(real batches on {config.real_fraction:.0%} of the steps)")


def saved_network(model: CoUNet, config: TrainConfig) -> dict:
    """The network's configuration and weights as saved for inference: without auxiliary outputs."""
    outputs = OUT_CHANNELS[config.network]
    state = model.state_dict()
    for name in ("head.weight", "head.bias"):
        state[name] = state[name][:outputs].clone()
    return {"network": {**model.config, "out_channels": outputs}, "model": state}


def weights_record(model: CoUNet, config: TrainConfig, step: int, dice: list[float], validation_inputs: torch.Tensor,
                   revision: str) -> dict:
    """What a trained network's file holds: its weights, and what package-models needs to say what it is."""
    return {**saved_network(model, config), "step": step,
            "input_size": int(validation_inputs.shape[-1]),  # of the pairs it learnt on
            "validation_dice": dice, "training_command": command_line(config),
            "training_data": training_data(config), "code_revision": revision}


def checkpoint(model: CoUNet, optimiser, scheduler, step: int, best: float, average: WeightAverage,
               config: TrainConfig) -> dict:
    """What --resume needs to continue a run exactly where it stopped."""
    return {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
            "step": step, "best": best, "average": average.state(),
            "config": {**asdict(config), "out_dir": str(config.out_dir),
                       "real_data": str(config.real_data) if config.real_data else None,
                       "init": str(config.init) if config.init else None},
            "network": model.config}


def check_config(config: TrainConfig) -> None:
    """A ValueError naming the option when the configuration cannot be trained (checked before any work)."""
    if (config.edge_weight or config.hard_fraction or config.foramen_weight != 1.0) and config.loss != "bce_dice":
        raise ValueError("--edge-weight, --hard-pixels and --foramen-weight change the bce_dice loss, "
                         "not the paper's loss")
    if config.foramen_weight != 1.0 and (config.network != "canal" or config.foramen_weight <= 0):
        raise ValueError(f"--foramen-weight {config.foramen_weight:g}: expected a weight above 0, for the canal "
                         "network (the one with foramen channels)")
    if not 0.0 <= config.hard_fraction <= 1.0:
        raise ValueError(f"--hard-pixels {config.hard_fraction:g}: expected a fraction of the pixels, 0 to 1")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"--dropout {config.dropout:g}: expected the share of channels dropped, 0 to below 1")
    if config.average_from and not 0 < config.average_from <= config.steps:
        raise ValueError(f"--average-from {config.average_from}: expected a step from 1 to --steps {config.steps}")
    if config.average_from and not config.batchnorm_batches:
        raise ValueError("--average-from needs BatchNorm statistics recalibrated for the averaged weights "
                         "(--batchnorm-batches above 0)")
    if config.auxiliary_weight and config.network != "canal":
        raise ValueError("--auxiliary: only the canal network has auxiliary tissues to learn")
    if config.chord_weight and (config.network != "canal" or config.chord_weight < 0):
        raise ValueError(f"--chord-weight {config.chord_weight:g}: expected a weight above 0, for the canal network "
                         "(the one whose structures are measured)")
    if not config.contrasts or not set(config.contrasts) <= set(CONTRASTS):
        raise ValueError(f"--contrasts {','.join(config.contrasts)}: expected some of {', '.join(CONTRASTS)}")
    if config.noise_scale < 0:
        raise ValueError(f"--noise-scale {config.noise_scale:g}: expected a factor of 0 or more")
    if config.mirror_weight < 0:
        raise ValueError(f"--mirror-weight {config.mirror_weight:g}: expected a weight of 0 or more")
    if not set(config.augment) <= set(AUGMENTATIONS):
        raise ValueError(f"--augment {','.join(config.augment)}: expected some of {', '.join(AUGMENTATIONS)}")


def optimiser_and_scheduler(model: CoUNet, config: TrainConfig):
    """Adam over the trainable weights; a cosine-annealed rate, or a constant one when averaging weights."""
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                 weight_decay=1e-5)
    scheduler = (torch.optim.lr_scheduler.ConstantLR(optimiser, factor=1.0, total_iters=0) if config.average_from
                 else torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps, eta_min=1e-5))
    return optimiser, scheduler


def training_step(model: CoUNet, config: TrainConfig, optimiser, scheduler, real: RealPairs | None, step: int,
                  forward_dtype: torch.dtype) -> float:
    """One optimiser step on step's batch (deterministic per step, so that a resumed run continues exactly); its
    loss."""
    rng = np.random.default_rng([config.seed, step])
    inputs, targets, channels = training_batch(config, real, rng)
    if config.mirror_weight:
        inputs, targets = with_mirrors(config.network, inputs, targets)
    training_mode(model, config)
    # no autocast at all in float32: PyTorch 2.0 refuses a float32 autocast dtype even when disabled
    with torch.autocast("cpu", dtype=forward_dtype) if forward_dtype != torch.float32 else contextlib.nullcontext():
        logits = model(inputs)
    loss = step_loss(config, logits.float(), targets, channels)
    if config.mirror_weight:
        loss = loss + config.mirror_weight * mirror_disagreement(logits.float(), config.network)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    scheduler.step()
    return loss.item()


def train(config: TrainConfig, progress: Callable[[str], None] | None = None) -> Path:
    """Run (or resume) training; writes checkpoint.pt, best.pt and log.csv into out_dir, and averaged.pt when
    averaging weights (config.average_from). progress: told each validation's line of the log, in words."""
    check_config(config)
    forward_dtype = network_dtype(config.precision)
    revision = git_revision()  # the code that generates the training data is the code loaded now
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = initial_model(config)
    step, best = 0, -1.0
    optimiser, scheduler = optimiser_and_scheduler(model, config)
    average = WeightAverage()
    checkpoint_path = out / "checkpoint.pt"
    if config.resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        step, best = state["step"], state["best"]
        average = WeightAverage(state.get("average"))
    real = RealPairs(config.real_data, config.network) if config.real_data else None
    validation_inputs, validation_targets = validation_set(config.network, config.contrasts, config.noise_scale)
    log_path = out / "log.csv"
    new_log = not (config.resume and log_path.exists())
    with open(log_path, "w" if new_log else "a", newline="", encoding="utf-8") as handle:
        log = csv.writer(handle)
        if new_log:
            log.writerow(["step", "seconds", "learning_rate", "train_loss", "validation_loss", "validation_dice"])
        started, running = time.time(), []
        while step < config.steps:
            running.append(training_step(model, config, optimiser, scheduler, real, step, forward_dtype))
            step += 1
            if config.average_from and step >= config.average_from:
                average.update(model)
            if step % config.validate_every == 0 or step == config.steps:
                validation_loss, dice = validate(model, validation_inputs, validation_targets)
                train_loss, dice_text = float(np.mean(running)), " ".join(f"{d:.4f}" for d in dice)
                log.writerow([step, round(time.time() - started, 1), scheduler.get_last_lr()[0],
                              round(train_loss, 5), round(validation_loss, 5), dice_text])
                handle.flush()
                running = []
                score = float(np.mean(dice))
                if progress is not None:
                    progress(f"step {step} of {config.steps}: training loss {train_loss:.5f}, validation loss "
                             f"{validation_loss:.5f}, validation Dice {dice_text}"
                             + (" (the best so far: best.pt)" if score > best else ""))
                if score > best:
                    best = score
                    torch.save(weights_record(model, config, step, dice, validation_inputs, revision), out / "best.pt")
                torch.save(checkpoint(model, optimiser, scheduler, step, best, average, config), checkpoint_path)
    if config.batchnorm_batches and (out / "best.pt").exists():
        recalibrate_best(out / "best.pt", config, real, validation_inputs, validation_targets)
    if average.count:
        averaged = average.averaged(model)
        record = {**weights_record(averaged, config, step, [], validation_inputs, revision),
                  "averaged_steps": f"{config.average_from}-{step} ({average.count} steps)"}
        torch.save(recalibrated(record, averaged, config, real, validation_inputs, validation_targets),
                   out / "averaged.pt")
    (out / "training.json").write_text(json.dumps({
        "network": config.network, "steps": config.steps, "engine_version": __version__,
        "code_revision": revision, "best_mean_validation_dice": best}, indent=1), encoding="utf-8")
    return out / "best.pt"
