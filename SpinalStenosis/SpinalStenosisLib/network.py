"""CoU-Net: a U-Net whose input and every resolution level get x, y and radius coordinate channels."""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def mirrored(maps: torch.Tensor, channel_order: list[int] | tuple[int, ...]) -> torch.Tensor:
    """Per-pixel maps [N, C, H, W] as on the left-right mirrored images: flipped, each channel taken from
    channel_order (a side-specific channel from the other side's)."""
    return maps.flip(-1)[:, list(channel_order)]


def coordinate_channels(like: torch.Tensor) -> torch.Tensor:
    """x, y in [-1, 1] and the radius from the centre (scaled to [0, 1]) for a batch shaped like ``like``."""
    n, _, h, w = like.shape
    y = torch.linspace(-1.0, 1.0, h, device=like.device, dtype=like.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
    x = torch.linspace(-1.0, 1.0, w, device=like.device, dtype=like.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
    radius = torch.sqrt(x * x + y * y) / 2 ** 0.5
    return torch.cat([x, y, radius], dim=1)


def level_widths(width: int, depth: int) -> list[int]:
    """Channels of a CoU-Net's blocks at each resolution level, from the full-resolution one to the deepest."""
    return [width * 2 ** level for level in range(depth + 1)]


class CoordBlock(nn.Module):
    """(coordinates + conv3x3 + BatchNorm + ReLU) twice, then Dropout2d."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels + 3, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """inputs: the previous level's output (a decoder also gets the encoder's skip), concatenated."""
        x = F.relu(self.norm1(self.conv1(torch.cat([*inputs, coordinate_channels(inputs[0])], dim=1))))
        x = F.relu(self.norm2(self.conv2(x)))
        return self.dropout(x)


class CoUNet(nn.Module):
    """Encoder widths ``width * 2**level`` for ``depth`` poolings; sigmoid outputs."""

    def __init__(self, out_channels: int, width: int = 16, depth: int = 3, dropout: float = 0.1):
        super().__init__()
        widths = level_widths(width, depth)
        self.encoders = nn.ModuleList()
        previous = 1
        for w in widths:
            self.encoders.append(CoordBlock(previous, w, dropout))
            previous = w
        self.decoders = nn.ModuleList(CoordBlock(widths[level + 1] + widths[level], widths[level], dropout)
                                      for level in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.config = {"out_channels": out_channels, "width": width, "depth": depth, "dropout": dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; apply sigmoid for probabilities."""
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(x, skip)
        return self.head(x)


def saved_width(state: dict[str, torch.Tensor]) -> int:
    """The width (first-level channels) of the CoU-Net these weights belong to."""
    return state["encoders.0.conv2.weight"].shape[0]


def widened(state: dict[str, torch.Tensor], model: CoUNet) -> dict[str, torch.Tensor]:
    """Weights of a CoU-Net of model's depth, no wider and with no more outputs, laid into model's own initial
    weights so that model computes the same function on those outputs (Net2Net-style growth): each old channel
    keeps its place within its block of channels, the new channels start from model's own initialisation, and every
    old channel ignores the new ones (zero weights), so training can put the added width to use from where the
    narrow network left off. Outputs beyond the saved ones (auxiliary outputs) also start from model's own."""
    old_width = saved_width(state)
    new_state = {name: value.clone() for name, value in model.state_dict().items()}
    new_widths = level_widths(model.config["width"], model.config["depth"])
    old_widths = level_widths(old_width, model.config["depth"])

    def blocks(levels: list[int], coordinates: bool) -> tuple[list[int], list[int]]:
        """Old channel positions → new ones, and the new ones no old channel maps to, for blocks of channels at
        these levels (1 for the image), then the three coordinate channels."""
        old_sizes = [1 if level < 0 else old_widths[level] for level in levels] + [3] * coordinates
        new_sizes = [1 if level < 0 else new_widths[level] for level in levels] + [3] * coordinates
        mapping = [new_start + n for old_size, new_start in zip(old_sizes, np.cumsum([0, *new_sizes[:-1]]))
                   for n in range(old_size)]
        return mapping, sorted(set(range(sum(new_sizes))) - set(mapping))

    def lay(name: str, outputs: list[int], inputs: tuple[list[int], list[int]] | None = None) -> None:
        target, value = new_state[name], state[name].float()
        if inputs is None:  # per-channel vectors: BatchNorm, biases
            target[outputs] = value
            return
        mapping, added = inputs
        target[np.ix_(outputs, mapping)] = value
        target[np.ix_(outputs, added)] = 0.0  # old channels ignore the new ones

    depth = model.config["depth"]
    decoder_levels = list(reversed(range(depth)))
    for prefix, out_level, in_levels in (
            [(f"encoders.{level}", level, [level - 1]) for level in range(depth + 1)]
            + [(f"decoders.{n}", level, [level + 1, level]) for n, level in enumerate(decoder_levels)]):
        outputs = list(range(old_widths[out_level]))
        lay(f"{prefix}.conv1.weight", outputs, blocks(in_levels, coordinates=True))
        lay(f"{prefix}.conv2.weight", outputs, blocks([out_level], coordinates=False))
        for norm in ("norm1", "norm2"):
            for field in ("weight", "bias", "running_mean", "running_var"):
                lay(f"{prefix}.{norm}.{field}", outputs)
    head_outputs = list(range(len(state["head.bias"])))
    lay("head.weight", head_outputs, blocks([0], coordinates=False))
    lay("head.bias", head_outputs)
    return new_state


def saved_depth(state: dict[str, torch.Tensor]) -> int:
    """The depth (poolings) of the CoU-Net these weights belong to."""
    return sum(name.startswith("encoders.") and name.endswith(".conv1.weight") for name in state) - 1


def deepened(state: dict[str, torch.Tensor], model: CoUNet, deepest_mean: torch.Tensor,
             deepest_var: torch.Tensor) -> dict[str, torch.Tensor]:
    """Weights of a shallower CoU-Net of model's width laid into model's own initial weights so that model, in eval
    mode, computes the same function (Net2Net-style deepening): the old blocks keep their weights; the decoder at the
    old deepest level passes that level's encoder output through unchanged (identity convolutions, BatchNorm set to
    undo itself for features of the given per-channel mean and variance, so that it is about the identity in training
    too) and ignores the deeper levels (zero weights), which start from model's own initialisation and so add context
    that training can put to use."""
    old_depth = saved_depth(state)
    extra = model.config["depth"] - old_depth
    new_state = {name: value.clone() for name, value in model.state_dict().items()}
    for name, value in state.items():
        if name.startswith("decoders."):
            _, index, rest = name.split(".", 2)
            name = f"decoders.{int(index) + extra}.{rest}"
        new_state[name] = value.clone()
    prefix = f"decoders.{extra - 1}"  # the decoder at the old deepest level
    *_, old_deepest, below = level_widths(model.config["width"], old_depth + 1)  # below: the level under it
    channels = torch.arange(old_deepest)
    for conv, skip_start in (("conv1", below), ("conv2", 0)):  # conv1's input: the level below's channels first
        weight = torch.zeros_like(new_state[f"{prefix}.{conv}.weight"])
        weight[channels, skip_start + channels, 1, 1] = 1.0
        new_state[f"{prefix}.{conv}.weight"] = weight
    eps = model.decoders[extra - 1].norm1.eps
    for norm in ("norm1", "norm2"):
        new_state[f"{prefix}.{norm}.running_mean"] = deepest_mean.clone()
        new_state[f"{prefix}.{norm}.running_var"] = deepest_var.clone()
        new_state[f"{prefix}.{norm}.weight"] = torch.sqrt(deepest_var + eps)
        new_state[f"{prefix}.{norm}.bias"] = deepest_mean.clone()
    return new_state


class InferenceBlock(nn.Module):
    """A CoordBlock in eval mode, computed faster: BatchNorm folded into the convolutions; the first convolution
    split by input (the previous level's output, a decoder's skip, the coordinates) and its terms summed, so that
    nothing is concatenated; the coordinates' term (it does not depend on the image) computed once per input size."""

    def __init__(self, block: CoordBlock, input_channels: list[int]):
        super().__init__()
        weight, bias = _folded(block.conv1, block.norm1)
        *parts, coordinates = torch.split(weight, [*input_channels, 3], dim=1)  # the inputs' order, coordinates last
        self.input_weights = nn.ParameterList(nn.Parameter(w.contiguous(), requires_grad=False) for w in parts)
        self.coordinate_weight = nn.Parameter(coordinates.contiguous(), requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.conv2 = _conv(*_folded(block.conv2, block.norm2))
        self._coordinate_terms: dict[tuple, torch.Tensor] = {}

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        key = (*inputs[0].shape[-2:], inputs[0].dtype, inputs[0].device)
        if key not in self._coordinate_terms:
            self._coordinate_terms[key] = F.conv2d(coordinate_channels(inputs[0][:1]), self.coordinate_weight,
                                                   self.bias, padding=1)
        x = F.conv2d(inputs[0], self.input_weights[0], padding=1)
        for other, weight in zip(inputs[1:], self.input_weights[1:]):
            x.add_(F.conv2d(other, weight, padding=1))
        return F.relu_(self.conv2(F.relu_(x.add_(self._coordinate_terms[key]))))  # in place: no copy to allocate


def for_inference(model: CoUNet) -> CoUNet:
    """An equivalent copy of a CoU-Net for inference only: InferenceBlocks, channels-last memory (faster
    convolutions on the CPU)."""
    fast = copy.deepcopy(model).eval()
    widths = level_widths(model.config["width"], model.config["depth"])
    for level, block in enumerate(fast.encoders):
        fast.encoders[level] = InferenceBlock(block, [widths[level - 1] if level else 1])
    for n, (block, level) in enumerate(zip(fast.decoders, reversed(range(model.config["depth"])))):
        fast.decoders[n] = InferenceBlock(block, [widths[level + 1], widths[level]])
    return fast.to(memory_format=torch.channels_last).requires_grad_(False)


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a bias-free convolution followed by BatchNorm with its running statistics."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return (conv.weight * scale[:, None, None, None]).detach(), (norm.bias - norm.running_mean * scale).detach()


def _conv(weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[-1], padding=weight.shape[-1] // 2)
    conv.weight.data, conv.bias.data = weight.clone(), bias.clone()
    return conv


def edge_weights(target: torch.Tensor, edge_weight: float, radius_px: int = 2) -> torch.Tensor:
    """1 everywhere, 1 + edge_weight within radius_px pixels of a channel's edge (where its target is not constant
    over the neighbourhood): the pixels that decide where a mask's boundary, and so a diameter, ends."""
    size = 2 * radius_px + 1
    highest = F.max_pool2d(target, size, stride=1, padding=radius_px)
    lowest = -F.max_pool2d(-target, size, stride=1, padding=radius_px)
    return 1.0 + edge_weight * (highest - lowest > 1e-3).to(target.dtype)


def hard_pixel_loss(pixel_bce: torch.Tensor, target: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean, over the images, of the mean KL divergence (the per-pixel BCE less the soft target's own entropy, so
    that a partial-volume pixel predicted right costs nothing) over each image's hardest fraction of pixels and
    channels: online hard-pixel mining, which weighs the few confidently wrong pixels that move a ruler's end."""
    divergence = (pixel_bce - F.binary_cross_entropy(target, target, reduction="none")).flatten(1)
    count = max(1, round(fraction * divergence.shape[1]))
    return divergence.topk(count, dim=1).values.mean()


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, edge_weight: float = 0.0,
                  hard_fraction: float = 0.0, channel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy plus (1 - soft Dice) per channel, averaged. Empty target channels only count BCE.
    With edge_weight > 0 the BCE is a weighted mean that counts pixels near an edge 1 + edge_weight times; with
    hard_fraction > 0 the hard_pixel_loss of that fraction is added; channel_weights (one per channel) count each
    channel's pixels and Dice that many times in the means."""
    pixel_bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if edge_weight or channel_weights is not None:
        weights = edge_weights(target, edge_weight) if edge_weight else torch.ones_like(target)
        if channel_weights is not None:
            weights = weights * channel_weights.view(1, -1, 1, 1)
        bce = (pixel_bce * weights).sum() / weights.sum()
    else:
        bce = pixel_bce.mean()
    if hard_fraction:
        bce = bce + hard_pixel_loss(pixel_bce, target, hard_fraction)
    probabilities = torch.sigmoid(logits)
    dims = (0, 2, 3)
    intersection = (probabilities * target).sum(dims)
    total = probabilities.sum(dims) + target.sum(dims)
    dice = (2 * intersection + 1.0) / (total + 1.0)
    if channel_weights is None:
        return bce + (1.0 - dice).mean()
    return bce + ((1.0 - dice) * channel_weights).sum() / channel_weights.sum()


def chord_loss(probabilities: torch.Tensor, target: torch.Tensor, directions: int = 8,
               scale_px: float = 2.5) -> torch.Tensor:
    """Smooth-L1 error, in units of scale_px pixels (about 1 mm on a network-2 crop), of the soft chord lengths
    through the target's centroid along ``directions`` evenly spread directions ([B, H, W] probabilities and
    target): what a structure's rulers measure (the canal's AP and transverse), at whatever angle the slice lies.
    The few pixels at their ends decide them, and BCE or Dice barely count those. Images with an empty target count
    nothing."""
    mass = target.sum((1, 2))
    present = mass > 0.5
    if not present.any():
        return probabilities.sum() * 0.0
    probabilities, target, mass = probabilities[present], target[present], mass[present]
    height, width = target.shape[1:]
    rows = torch.arange(height, dtype=target.dtype)
    columns = torch.arange(width, dtype=target.dtype)
    centre_row = (target.sum(2) * rows).sum(1) / mass
    centre_column = (target.sum(1) * columns).sum(1) / mass
    angles = torch.arange(directions, dtype=target.dtype) * math.pi / directions
    steps = torch.arange(-max(height, width), max(height, width) + 0.25, 0.5, dtype=target.dtype)
    along_rows = angles.sin()[None, :, None] * steps  # [1, K, N] pixels
    along_columns = angles.cos()[None, :, None] * steps
    x = (2 * (centre_column[:, None, None] + along_columns) + 1) / width - 1  # grid_sample, align_corners=False
    y = (2 * (centre_row[:, None, None] + along_rows) + 1) / height - 1
    sampled = F.grid_sample(torch.stack([probabilities, target], 1), torch.stack([x, y], -1), align_corners=False)
    lengths_px = sampled.sum(-1) * 0.5  # [B, 2, K]
    return F.smooth_l1_loss(lengths_px[:, 0] / scale_px, lengths_px[:, 1] / scale_px, beta=0.4)


def paper_loss(logits: torch.Tensor, target: torch.Tensor, weight: float = 1e-4, eps: float = 1e-5) -> torch.Tensor:
    """The seed paper's loss: MSE - λ·Dice (λ = 1e-4, ε = 1e-5)."""
    probabilities = torch.sigmoid(logits)
    dice = 2 * ((probabilities * target).sum() + eps) / (probabilities.sum() + target.sum() + eps)
    return F.mse_loss(probabilities, target) - weight * dice
