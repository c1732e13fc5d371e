"""`sar2opt train`: train one of the report's experiments (§1–§3) and write its run folder."""

import sys

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import DEFAULT_PAIRS, EXPERIMENTS, PRECISIONS, STRATEGIES, get_experiment


def _one_line_errors(parser):
    """Make the parser report a bad option as one line (no usage block), exit status 2."""

    def error(message):
        parser.exit(2, f"{parser.prog}: error: {message}\n")

    parser.error = error
    return parser


def register(subparsers):
    parser = _one_line_errors(
        subparsers.add_parser(
            "train",
            help="train an experiment (scratch, patchgan, wgan, ...) and write a run folder",
            description="Train one of the report's experiments. Without --data it trains on the "
            "built-in synthetic qxslab preset, written into the run folder first.",
        )
    )
    parser.add_argument("--experiment", required=True, choices=list(EXPERIMENTS), help="the named configuration")
    parser.add_argument(
        "--data", metavar="PATH", help="dataset: QXSLAB-SAROPT, SEN1-2, SAR2Optical, two folders or a CSV"
    )
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/EXPERIMENT); resumes if interrupted")
    parser.add_argument("--epochs", type=int, metavar="N")
    parser.add_argument("--batch-size", type=int, metavar="N", help="global batch size")
    parser.add_argument("--image-size", type=int, metavar="N")
    parser.add_argument("--seed", type=int, metavar="N")
    parser.add_argument("--pairs", type=int, metavar="N", help=f"synthetic pairs, without --data ({DEFAULT_PAIRS})")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--strategy", choices=STRATEGIES, default="none", help="tf.distribute strategy")
    parser.add_argument("--steps-per-epoch", type=int, metavar="N", help="batches per epoch (the data repeats)")
    parser.add_argument("--sample-every", type=int, default=5, metavar="N", help="sample grid every N epochs")
    parser.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop when val_g_l1 stalls")
    parser.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    parser.add_argument("--on-bad", choices=("error", "skip"), default="error", help="bad data pairs: stop or skip")
    parser.add_argument("--l1-weight", type=float, metavar="LAMBDA")
    parser.add_argument("--g-learning-rate", type=float, metavar="LR")
    parser.add_argument("--d-learning-rate", type=float, metavar="LR")
    parser.add_argument("--n-critic", type=int, metavar="N", help="critic updates per G update (wgan)")
    parser.add_argument("--clip-value", type=float, metavar="C", help="critic weight clip (wgan)")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None, help="no flips/rotations")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None, help="fit() verbosity (default auto)")
    parser.set_defaults(func=run)


def run(args):
    from keras_sar2opt.training.run import train_experiment

    if args.pairs is not None and args.data is not None:
        raise Sar2OptError(f"Expected --pairs only without --data, received --data {args.data}")
    config = get_experiment(args.experiment).with_overrides(
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        seed=args.seed,
        l1_weight=args.l1_weight,
        n_critic=args.n_critic,
        clip_value=args.clip_value,
        augment=args.augment,
        g_learning_rate=args.g_learning_rate,
        d_learning_rate=args.d_learning_rate,
    )
    out = train_experiment(
        config,
        data=args.data,
        out=args.out,
        pairs=DEFAULT_PAIRS if args.pairs is None else args.pairs,
        precision=args.precision,
        strategy=args.strategy,
        steps_per_epoch=args.steps_per_epoch,
        sample_every=args.sample_every,
        tensorboard=args.tensorboard,
        early_stopping=args.early_stopping,
        on_bad=args.on_bad,
        verbose="auto" if args.verbose is None else args.verbose,
    )
    print(f"sar2opt train: run folder {out}")
    return 0


def main_for(experiment, argv=None):
    """`sar2opt train --experiment EXPERIMENT` with the command line's other arguments (train_*.py)."""
    from keras_sar2opt.cli import main

    return main(["train", "--experiment", experiment, *(sys.argv[1:] if argv is None else argv)])
