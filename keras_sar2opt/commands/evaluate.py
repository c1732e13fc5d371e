"""`sar2opt evaluate`: PSNR, SSIM, MAE, RMSE, SAM, L1, the identity check and, when asked for, LPIPS, DISTS, FID
and KID of a generator on a dataset split (report §3–§4; docs/metrics.md)."""

from keras_sar2opt.commands.options import (
    add_optical_scaling_options,
    add_preprocessing_options,
    add_sar_scaling_options,
    optical_scaling,
    preprocessing_steps,
    sar_scaling,
)
from keras_sar2opt.evaluation import SAMPLE_ROWS, SPLITS
from keras_sar2opt.paper import EVALUATION_FIGURES
from keras_sar2opt.text import counted


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a generator on a dataset split: per-image CSV, summary JSON/Markdown, sample grid",
        description=(
            "Translate the SAR images of a dataset split with a generator (at its input size) and compare "
            "with the optical targets: per_image.csv, summary.json, summary.md (mean ± std) and samples.png "
            "in OUT. Preprocessing options apply to the SAR in the order given (report §3.5: --median 7 --gamma 7)."
        ),
    )
    parser.add_argument(
        "--model",
        required=True,
        help="generator: .keras, a SAR2Optical .pth/.safetensors, or preset:NAME (sar2opt presets; downloaded once)",
    )
    parser.add_argument(
        "--weights-dir",
        metavar="DIR",
        help="folder of downloaded weights: presets and the network metrics' files (default "
        "$KERAS_HOME/keras_sar2opt/presets and .../metrics, KERAS_HOME defaulting to ~/.keras)",
    )
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="dataset folder (any layout sar2opt reads); default with a run's --split-file: the run's data",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="evaluation folder to write")
    parser.add_argument("--split", choices=SPLITS, default="test", help="which pairs (default test)")
    parser.add_argument(
        "--split-file",
        metavar="F",
        help="split to use: a run's split.json (its data, SAR and optical scaling become the defaults) or a "
        "SAR2Optical split.json (default: the dataset's own split.json, else the seeded 80/10/10 split)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the 80/10/10 split (default 0)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate the first N pairs of the split only")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per model call (default 8)")
    parser.add_argument(
        "--samples",
        type=int,
        default=SAMPLE_ROWS,
        metavar="N",
        help=f"pairs shown in samples.png (default {SAMPLE_ROWS})",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=(),
        metavar="NAME",
        help="network metrics to add to the pixel metrics: lpips, dists (per image), fid, kid (per set), or all; "
        "their reference weights are downloaded once (docs/metrics.md). Default: none, nothing downloaded",
    )
    parser.add_argument(
        "--metric-weights",
        nargs="+",
        default=(),
        metavar="KEY=FILE",
        help="a network metric's weights file given by hand, used as it is (keys: fid_inception, alexnet, "
        "lpips_alex, vgg16, dists; docs/metrics.md)",
    )
    parser.add_argument(
        "--role",
        choices=list(EVALUATION_FIGURES),
        help="the report figure these samples stand for, used by `sar2opt report`",
    )
    parser.add_argument(
        "--on-bad",
        choices=("error", "skip"),
        help="bad data pairs: stop or skip (default error; with a run's --split-file, the run's setting)",
    )
    parser.add_argument(
        "--upsample-mode",
        default="nearest",
        choices=("nearest", "bilinear"),
        help="interpolation when converting an upsampling-decoder .pth on the fly (default nearest)",
    )
    add_preprocessing_options(parser)
    add_sar_scaling_options(parser)
    add_optical_scaling_options(parser)
    parser.set_defaults(func=run)


def _metric_weights(pairs):
    """{key: file} of --metric-weights KEY=FILE ...; UsageError for an item without "="."""
    from keras_sar2opt.errors import UsageError

    malformed = [pair for pair in pairs if "=" not in pair]
    if malformed:
        raise UsageError(f"Expected --metric-weights as KEY=FILE, received {malformed[0]}")
    return dict(pair.split("=", 1) for pair in pairs)


def run(args):
    from keras_sar2opt.evaluation import IDENTITY, METRICS, NETWORK_METRICS, evaluate

    summary = evaluate(
        args.model,
        args.data,
        args.output,
        split=args.split,
        split_file=args.split_file,
        seed=args.seed,
        limit=args.limit,
        preprocessing=preprocessing_steps(args),
        sar_options=sar_scaling(args),
        optical_options=optical_scaling(args),
        batch_size=args.batch_size,
        metrics=[name for names in args.metrics for name in names.split(",") if name],
        metric_weights=_metric_weights(args.metric_weights),
        role=args.role,
        sample_rows=args.samples,
        upsample_mode=args.upsample_mode,
        weights_dir=args.weights_dir,
        on_bad=args.on_bad,
    )
    labels = {name: label for name, (label, _) in {**METRICS, **NETWORK_METRICS}.items() if name not in IDENTITY}
    values = ", ".join(
        f"{labels[name]} {value['mean']:.4f}" for name, value in summary["metrics"].items() if name in labels
    )
    values += f", FID {summary['fid']:.2f}" if summary["fid"] is not None else ""
    values += f", KID {summary['kid']['mean']:.4f} ± {summary['kid']['std']:.4f}" if summary["kid"] else ""
    identity = (
        f"identity check: SSIM to the SAR input {summary['metrics']['ssim_sar']['mean']:.4f}, "
        f"{summary['metrics']['closer_to_sar']['mean']:.0%} of outputs closer to it than to their target"
    )
    skipped = f"; {summary['skipped']} bad pairs of the dataset left out" if summary["skipped"] else ""
    print(
        f"evaluated {counted(summary['pairs'], 'pair')} ({args.split} split{skipped}) into {args.output}: {values}; "
        + identity
    )
    return 0
