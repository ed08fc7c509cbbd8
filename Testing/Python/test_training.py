"""Training: checkpoints, resume, log; real labelled data (NIfTI pairs, Lumbar Spine MRI PNGs) for fine-tuning."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import rewrite_labels, trained_like, write_canal_only

from SpinalStenosisLib.crop import normalise
from SpinalStenosisLib.network import (CoUNet, chord_loss, coordinate_channels, deepened, dice_bce_loss,
                                       edge_weights, hard_pixel_loss, paper_loss, saved_depth, widened)
from SpinalStenosisLib.real_data import PNG_THECAL_SAC, RealPairs
from SpinalStenosisLib.synth.augment import AUGMENTATIONS, domain_randomised
from SpinalStenosisLib.synth.dataset import write_dataset
from SpinalStenosisLib.training import (RECALIBRATION_SEED, TrainConfig, WeightAverage, blend, blended_weights,
                                       command_line, initial_model, mirror_disagreement, mirrored_maps,
                                       recalibrate_batchnorm, step_loss, train, training_batch, with_mirrors)
from SpinalStenosisLib.visibility import networks_view


def test_training_writes_checkpoints_and_resumes(tmp_path):
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=2, batch_size=2, width=4,
                         validate_every=1, threads=1, batchnorm_batches=1)
    train(config)
    log = list(csv.DictReader(open(tmp_path / "run" / "log.csv", encoding="utf-8")))
    assert [row["step"] for row in log] == ["1", "2"] and len(log[0]["validation_dice"].split()) == 3
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 2
    config.steps, config.resume = 3, True
    train(config)
    log = list(csv.DictReader(open(tmp_path / "run" / "log.csv", encoding="utf-8")))
    assert [row["step"] for row in log] == ["1", "2", "3"]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert set(best) >= {"network", "model", "validation_dice"}


def test_training_can_start_from_given_weights(tmp_path):
    first = TrainConfig(network="roi", out_dir=tmp_path / "a", steps=1, batch_size=1, width=4, validate_every=1,
                        threads=1, batchnorm_batches=1)
    train(first)
    weights = torch.load(tmp_path / "a" / "best.pt", weights_only=False)["model"]
    second = TrainConfig(network="roi", out_dir=tmp_path / "b", steps=1, batch_size=1, width=4, validate_every=1,
                         threads=1, batchnorm_batches=1, learning_rate=0.0, init=tmp_path / "a" / "best.pt")
    train(second)
    resumed = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    conv = "encoders.0.conv1.weight"
    assert torch.equal(resumed[conv], weights[conv])  # zero learning rate: the given weights are kept


def test_a_frozen_encoder_keeps_its_weights_and_statistics_while_the_decoder_learns(tmp_path):
    start = trained_like(CoUNet(3, width=4))
    torch.save(start.state_dict(), tmp_path / "start.pt")
    train(TrainConfig(network="canal", out_dir=tmp_path / "run", steps=2, batch_size=2, width=4, validate_every=2,
                      threads=1, batchnorm_batches=1, learning_rate=1e-2, init=tmp_path / "start.pt",
                      freeze_encoder=True))
    tuned = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    before = start.state_dict()
    for name in ("encoders.0.conv1.weight", "encoders.3.norm2.running_mean", "encoders.2.norm1.bias"):
        assert torch.equal(tuned[name], before[name])
    for name in ("decoders.2.conv1.weight", "decoders.0.norm1.running_mean", "head.weight"):
        assert not torch.equal(tuned[name], before[name])
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]  # statistics recalibrated at the end
    assert torch.equal(best["encoders.3.norm2.running_mean"], before["encoders.3.norm2.running_mean"])
    assert not torch.equal(best["decoders.0.norm1.running_mean"], tuned["decoders.0.norm1.running_mean"])


def test_batchnorm_statistics_are_recalibrated_to_the_plain_average_over_fresh_batches():
    config = TrainConfig(network="canal", out_dir=Path("unused"), batch_size=2, width=4, batchnorm_batches=3)
    model = trained_like(CoUNet(3, width=4))
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "batches" not in k}
    recalibrate_batchnorm(model, config, None)
    rng = np.random.default_rng(RECALIBRATION_SEED)
    first = model.encoders[0]
    with torch.no_grad():
        batch_means = []
        for _ in range(3):
            inputs = training_batch(config, None, rng)[0]
            batch_means.append(first.conv1(torch.cat([inputs, coordinate_channels(inputs)], 1)).mean((0, 2, 3)))
    assert torch.allclose(first.norm1.running_mean, torch.stack(batch_means).mean(0), atol=1e-5)
    assert first.norm1.momentum == 0.1 and not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())  # only the statistics changed


def test_a_narrower_network_grows_to_the_training_width_computing_the_same_function(tmp_path):
    narrow = trained_like(CoUNet(3, width=4))
    wide = CoUNet(3, width=6)
    wide.load_state_dict(widened(narrow.state_dict(), wide))
    inputs = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(wide.eval()(inputs), narrow(inputs), atol=1e-5)
    torch.save(narrow.state_dict(), tmp_path / "narrow.pt")
    train(TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=6, validate_every=1,
                      threads=1, batchnorm_batches=1, learning_rate=0.0, init=tmp_path / "narrow.pt"))
    grown = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    assert grown["encoders.1.conv2.weight"].shape == (12, 12, 3, 3)
    assert torch.equal(grown["encoders.1.conv2.weight"][:8, :8], narrow.state_dict()["encoders.1.conv2.weight"])


def test_a_shallower_network_deepens_to_the_training_depth_computing_the_same_function(tmp_path):
    shallow = trained_like(CoUNet(3, width=4, depth=2))
    features = torch.rand(16, 10)
    deep = CoUNet(3, width=4, depth=4)
    state = deepened(shallow.state_dict(), deep, features.mean(1), features.var(1))
    deep.load_state_dict(state)
    assert saved_depth(state) == 4 and saved_depth(shallow.state_dict()) == 2
    inputs = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(deep.eval()(inputs), shallow(inputs), atol=1e-5)
    torch.save(shallow.state_dict(), tmp_path / "shallow.pt")
    train(TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=6, depth=4,
                      validate_every=1, threads=1, batchnorm_batches=1, learning_rate=0.0,
                      init=tmp_path / "shallow.pt"))
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["network"]["depth"] == 4 and "--depth 4" in best["training_command"]  # widened, then deepened
    old_level_0 = shallow.state_dict()["decoders.1.conv2.weight"]
    assert torch.equal(best["model"]["decoders.3.conv2.weight"][:4, :4], old_level_0)
    with pytest.raises(ValueError, match="--depth 1"):
        initial_model(TrainConfig(network="canal", out_dir=tmp_path, width=4, depth=1, init=tmp_path / "shallow.pt"))


def test_real_nifti_pairs_become_network_pairs(tmp_path):
    write_dataset(tmp_path / "labelled", count=3, seed=2, region="lumbar", gallery_real=None)
    for network, channels in (("canal", 3), ("roi", 1)):
        inputs, targets, known = RealPairs(tmp_path / "labelled", network).batch(np.random.default_rng(0), 4)
        assert inputs.shape == (4, 1, 128, 128) and targets.shape == (4, channels, 128, 128)
        assert known == slice(None) and float(targets.max()) == 1.0


def test_nifti_labels_of_the_canal_only_train_the_canal_channel_only(tmp_path):
    write_dataset(tmp_path / "labelled", count=3, seed=2, region="lumbar", gallery_real=None)
    for path in (tmp_path / "labelled").glob("*_labels.nii.gz"):
        write_canal_only(path, path)
    pairs = RealPairs(tmp_path / "labelled", "canal")
    assert len(pairs.slices) == 3 and not any(has_foramina for *_, has_foramina in pairs.slices)
    assert pairs.batch(np.random.default_rng(0), 4)[2] == slice(1, 2)


def test_a_folder_mixing_labels_of_the_canal_only_with_labelled_foramina_trains_each_as_labelled(tmp_path):
    """A batch of one kind only: the canal-only slices would otherwise teach their foramina absent (labels read as a
    folder), or keep the foramen channels from learning from any batch that holds one (as a batch)."""
    write_dataset(tmp_path / "labelled", count=4, seed=2, region="lumbar", gallery_real=None)
    canal_only = sorted((tmp_path / "labelled").glob("*_labels.nii.gz"))[:2]
    for path in canal_only:
        write_canal_only(path, path)
    pairs = RealPairs(tmp_path / "labelled", "canal")
    assert [has_foramina for *_, has_foramina in pairs.slices] == [False, False, True, True]
    rng, kinds = np.random.default_rng(0), set()
    for _ in range(20):
        _, targets, known = pairs.batch(rng, 2)
        kinds.add(known == slice(None))
        if known == slice(1, 2):
            assert float(targets[:, [0, 2]].max()) == 0.0  # a canal-only image's crops: no foramen to learn
    assert kinds == {True, False}


def with_spikes(voxels: np.ndarray) -> np.ndarray:
    """One pixel in 500 at ten times the image's brightest (spike noise)."""
    return np.where(np.random.default_rng(0).random(voxels.shape) < 0.002, 10 * voxels.max(), voxels)


@pytest.mark.parametrize("shown, within", [(lambda v: (v - v.mean()) / v.std(), 1e-4), (with_spikes, 0.2)],
                         ids=["normalised to zero mean", "with spikes"])
def test_real_images_shown_differently_become_the_pairs_their_acquired_images_do(tmp_path, shown, within):
    write_dataset(tmp_path / "acquired", count=2, seed=2, region="lumbar", gallery_real=None)
    (tmp_path / "shown").mkdir()
    for path in (tmp_path / "acquired").glob("*.nii.gz"):
        image = sitk.ReadImage(str(path), sitk.sitkFloat32)
        if path.name.endswith("_image.nii.gz"):
            voxels = sitk.GetArrayFromImage(image)
            voxels[voxels < np.percentile(voxels, 5.0)] = 0.0  # air at 0, as where a scanner zeroes it
            for folder, values in (("acquired", voxels), ("shown", shown(voxels))):
                written = sitk.GetImageFromArray(values)
                written.CopyInformation(image)
                sitk.WriteImage(written, str(tmp_path / folder / path.name))
        else:
            sitk.WriteImage(image, str(tmp_path / "shown" / path.name))
    acquired, seen = (RealPairs(tmp_path / folder, "canal").batch(np.random.default_rng(0), 4)[0]
                      for folder in ("acquired", "shown"))
    assert torch.allclose(seen, acquired, atol=within)


def test_a_run_with_real_labelled_data_says_so_in_its_best_weights(tmp_path):
    write_dataset(tmp_path / "labelled", count=2, seed=3, region="lumbar", gallery_real=None)
    best = train(TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                             validate_every=1, threads=1, batchnorm_batches=1, real_data=tmp_path / "labelled"))
    provenance = torch.load(best, weights_only=True)
    assert f"--real-data {tmp_path / 'labelled'}" in provenance["training_command"]
    assert provenance["training_data"] == (f"synthetic (SpinalStenosisLib.synth) and real labelled data from "
                                           f"{tmp_path / 'labelled'} (real batches on 25% of the steps)")


@pytest.mark.parametrize("network, labels", [("canal", "nifti"), ("roi", "nifti"), ("canal", "png")])
def test_both_networks_train_on_real_labelled_batches(tmp_path, network, labels):
    if labels == "nifti":
        write_dataset(tmp_path / "labelled", count=2, seed=3, region="lumbar", gallery_real=None)
    else:  # the Lumbar Spine MRI PNGs label the canal only: the step's loss is on that channel
        (tmp_path / "labelled").mkdir()
        label = np.zeros((128, 128), np.uint8)
        label[60:72, 50:78] = PNG_THECAL_SAC
        image = np.where(label > 0, 240, 80).astype(np.uint8)
        for name, array in (("case1_label.png", label), ("case1_image.png", image)):
            sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "labelled" / name))
    config = TrainConfig(network=network, out_dir=tmp_path / "run", steps=2, batch_size=1, width=4, validate_every=2,
                         threads=1, batchnorm_batches=0, real_data=tmp_path / "labelled", real_fraction=1.0)
    assert training_batch(config, RealPairs(config.real_data, network), np.random.default_rng(0))[0].shape[0] == 1
    train(config)
    with open(tmp_path / "run" / "log.csv", encoding="utf-8") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["step"] == "2" and math.isfinite(float(row["train_loss"]))


def test_lumbar_spine_mri_pngs_train_the_canal_channel_only(tmp_path):
    labels = np.zeros((320, 320), np.uint8)
    labels[150:170, 140:180] = PNG_THECAL_SAC
    labels[100:140, 120:200] = 50  # disc
    image = np.random.default_rng(0).integers(0, 255, (320, 320)).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(tmp_path / "case1_label.png"))
    sitk.WriteImage(sitk.GetImageFromArray(image), str(tmp_path / "case1_image.png"))
    pairs = RealPairs(tmp_path, "canal")
    [(slice_image, onehot, grid, has_foramina)] = pairs.slices
    assert np.array_equal(slice_image, networks_view(image.astype(np.float32), 0.0))  # as measure would see it
    assert np.array_equal(onehot[1] == 1, labels == PNG_THECAL_SAC)
    assert np.allclose(grid.row_step_ras, [0.0, -0.6875, 0.0]) and np.allclose(grid.column_step_ras, [-0.6875, 0, 0])
    inputs, targets, known = pairs.batch(np.random.default_rng(1), 2)
    assert known == slice(1, 2) and not has_foramina
    assert float(targets[:, 1].max()) == 1.0 and float(targets[:, [0, 2]].max()) == 0.0
    from PIL import Image

    for name, pixels in (("case2_label.png", labels), ("case2_image.png", image)):  # both to be turned for display
        picture = Image.fromarray(np.rot90(pixels, 1))
        exif = picture.getexif()
        exif[0x0112] = 6
        picture.save(tmp_path / name, exif=exif)
    first, second = RealPairs(tmp_path, "canal").slices
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_a_colour_composite_trains_on_each_of_its_distinct_channels(tmp_path):
    labels = np.zeros((64, 64), np.uint8)
    labels[25:40, 20:44] = PNG_THECAL_SAC
    t2 = np.where(labels > 0, 240, 60).astype(np.uint8)  # CSF bright on T2, dark on T1
    t1 = np.where(labels > 0, 30, 150).astype(np.uint8)
    t1[:4], t2[:4] = 0, 0  # air behind the back, as in MR: no offset to take off
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(tmp_path / "case1_label.png"))
    sitk.WriteImage(sitk.Compose([sitk.GetImageFromArray(c) for c in (t1, t2, t2)]), str(tmp_path / "case1_image.png"))
    images = [image for image, onehot, _, _ in RealPairs(tmp_path, "canal").slices]
    assert len(images) == 2 and np.array_equal(images[0], t1) and np.array_equal(images[1], t2)


def test_labels_without_a_canal_are_refused_with_a_reason(tmp_path):
    write_dataset(tmp_path, count=1, seed=2, region="lumbar", gallery_real=None)
    [path] = tmp_path.glob("*_labels.nii.gz")
    rewrite_labels(path, path, np.zeros_like)  # a label file left empty
    with pytest.raises(ValueError, match="no slice of its labels has a canal"):
        RealPairs(tmp_path, "canal")


def test_the_shared_validation_images_are_refused_for_training(tmp_path):
    folder = tmp_path / "shared" / "eval" / "real"
    folder.mkdir(parents=True)
    with pytest.raises(ValueError, match="validation only"):
        RealPairs(folder, "canal")


def test_edge_weights_mark_the_pixels_within_two_of_a_masks_edge():
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 3:13, 3:13] = 1.0
    target[0, 0, 2, 3:13] = 0.4  # a partial-volume row is part of the edge
    weights = edge_weights(target, 3.0)[0, 0].numpy()
    values = target[0, 0].numpy()
    for row in range(16):
        for column in range(16):
            around = values[max(row - 2, 0):row + 3, max(column - 2, 0):column + 3]
            assert weights[row, column] == (4.0 if around.max() > around.min() else 1.0)
    assert weights[7, 7] == 1.0 and weights[0, 0] == 1.0 and weights[2, 7] == 4.0 and weights[4, 7] == 4.0
    assert torch.equal(edge_weights(torch.ones(1, 1, 6, 6), 3.0), torch.ones(1, 1, 6, 6))  # no edge, no weight


def pixel_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")


def test_the_edge_weighted_loss_is_the_weighted_mean_bce_plus_dice_and_plain_without_weight():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 16, 16), (torch.rand(2, 3, 16, 16) > 0.7).float()
    assert torch.equal(dice_bce_loss(logits, target, 0.0), dice_bce_loss(logits, target))
    weights = edge_weights(target, 2.0)
    bce = pixel_bce(logits, target)
    plain_bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    expected = dice_bce_loss(logits, target) - plain_bce + (bce * weights).sum() / weights.sum()
    assert torch.allclose(dice_bce_loss(logits, target, 2.0), expected)


def test_channel_weights_count_a_channels_pixels_and_dice_that_many_times():
    torch.manual_seed(1)
    logits, target = torch.randn(2, 3, 16, 16), (torch.rand(2, 3, 16, 16) > 0.7).float()
    assert torch.allclose(dice_bce_loss(logits, target, channel_weights=torch.ones(3)), dice_bce_loss(logits, target))
    channel_weights = torch.tensor([3.0, 1.0, 3.0])
    per_channel = [dice_bce_loss(logits[:, [c]], target[:, [c]]) for c in range(3)]
    expected = sum(w * loss for w, loss in zip(channel_weights, per_channel)) / channel_weights.sum()
    assert torch.allclose(dice_bce_loss(logits, target, channel_weights=channel_weights), expected)
    config = TrainConfig(network="canal", out_dir=Path("unused"), foramen_weight=3.0)  # left foramen, canal, right
    assert torch.allclose(step_loss(config, logits, target, slice(None)), expected)
    assert torch.allclose(step_loss(config, logits, target, slice(1, 2)), per_channel[1])  # canal-only labels


@pytest.mark.parametrize("option, recorded", [({"edge_weight": 4.0}, "--edge-weight 4"),
                                              ({"hard_fraction": 0.02}, "--hard-pixels 0.02"),
                                              ({"foramen_weight": 3.0}, "--foramen-weight 3")])
def test_a_bce_option_is_recorded_in_the_training_command_and_refused_with_the_papers_loss(tmp_path, option,
                                                                                          recorded):
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                         validate_every=1, threads=1, batchnorm_batches=1, **option)
    best = torch.load(train(config), weights_only=False)
    assert recorded in best["training_command"]
    with pytest.raises(ValueError, match="bce_dice"):
        train(TrainConfig(network="canal", out_dir=tmp_path / "paper", steps=1, batch_size=1, width=4, threads=1,
                          loss="paper", **option))


def test_the_papers_loss_is_its_mse_less_a_ten_thousandth_of_its_dice_and_trains(tmp_path):
    target = torch.zeros(1, 3, 8, 8)
    target[:, 1, 2:6, 2:6] = 1.0
    sure = 40.0 * (2 * target - 1)  # logits: right, and sure of it
    assert float(paper_loss(sure, target)) == pytest.approx(-1e-4, abs=1e-9)  # MSE 0, Dice 1
    assert float(paper_loss(-sure, target)) == pytest.approx(1.0, abs=1e-6)  # MSE 1, Dice 0
    half = float(paper_loss(torch.zeros_like(target), target))  # every probability 0.5: MSE 0.25, Dice 2·8/(96+16)
    assert half == pytest.approx(0.25 - 1e-4 * 16 / 112, abs=1e-7)
    best = torch.load(train(TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                                        validate_every=1, threads=1, batchnorm_batches=0, loss="paper")),
                      weights_only=False)
    assert "--loss paper" in best["training_command"]


@pytest.mark.parametrize("network, weight", [("roi", 3.0), ("canal", 0.0)])
def test_a_foramen_weight_is_refused_without_foramen_channels_or_above_zero(tmp_path, network, weight):
    with pytest.raises(ValueError, match="--foramen-weight"):
        train(TrainConfig(network=network, out_dir=tmp_path, steps=1, foramen_weight=weight))


def test_a_run_without_dropout_records_it_and_a_share_of_one_or_more_is_refused(tmp_path):
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                         validate_every=1, threads=1, batchnorm_batches=1, dropout=0.0)
    best = torch.load(train(config), weights_only=False)
    assert "--dropout 0" in best["training_command"] and best["network"]["dropout"] == 0.0
    assert "--dropout" not in command_line(TrainConfig(network="canal", out_dir=tmp_path))  # the default
    with pytest.raises(ValueError, match="--dropout 1"):
        train(TrainConfig(network="canal", out_dir=tmp_path / "all", steps=1, dropout=1.0))


def test_hard_pixel_loss_is_the_mean_divergence_of_each_images_worst_pixels_over_a_fraction_of_them(tmp_path):
    target = torch.zeros(2, 1, 4, 4)
    target[:, :, 0, 0] = 0.5  # partial volume, predicted right: no divergence
    logits = torch.full((2, 1, 4, 4), -20.0)
    logits[:, :, 0, 0] = 0.0
    logits[0, 0, 1, 1], logits[0, 0, 2, 2] = 20.0, 2.0  # image 0: one pixel confidently wrong, one less so
    logits[1, 0, 3, 3] = 1.0
    divergence = torch.nn.functional.softplus(torch.tensor([20.0, 2.0, 1.0]))  # BCE of a logit against target 0
    worst_two = torch.stack([divergence[:2].mean(), divergence[2] / 2])  # image 1's next worst costs ~1e-9
    assert torch.allclose(hard_pixel_loss(pixel_bce(logits, target), target, 2 / 16), worst_two.mean(), atol=1e-6)
    right = torch.where(target > 0, 0.0, -40.0)
    assert hard_pixel_loss(pixel_bce(right, target), target, 0.5) < 1e-6  # right everywhere
    assert torch.allclose(dice_bce_loss(logits, target, hard_fraction=0.25),
                          dice_bce_loss(logits, target) + hard_pixel_loss(pixel_bce(logits, target), target, 0.25))
    with pytest.raises(ValueError, match="fraction"):
        train(TrainConfig(network="canal", out_dir=tmp_path, steps=1, hard_fraction=2.0))


def disc(radius_px: float, size: int = 64, centre: tuple[float, float] = (30.0, 33.0)) -> torch.Tensor:
    """A disc with partial-volume edges: its chords through the centre are 2 * radius_px long."""
    rows, columns = np.indices((size, size))
    distance = np.hypot(rows - centre[0], columns - centre[1])
    return torch.from_numpy(np.clip(radius_px + 0.5 - distance, 0.0, 1.0).astype(np.float32))


def test_the_chord_loss_grows_with_the_error_of_the_chords_through_the_true_centre_at_every_angle():
    target = disc(10.0)[None]
    assert chord_loss(target, target) == 0.0
    one_px_wider, two_px_wider = chord_loss(disc(11.0)[None], target), chord_loss(disc(12.0)[None], target)
    # every chord 2 px too long: 2 / 2.5 = 0.8 ruler units, less half the smooth-L1 beta (0.4)
    assert 0.55 < one_px_wider < 0.65 and 1.3 < two_px_wider < 1.5
    assert torch.isclose(chord_loss(disc(9.0)[None], target), one_px_wider, atol=0.05)  # too short costs as much
    spill = disc(10.0).clone()
    spill[40:45, 31:36] = 1.0  # a lump behind the mask lengthens the AP chord alone
    assert 0.0 < chord_loss(spill[None], target) < one_px_wider
    empty = torch.zeros(1, 64, 64)
    pair = torch.cat([disc(11.0)[None], disc(5.0)[None]]), torch.cat([target, empty])
    assert torch.isclose(chord_loss(*pair), one_px_wider)  # an image without a canal counts nothing
    assert chord_loss(empty, empty) == 0.0
    probabilities = disc(11.0)[None].requires_grad_(True)
    chord_loss(probabilities, target).backward()
    assert probabilities.grad[0, 30, 43] > 0 and probabilities.grad[0, 30, 33] > 0  # too long: every pixel lowered


def test_a_chord_weight_counts_each_labelled_structures_chords_is_recorded_and_refused_for_the_roi_network(tmp_path):
    torch.manual_seed(2)
    logits, targets = torch.randn(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)
    targets[:, 1] = disc(6.0, 32, (15.0, 16.0))
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                         validate_every=1, threads=1, batchnorm_batches=1, chord_weight=0.3)
    plain = TrainConfig(network="canal", out_dir=tmp_path)
    targets[0, 0] = disc(3.0, 32, (20.0, 26.0))  # one left foramen
    chords = [chord_loss(torch.sigmoid(logits[:, c]), targets[:, c]) for c in range(3)]
    expected = step_loss(plain, logits, targets, slice(None)) + 0.3 * sum(chords)
    assert torch.allclose(step_loss(config, logits, targets, slice(None)), expected)
    canal_only = step_loss(plain, logits, targets, slice(1, 2)) + 0.3 * chords[1]  # canal-only labels
    assert torch.allclose(step_loss(config, logits, targets, slice(1, 2)), canal_only)
    best = torch.load(train(config), weights_only=False)
    assert "--chord-weight 0.3" in best["training_command"]
    with pytest.raises(ValueError, match="--chord-weight"):
        train(TrainConfig(network="roi", out_dir=tmp_path / "roi", steps=1, threads=1, chord_weight=0.3))


def test_a_run_on_some_contrasts_records_them_and_unknown_contrasts_are_refused(tmp_path):
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                         validate_every=1, threads=1, batchnorm_batches=1, contrasts=("T2", "T2star"))
    best = torch.load(train(config), weights_only=False)
    assert "--contrasts T2,T2star" in best["training_command"]
    assert "contrasts T2, T2star only" in best["training_data"]
    with pytest.raises(ValueError, match="--contrasts T3"):
        train(TrainConfig(network="canal", out_dir=tmp_path / "unknown", steps=1, batch_size=1, width=4, threads=1,
                          contrasts=("T3",)))


def test_a_run_with_less_noise_trains_on_quieter_images_records_it_and_a_negative_scale_is_refused(tmp_path):
    def batch(noise_scale):
        config = TrainConfig(network="canal", out_dir=tmp_path, batch_size=2, noise_scale=noise_scale)
        return training_batch(config, None, np.random.default_rng(4))[0].numpy()

    noisy, quiet, silent = batch(1.0), batch(0.1), batch(0.0)
    assert np.abs(quiet - silent).mean() < 0.3 * np.abs(noisy - silent).mean()
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                         validate_every=1, threads=1, batchnorm_batches=1, noise_scale=0.1)
    best = torch.load(train(config), weights_only=False)
    assert "--noise-scale 0.1" in best["training_command"] and "noise level x 0.1" in best["training_data"]
    with pytest.raises(ValueError, match="--noise-scale -1"):
        train(TrainConfig(network="canal", out_dir=tmp_path / "negative", steps=1, batch_size=1, width=4, threads=1,
                          noise_scale=-1.0))


def test_some_randomisations_alone_are_recorded_as_such_all_as_plain_augment_and_unknown_ones_refused(tmp_path):
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                         validate_every=1, threads=1, batchnorm_batches=1, augment=("resolution",))
    best = torch.load(train(config), weights_only=False)
    assert "--augment resolution " in best["training_command"]
    assert "domain-randomised (resolution only)" in best["training_data"]
    everything = command_line(TrainConfig(network="canal", out_dir=tmp_path, augment=AUGMENTATIONS))
    assert everything.endswith(" --augment")
    with pytest.raises(ValueError, match="--augment blur"):
        train(TrainConfig(network="canal", out_dir=tmp_path / "unknown", steps=1, batch_size=1, width=4, threads=1,
                          augment=("blur",)))


def test_resolution_alone_leaves_a_training_image_as_it_is_or_smoother_never_remapped_or_noisier():
    image = normalise(np.random.default_rng(0).uniform(0.0, 1.0, (64, 64)).astype(np.float32))
    variation = np.abs(np.diff(image, axis=1)).mean()
    unchanged = smoother = 0
    for seed in range(16):
        randomised = domain_randomised(np.random.default_rng(seed), image, ("resolution",))
        assert randomised.shape == image.shape
        unchanged += np.array_equal(randomised, image)
        smoother += np.abs(np.diff(randomised, axis=1)).mean() < 0.5 * variation
    assert unchanged + smoother == 16 and unchanged and smoother
    assert np.array_equal(domain_randomised(np.random.default_rng(1), image, ()), image)


def test_the_weight_average_is_the_mean_of_the_weights_after_each_step():
    model = CoUNet(out_channels=3, width=4)
    average = WeightAverage()
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(value)
        average.update(model)
    model.encoders[0].norm1.running_mean.fill_(0.5)
    averaged = average.averaged(model)
    assert average.count == 3
    assert all(torch.allclose(p, torch.full_like(p, 3.0)) for p in averaged.parameters())
    assert torch.equal(averaged.encoders[0].norm1.running_mean, model.encoders[0].norm1.running_mean)
    assert all(torch.equal(p, torch.full_like(p, 6.0)) for p in model.parameters())  # the model itself is kept


def test_an_averaging_run_keeps_the_rate_constant_resumes_its_average_and_writes_averaged_weights(tmp_path):
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=2, batch_size=1, width=4, validate_every=1,
                         threads=1, batchnorm_batches=1, learning_rate=1e-3, average_from=1)
    train(config)
    config.steps, config.resume = 3, True
    train(config)
    log = list(csv.DictReader(open(tmp_path / "run" / "log.csv", encoding="utf-8")))
    assert {float(row["learning_rate"]) for row in log} == {1e-3}
    averaged = torch.load(tmp_path / "run" / "averaged.pt", weights_only=False)
    assert averaged["averaged_steps"] == "1-3 (3 steps)" and "--average-from 1" in averaged["training_command"]
    last = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    conv = "encoders.0.conv1.weight"
    assert not torch.equal(averaged["model"][conv], last[conv])
    assert len(averaged["validation_dice"]) == 3 and "batchnorm" in averaged


def test_averaging_needs_a_step_within_the_run_and_recalibrated_statistics(tmp_path):
    with pytest.raises(ValueError, match="--average-from 5"):
        train(TrainConfig(network="canal", out_dir=tmp_path / "a", steps=2, threads=1, average_from=5))
    with pytest.raises(ValueError, match="--batchnorm-batches"):
        train(TrainConfig(network="canal", out_dir=tmp_path / "b", steps=2, threads=1, average_from=1,
                          batchnorm_batches=0))


def test_auxiliary_outputs_start_from_the_given_weights_count_in_the_loss_and_are_not_saved(tmp_path):
    narrow = CoUNet(out_channels=3, width=4).eval()
    torch.save({"model": narrow.state_dict()}, tmp_path / "init.pt")
    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=2, batch_size=2, width=4, validate_every=1,
                         threads=1, batchnorm_batches=1, init=tmp_path / "init.pt", auxiliary_weight=0.5)
    model = initial_model(config).eval()
    x = torch.rand(1, 1, 32, 32)
    assert model.config["out_channels"] == 6 and torch.allclose(model(x)[:, :3], narrow(x), atol=1e-6)
    inputs, targets, channels = training_batch(config, None, np.random.default_rng(0))
    assert targets.shape[1] == 6
    logits = model(inputs)
    plain = TrainConfig(network="canal", out_dir=tmp_path)
    assert step_loss(config, logits, targets, channels) > step_loss(plain, logits, targets[:, :3], channels)
    train(config)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["network"]["out_channels"] == 3 and "--auxiliary 0.5" in best["training_command"]
    CoUNet(**best["network"]).load_state_dict(best["model"])
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]["head.bias"].shape == (6,)
    with pytest.raises(ValueError, match="--auxiliary"):
        train(TrainConfig(network="roi", out_dir=tmp_path / "roi", steps=1, threads=1, auxiliary_weight=0.5))


def test_blended_weights_lie_the_share_given_of_the_way_from_the_start_to_the_fine_tune_the_encoder_its_own():
    start, tuned = trained_like(CoUNet(3, width=4)).state_dict(), CoUNet(3, width=4).state_dict()
    tuned["encoders.0.norm1.num_batches_tracked"] += 7
    for share in (0.0, 0.3, 1.0):
        blended = blended_weights(start, tuned, share)
        for name in ("encoders.0.conv1.weight", "decoders.1.norm2.bias", "head.weight"):
            assert torch.allclose(blended[name], start[name] + share * (tuned[name] - start[name]), atol=1e-6)
        assert blended["encoders.0.norm1.num_batches_tracked"] == tuned["encoders.0.norm1.num_batches_tracked"]
    own_encoder = blended_weights(start, tuned, 1.0, encoder_share=0.0)
    assert torch.equal(own_encoder["encoders.2.conv1.weight"], start["encoders.2.conv1.weight"])
    assert torch.equal(own_encoder["decoders.0.conv2.weight"], tuned["decoders.0.conv2.weight"])
    with pytest.raises(ValueError, match="--share 1.5: expected"):
        blended_weights(start, tuned, 1.5)
    with pytest.raises(ValueError, match="--encoder-share -1: expected"):
        blended_weights(start, tuned, 0.5, encoder_share=-1.0)
    with pytest.raises(ValueError, match="not the same network"):
        blended_weights(start, CoUNet(3, width=6).state_dict(), 0.5)


def test_a_blend_of_a_network_and_its_fine_tune_recalibrates_its_statistics_the_same_each_time_and_says_how(tmp_path):
    start = trained_like(CoUNet(3, width=4))
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in start.state_dict().items()},
               tmp_path / "start.pt")  # as shipped: fp16, no record
    train(TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4, validate_every=1,
                      threads=1, batchnorm_batches=1, learning_rate=1e-2, init=tmp_path / "start.pt"))
    tuned = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    out = blend("canal", tmp_path / "start.pt", tmp_path / "run" / "best.pt", 0.25, tmp_path / "blend" / "best.pt",
                threads=1, batchnorm_batches=2)
    record = torch.load(out, weights_only=False)
    halved = {k: v.half().float() for k, v in start.state_dict().items()}
    conv = "encoders.1.conv2.weight"
    assert torch.allclose(record["model"][conv], halved[conv] + 0.25 * (tuned["model"][conv] - halved[conv]))
    mean = "encoders.0.norm1.running_mean"
    assert not torch.allclose(record["model"][mean], blended_weights(halved, tuned["model"], 0.25)[mean])
    assert record["training_command"].startswith(tuned["training_command"] + "; then spinal-stenosis blend canal")
    assert "--share 0.25" in record["training_command"] and len(record["validation_dice"]) == 3
    again = blend("canal", tmp_path / "start.pt", tmp_path / "run" / "best.pt", 0.25, tmp_path / "again.pt",
                  threads=1, batchnorm_batches=2)
    assert all(torch.equal(v, torch.load(again, weights_only=False)["model"][k]) for k, v in record["model"].items())
    with pytest.raises(ValueError, match="not the best.pt of a roi-network training run"):
        blend("roi", tmp_path / "start.pt", tmp_path / "run" / "best.pt", 0.5, tmp_path / "other.pt", threads=1)


def test_a_bfloat16_run_takes_its_steps_under_autocast_keeps_float32_weights_and_records_it(tmp_path):
    def run(precision: str) -> dict:
        config = TrainConfig(network="canal", out_dir=tmp_path / precision, steps=2, batch_size=2, width=4,
                             validate_every=2, threads=1, batchnorm_batches=0, precision=precision)
        return torch.load(train(config), weights_only=False)

    exact, fast = run("float32"), run("bfloat16")
    assert "--precision" not in exact["training_command"]
    assert "--precision bfloat16" in fast["training_command"]
    weights = [name for name, value in exact["model"].items() if value.is_floating_point()]
    assert all(fast["model"][name].dtype == torch.float32 for name in weights)
    differences = [(fast["model"][name] - exact["model"][name]).abs().max().item() for name in weights]
    assert 0.0 < max(differences) < 0.01  # two Adam steps move a weight by about 2 x 2e-3 at most
    with pytest.raises(ValueError, match="'float16' is not one of"):
        train(TrainConfig(network="canal", out_dir=tmp_path / "half", steps=1, threads=1, precision="float16"))


def test_a_mirrored_batch_swaps_the_foramina_and_its_disagreement_is_the_squared_difference_mirrored_back(tmp_path):
    targets = torch.zeros(1, 4, 16, 16)  # left foramen, canal, right foramen, an auxiliary tissue
    targets[0, 0, 5:8, 10:13] = 1.0  # the patient's left lies on the image's right (columns R→L)
    targets[0, 1, 4:9, 6:9] = 1.0
    targets[0, 3, 0, 2] = 1.0
    images = torch.arange(256.0).reshape(1, 1, 16, 16)
    both_images, both_targets = with_mirrors("canal", images, targets)
    assert torch.equal(both_images[1, 0, :, 15], images[0, 0, :, 0])
    assert both_targets[1, 0].sum() == 0 and torch.equal(both_targets[1, 2, 5:8, 3:6], torch.ones(3, 3))
    assert torch.equal(both_targets[1, 1, 4:9, 7:10], torch.ones(5, 3)) and both_targets[1, 3, 0, 13] == 1.0
    assert torch.equal(mirrored_maps(targets[:, :1], "roi"), targets[:, :1].flip(-1))  # one channel, no sides

    logits = torch.randn(2, 3, 16, 16)
    alike = torch.cat([logits[:1], mirrored_maps(logits[:1], "canal")])
    assert mirror_disagreement(alike, "canal") == 0.0
    probabilities = torch.sigmoid(logits)
    expected = torch.mean((probabilities[0] - mirrored_maps(probabilities[1:], "canal")[0]) ** 2)
    assert torch.isclose(mirror_disagreement(logits, "canal"), expected)

    config = TrainConfig(network="canal", out_dir=tmp_path / "run", steps=1, batch_size=1, width=4,
                         validate_every=1, threads=1, batchnorm_batches=0, mirror_weight=30.0)
    assert "--mirror-weight 30" in torch.load(train(config), weights_only=False)["training_command"]
    with pytest.raises(ValueError, match="--mirror-weight"):
        train(TrainConfig(network="roi", out_dir=tmp_path / "roi", steps=1, threads=1, mirror_weight=-1.0))
