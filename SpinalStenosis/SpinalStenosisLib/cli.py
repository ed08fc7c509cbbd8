"""``spinal-stenosis``: the command-line face of the engine."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .grading import GRADING_REGIONS, REGIONS, THORACIC
from .inference import PRECISIONS

if TYPE_CHECKING:
    from .pipeline import MeasurementRun, ProgressCallback

EXIT_USAGE, EXIT_INPUT, EXIT_MODELS, EXIT_INTERRUPTED = 2, 3, 4, 130


def _measure(args: argparse.Namespace) -> None:
    """Measure each input into --out (one input) or into --out/<input name> (several: one failing input does not
    stop the others; the exit code says some failed)."""
    from .outputs import OutputError, write_studies_csv
    from .volume_io import InputError, input_name

    if len(args.inputs) > 1 and (args.masks is not None or args.scene is not None or args.levels
                                 or args.other_contrast is not None):
        raise ValueError("--masks, --scene, --levels and --other-contrast take one input")
    names = [input_name(path) for path in args.inputs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"several inputs would write into the same output folder ({', '.join(duplicates)}); "
                         "measure them separately")
    segmenter = None
    if args.masks is None:
        from .inference import load_segmenter

        segmenter = load_segmenter(device=args.device, folder=Path(args.models) if args.models else None,
                                   precision=args.precision)
    if len(args.inputs) == 1:
        _measure_one(args, args.inputs[0], Path(args.out), segmenter)
        return
    failed = 0
    for input_path, name in zip(args.inputs, names):
        try:
            _measure_one(args, input_path, Path(args.out) / name, segmenter)
        except (InputError, OutputError, ValueError, FileNotFoundError) as error:
            print(f"spinal-stenosis: error: {error}", file=sys.stderr)
            failed += 1
    studies = write_studies_csv(Path(args.out))
    if studies is not None and not args.quiet:
        print(f"wrote {studies.resolve()}: the worst findings of every input measured into {Path(args.out).resolve()}")
    if failed:
        raise InputError(f"{failed} of {len(args.inputs)} inputs could not be measured (see above)")


def _measure_one(args: argparse.Namespace, input_path: str, out: Path, segmenter) -> None:
    from .outputs import block_folder
    from .pipeline import measure_file

    runs = measure_file(input_path, out, labels_path=args.masks, segmenter=segmenter, region=args.region,
                        overwrite=args.overwrite, progress=None if args.quiet else progress_printer(),
                        pixel_mm=args.pixel_mm, levels=args.levels, series=args.series,
                        image_set=args.image_set, other_contrast=args.other_contrast)
    region = runs[0].graded_region
    said = [run.warnings_graded_as(region) for run in runs]
    shared = [w for w in said[0] if all(w in warnings for warnings in said[1:])] if len(runs) > 1 else []
    for warning in shared:  # of the whole series: said once
        print(f"spinal-stenosis: warning: {input_path}: {warning}", file=sys.stderr)
    for k, warnings in enumerate(said, 1):
        for warning in warnings:
            if warning not in shared:
                print(f"spinal-stenosis: warning: {input_path}: {_block_prefix(k, len(runs))}{warning}",
                      file=sys.stderr)
    if args.scene is not None:
        from .scene_bundle import write_scene_bundle

        write_scene_bundle(runs, Path(input_path), Path(args.scene), region=region, overwrite=args.overwrite)
    if not args.quiet:
        if args.region is None and runs[0].volume.named_region:
            graded = "the canal not graded" if region == THORACIC else f"graded with the {region} cut-offs"
            print(f"{graded}: the DICOM header names the {region} spine (--region overrides)")
        elif args.region is None and runs[0].shown_region:
            print(f"graded with the {region} cut-offs: the image shows {runs[0].shown_region.evidence} on most slices "
                  "(--region overrides)")
        if len(runs) > 1:
            print(f"the DICOM series is in {len(runs)} blocks ({runs[0].volume.blocks_reason}): each block is measured "
                  f"as a stack of its own, in {block_folder(1)} ... {block_folder(len(runs))}")
        _say_results(runs, region)
        print(f"wrote {out.resolve()}")


def _say_results(runs: list[MeasurementRun], region: str) -> None:
    """Each run's worst findings and what to check (a run a block of a DICOM series, named so), and for the
    blocks of a series the worst findings of them all; then those of each named level (over all the blocks)."""
    from .findings import (describe_findings, describe_levels, worst_findings, worst_findings_by_level,
                           worst_findings_by_level_of_blocks, worst_findings_of_blocks)
    from .measurement import CHECK_REASONS, describe_checks
    from .outputs import block_folder

    for k, run in enumerate(runs, 1):
        where = _block_prefix(k, len(runs))
        findings = describe_findings(worst_findings(run.measurements, region))
        print(f"{where}{findings or 'no canal or foramen found'}")
        checks = {m.slice_index: m.check for m in run.measurements if m.check}
        if checks:
            print(f"{where}check {describe_checks(checks)} (the check column: {CHECK_REASONS})")
    if len(runs) > 1:
        blocks = {block_folder(k): run.measurements for k, run in enumerate(runs, 1)}
        series = describe_findings(worst_findings_of_blocks(blocks, region))
        print(f"the whole series: {series or 'no canal or foramen found'}")
        by_level = worst_findings_by_level_of_blocks(blocks, region)
    else:
        by_level = worst_findings_by_level(runs[0].measurements, region)
    for line in describe_levels(by_level):
        print(line)


def _block_prefix(block: int, blocks: int) -> str:
    """What starts a line about one of a DICOM series' blocks ("block-2: "); nothing for a single stack."""
    from .outputs import block_folder

    return f"{block_folder(block)}: " if blocks > 1 else ""


def _levels(text: str) -> dict:
    """--levels (see level_names.parse_levels)."""
    from .level_names import parse_levels

    try:
        return parse_levels(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def progress_printer() -> ProgressCallback:
    """A progress callback printing "PROGRESS done/total" on stderr, each once (the stack step's second look reports
    the last again after each of its batches, so that a GUI may cancel there)."""
    printed: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        if printed[-1:] != [(done, total)]:
            print(f"PROGRESS {done}/{total}", file=sys.stderr, flush=True)
            printed.append((done, total))

    return progress


def _demo(args: argparse.Namespace) -> None:
    from .demo import DEMO_SEED, run_demo

    out, runs = run_demo(Path(args.out), overwrite=args.overwrite,
                         seed=DEMO_SEED if args.seed is None else args.seed, use_masks=args.masks_only,
                         region=args.region)
    _say_results(runs, args.region)
    print(f"wrote {out}")


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluation import compare_case, summary_lines, write_comparisons_csv
    from .inference import load_segmenter
    from .real_data import labelled_cases

    cases = labelled_cases(Path(args.folder))
    segmenter = load_segmenter(device=args.device, folder=Path(args.models) if args.models else None,
                               precision=args.precision)
    comparisons = [c for case in cases for c in compare_case(case, segmenter, args.region)]
    print("\n".join(summary_lines(comparisons)))
    if args.csv:
        write_comparisons_csv(Path(args.csv), comparisons)
        print(f"wrote {Path(args.csv).resolve()}")


def _synth(args: argparse.Namespace) -> None:
    from .synth.dataset import write_dataset

    write_dataset(Path(args.out), count=args.count, seed=args.seed, region=args.region,
                  overwrite=args.overwrite, gallery_real=None if args.no_gallery else args.real)
    print(f"wrote {Path(args.out).resolve()}")


def _train(args: argparse.Namespace) -> None:
    from .training import TrainConfig, train

    config = TrainConfig(network=args.network, steps=args.steps, batch_size=args.batch_size, width=args.width,
                         depth=args.depth, dropout=args.dropout, seed=args.seed, learning_rate=args.lr,
                         out_dir=Path(args.out),
                         resume=args.resume, real_data=Path(args.real_data) if args.real_data else None,
                         threads=args.threads, loss=args.loss, init=Path(args.init) if args.init else None,
                         augment=_augmentations(args.augment), freeze_encoder=args.freeze_encoder,
                         edge_weight=args.edge_weight, foramen_weight=args.foramen_weight,
                         hard_fraction=args.hard_pixels, average_from=args.average_from,
                         auxiliary_weight=args.auxiliary, noise_scale=args.noise_scale,
                         chord_weight=args.chord_weight, mirror_weight=args.mirror_weight,
                         precision=args.precision)
    if args.batchnorm_batches is not None:
        config.batchnorm_batches = args.batchnorm_batches
    if args.contrasts:
        config.contrasts = tuple(args.contrasts.split(","))
    best = train(config, progress=print)
    print(f"wrote {best.parent.resolve()}")


def _blend(args: argparse.Namespace) -> None:
    from .training import blend

    recalibration = {} if args.batchnorm_batches is None else {"batchnorm_batches": args.batchnorm_batches}
    out = blend(args.network, Path(args.start), Path(args.tuned), args.share, Path(args.out), args.encoder_share,
                threads=args.threads, **recalibration)
    print(f"wrote {out}; package it with: spinal-stenosis package-models --{args.network} {out} --out FOLDER")


def _augmentations(names: str) -> tuple[str, ...]:
    """``--augment``'s value: all the randomisations, none, or the comma-separated ones named."""
    from .synth.augment import AUGMENTATIONS

    return AUGMENTATIONS if names == "all" else tuple(name for name in names.split(",") if name)


def _package_models(args: argparse.Namespace) -> None:
    from .models import package_models

    trained = {name: Path(path) for name, path in (("roi", args.roi), ("roi_second", args.roi_second),
                                                   ("canal", args.canal)) if path}
    if not trained:
        raise ValueError("give --canal, --roi and/or --roi-second: the best.pt of a training run")
    out = package_models(Path(args.out), trained, base=Path(args.base) if args.base else None,
                         overwrite=args.overwrite)
    print(f"wrote {out.resolve()}; measure with it: spinal-stenosis measure INPUT --out DIR --models {out}")


def _add_measure(sub: "argparse._SubParsersAction") -> None:
    """The measure command: an image, a DICOM series or study → masks, rulers, table and report."""
    measure = sub.add_parser("measure", help="segment (or read masks), measure, write masks/rulers/table/report")
    measure.add_argument("inputs", nargs="+", metavar="input",
                         help="image file (NIfTI, NRRD, MHA, PNG, a DICOM file) or DICOM folder (a series or a "
                         "whole study); several: one subfolder each")
    measure.add_argument("--out", required=True, help="output folder")
    measure.add_argument("--masks", help="label image on the input's voxels (or a box of them): 1 canal, 2 left, "
                         "3 right foramen, or a 3D Slicer segmentation (.seg.nrrd: its segments Spinal canal, Left "
                         "and Right neural foramen) (for a DICOM series in blocks: the output folder of an earlier "
                         "run)")
    measure.add_argument("--region", choices=GRADING_REGIONS, help="which cut-offs grade the canal (thoracic: none; "
                         "default: the region a DICOM series' header names, else cervical where the image shows a "
                         "whole neck or the cord in the sac, else lumbar)")
    measure.add_argument("--series", help="which series of a DICOM folder (a study) to measure: its Series Number, or "
                         "a word of its Series Description, e.g. T2 (default: the T2-weighted axial series)")
    measure.add_argument("--image-set", metavar="VALUE", help="which of the images a DICOM series holds at each "
                         "slice position to measure (two echoes, a Dixon sequence's water and fat images, a repeated "
                         "acquisition): the value that tells them apart, as the warning names it, e.g. 20 (an Echo "
                         "Time) or FAT (a word of an Image Type) (default: the most complete set, then a water, "
                         "in-phase or magnitude image, then the longest echo)")
    measure.add_argument("--pixel-mm", type=float, help="pixel size of a 2-D input (e.g. PNG): measured as one "
                         "axial slice as displayed, anterior at the top, the patient's left on the right")
    measure.add_argument("--levels", type=_levels, default={}, metavar="SLICE=LEVEL,...",
                         help='the vertebral level of slices, e.g. "4=L4-L5,8=L5-S1", or of ranges of slices, e.g. '
                              '"0-2=L3-L4,3-5=L4-L5" (slice_index as in the CSV), or of the blocks of a DICOM '
                              'series, e.g. "block-1=L3-L4,block-2=L4-L5", or of a DICOM series\' images as a viewer '
                              'numbers them (image_number in the CSV), e.g. "image 12-16=L4-L5": named in every '
                              "output, each level's worst findings said, and its cut-offs used (a thoracic or sacral "
                              "canal is not graded)")
    measure.add_argument("--other-contrast", metavar="IMAGE", help="another contrast of the same slices, on the "
                         "input's voxels (e.g. the axial T1 acquired at the axial T2's positions): network 2's "
                         "outlines are averaged over both")
    measure.add_argument("--scene", help="also write a Slicer scene bundle (.mrb); needs slicer-core")
    measure.add_argument("--device", default="cpu", help="torch device for the networks")
    measure.add_argument("--precision", choices=PRECISIONS, default="auto",
                         help="what the networks compute in; auto: bfloat16 on a CPU that computes it natively, "
                              "else float32")
    measure.add_argument("--models", help="models folder to use instead of the shipped networks (see package-models)")
    measure.add_argument("--overwrite", action="store_true", help="replace earlier outputs in --out")
    measure.add_argument("--quiet", action="store_true", help="no progress lines")
    measure.set_defaults(handler=_measure)


def _add_demo(sub: "argparse._SubParsersAction") -> None:
    """The demo command: the built-in default job."""
    demo = sub.add_parser("demo", help="synthesise a lumbar (or cervical) series and measure it (the built-in "
                                       "default job)")
    demo.add_argument("--out", default="spinal-stenosis-demo", help="output folder")
    demo.add_argument("--seed", type=int, help="another synthetic series (default: the demo's own)")
    demo.add_argument("--masks-only", action="store_true", help="measure the phantom's true masks, no networks")
    demo.add_argument("--region", choices=REGIONS, default="lumbar",
                      help="a lumbar series (L3-S1) or a cervical one (C4-C7), graded with that region's cut-offs")
    demo.add_argument("--overwrite", action="store_true")
    demo.set_defaults(handler=_demo)


def _add_evaluate(sub: "argparse._SubParsersAction") -> None:
    """The evaluate command: the networks against the user's own labelled images."""
    evaluate = sub.add_parser("evaluate", help="compare the networks with your own labelled images (NIfTI pairs or "
                                               "Lumbar Spine MRI label PNGs, as train --real-data reads them)")
    evaluate.add_argument("folder", help="*_image.nii.gz + *_labels.nii.gz (or a 3D Slicer *_labels.seg.nrrd) "
                          "pairs, or *_label.png + *_image.png")
    evaluate.add_argument("--region", choices=REGIONS, default="lumbar", help="which cut-offs grade the canal")
    evaluate.add_argument("--csv", help="also write one row per compared slice to this file")
    evaluate.add_argument("--models", help="models folder to use instead of the shipped networks (e.g. a fine-tune)")
    evaluate.add_argument("--device", default="cpu", help="torch device for the networks")
    evaluate.add_argument("--precision", choices=PRECISIONS, default="auto", help="as for measure")
    evaluate.set_defaults(handler=_evaluate)


def _add_synth(sub: "argparse._SubParsersAction") -> None:
    """The synth command: synthetic slices with their labels and truth."""
    synth = sub.add_parser("synth", help="write synthetic axial slices with labels and truth.csv")
    synth.add_argument("--count", type=int, default=16)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", required=True)
    synth.add_argument("--region", choices=("lumbar", "cervical", "both"), default="both")
    synth.add_argument("--real", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "eval" / "real"),
                       help="folder of real images for the gallery (validation only)")
    synth.add_argument("--no-gallery", action="store_true")
    synth.add_argument("--overwrite", action="store_true")
    synth.set_defaults(handler=_synth)


def _add_train(sub: "argparse._SubParsersAction") -> None:
    """The train command: either network on synthetic (and the user's real labelled) images."""
    train = sub.add_parser("train", help="train a network on synthetic (and optional real labelled) data")
    train.add_argument("network", choices=("roi", "canal"))
    train.add_argument("--out", required=True, help="checkpoint folder")
    train.add_argument("--steps", type=int, default=4000)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--width", type=int, default=16)
    train.add_argument("--depth", type=int, default=3,
                       help="poolings (default 3); shallower --init weights are deepened without changing what they "
                       "compute")
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--dropout", type=float, default=0.1,
                       help="share of each block's channels dropped while training (default 0.1; 0: none)")
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--resume", action="store_true")
    train.add_argument("--loss", choices=("bce_dice", "paper"), default="bce_dice",
                       help="BCE + soft Dice, or the seed paper's MSE - 1e-4 Dice")
    train.add_argument("--real-data", help="folder of labelled NIfTI pairs or Lumbar Spine MRI label PNGs")
    train.add_argument("--init", help="start from these weights (best.pt or a shipped .pt), fresh schedule; "
                       "weights narrower than --width are widened without changing what they compute")
    train.add_argument("--augment", nargs="?", const="all", default="",
                       help="domain randomisation of the synthetic images: intensity curve, resolution, noise; "
                            "with a comma-separated list, only those")
    train.add_argument("--freeze-encoder", action="store_true",
                       help="train the decoder and head only (fine-tuning that keeps the encoder's features)")
    train.add_argument("--edge-weight", type=float, default=0.0,
                       help="count pixels within 2 of a mask's edge 1 + this many times in the BCE (default 0)")
    train.add_argument("--foramen-weight", type=float, default=1.0,
                       help="count the canal network's foramen channels this many times in its loss (default 1)")
    train.add_argument("--hard-pixels", type=float, default=0.0,
                       help="add the mean KL divergence over this fraction of each image's hardest pixels to the "
                            "loss (online hard-pixel mining; default 0: none)")
    train.add_argument("--noise-scale", type=float, default=1.0,
                       help="multiply the synthetic images' noise level by this (default 1; e.g. 0.1 to see what "
                            "a network learns where noise hides nothing)")
    train.add_argument("--contrasts", help="train on synthetic images of these contrasts only, comma-separated "
                       "(of T2, T1, T2star, T2FS, random; default all)")
    train.add_argument("--batchnorm-batches", type=int,
                       help="at the end, average best.pt's BatchNorm statistics over this many fresh batches "
                            "(default 250; 0: leave them as training left them)")
    train.add_argument("--average-from", type=int, default=0,
                       help="from this step on, keep the learning rate constant and average the weights after "
                            "every step; written, with recalibrated BatchNorm statistics, to averaged.pt")
    train.add_argument("--auxiliary", type=float, default=0.0, metavar="WEIGHT",
                       help="canal network: also learn the tissues around the sac (epidural fat, ligaments, "
                            "vertebra and disc) on extra outputs, their loss weighted so; they are not saved")
    train.add_argument("--chord-weight", type=float, default=0.0, metavar="WEIGHT",
                       help="canal network: add the error of each structure's chord lengths through its centre "
                            "(its rulers, at any angle) to the loss, weighted so (default 0: none)")
    train.add_argument("--mirror-weight", type=float, default=0.0, metavar="WEIGHT",
                       help="train each batch with its left-right mirror (foramina swapped) and add the mean squared "
                            "difference between each image's probabilities and its mirror's, mirrored back, weighted "
                            "so (default 0: neither)")
    train.add_argument("--precision", choices=PRECISIONS, default="float32",
                       help="each step's forward pass: float32 (default) or bfloat16 under autocast, faster on a CPU "
                            "that computes it natively (validation and the saved weights stay float32)")
    train.set_defaults(handler=_train)


def _add_blend(sub: "argparse._SubParsersAction") -> None:
    """The blend command: a network part way between its start and its fine-tune."""
    blend = sub.add_parser("blend", help="a network part way between its start and its fine-tune (weights "
                                         "interpolated, BatchNorm statistics recalibrated), written like a best.pt")
    blend.add_argument("network", choices=("roi", "canal"))
    blend.add_argument("--start", required=True, help="the weights the fine-tune started from (its --init)")
    blend.add_argument("--tuned", required=True, help="best.pt of the fine-tune")
    blend.add_argument("--share", type=float, default=0.5, help="the fine-tune's share of each weight, 0 to 1 "
                       "(default 0.5)")
    blend.add_argument("--encoder-share", type=float, help="the fine-tune's share of the encoder's weights, if not "
                       "--share (e.g. 0: the start's encoder under the fine-tune's decoder)")
    blend.add_argument("--out", required=True, help="the .pt file to write")
    blend.add_argument("--threads", type=int, default=2)
    blend.add_argument("--batchnorm-batches", type=int,
                       help="fresh synthetic batches the BatchNorm statistics are averaged over (default 250)")
    blend.set_defaults(handler=_blend)


def _add_package_models(sub: "argparse._SubParsersAction") -> None:
    """The package-models command: a models folder for measure --models."""
    package = sub.add_parser("package-models", help="a models folder for measure --models: the shipped networks "
                                                    "with trained ones (a training run's best.pt) in their place")
    package.add_argument("--canal", help="best.pt (or averaged.pt) of a canal-network training run")
    package.add_argument("--roi", help="best.pt (or averaged.pt) of an ROI-network training run")
    package.add_argument("--roi-second", help="the same, for the second-opinion ROI network (asked only where the "
                                              "first finds no canal)")
    package.add_argument("--out", required=True, help="the models folder to write")
    package.add_argument("--base", help="models folder the others are taken from (default: the shipped one)")
    package.add_argument("--overwrite", action="store_true")
    package.set_defaults(handler=_package_models)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spinal-stenosis", description="Measure spinal stenosis on axial MR.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_measure, _add_demo, _add_evaluate, _add_synth, _add_train, _add_blend, _add_package_models):
        add(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .models import ModelError
    from .outputs import OutputError
    from .pipeline import Cancelled
    from .volume_io import InputError

    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (InputError, OutputError, ValueError, FileNotFoundError) as error:
        print(f"spinal-stenosis: error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except ModelError as error:
        print(f"spinal-stenosis: error: {error}", file=sys.stderr)
        return EXIT_MODELS
    except (KeyboardInterrupt, Cancelled):
        print("spinal-stenosis: interrupted; nothing was written for the input being measured", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("spinal-stenosis: error: out of memory", file=sys.stderr)
        return EXIT_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
