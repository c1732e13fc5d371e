"""`sar2opt train`: train one of the report's experiments (§1–§4) and write its run folder."""

import argparse
import dataclasses
import functools
import textwrap

from keras_sar2opt.commands.options import (
    add_optical_scaling_options,
    add_sar_scaling_options,
    add_weights_dir_option,
    optical_scaling,
    sar_scaling,
)
from keras_sar2opt.errors import Sar2OptError, UsageError
from keras_sar2opt.experiments import DEFAULT_PRETRAIN_EPOCHS, EXPERIMENTS, get_experiment
from keras_sar2opt.runs import ON_BAD, PRECISIONS, STRATEGIES, RunOptions

DEFAULTS = RunOptions()

FINETUNE_EXPERIMENTS = [name for name, config in EXPERIMENTS.items() if config.pretrained]
LORA_EXPERIMENTS = [name for name, config in EXPERIMENTS.items() if config.lora_targets]
LORA_DEFAULTS = EXPERIMENTS[LORA_EXPERIMENTS[0]]


def _defaults_table():
    """The experiments' own settings, for --help: what each option defaults to."""
    header = (
        f"  {'experiment':<14} {'section':<12} {'size':>4} {'epochs':>7} {'batch':>6} {'G lr':>9} {'D lr':>9} {'L1':>6}"
    )
    lines = ["defaults per experiment (* assumed: the report does not state it):", header]
    for name, config in EXPERIMENTS.items():
        cells = [
            f"{value}*" if field in config.assumed else f"{value} "
            for field, value in (
                ("epochs", config.epochs),
                ("batch_size", config.batch_size),
                ("g_optimizer", f"{config.g_optimizer.learning_rate:g}"),
                ("d_optimizer", f"{config.d_optimizer.learning_rate:g}"),
                ("l1_weight", f"{config.l1_weight:g}"),
            )
        ]
        epochs, batch, g_lr, d_lr, l1 = cells
        lines.append(
            f"  {name:<14} {config.section:<12} {config.image_size:>4} "
            f"{epochs:>7} {batch:>6} {g_lr:>9} {d_lr:>9} {l1:>6}"
        )
    return "\n".join(lines)


def register(subparsers):
    parser = subparsers.add_parser(
        "train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_defaults_table(),
        help="train an experiment (scratch, patchgan, wgan, ...) and write a run folder",
        description=textwrap.fill(
            "Train one of the report's experiments. Without --data it trains on the built-in synthetic "
            "qxslab preset, written into the run folder first. Rerunning the same command (or --resume "
            "RUN_DIR) after an interruption continues after the last completed epoch."
        ),
    )
    parser.add_argument("--experiment", choices=list(EXPERIMENTS), help="the named configuration")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR with the settings of its config.json (--data: where its dataset is now, "
        "if it moved; fine-tuning runs: rerun their command)",
    )
    parser.add_argument(
        "--data", metavar="PATH", help="dataset: QXSLAB-SAROPT, SEN1-2, SAR2Optical, two folders or a CSV"
    )
    parser.add_argument(
        "-o",
        "--output",
        "--out",
        dest="out",
        metavar="RUN_DIR",
        help="run folder (default runs/EXPERIMENT); resumes if interrupted",
    )
    parser.add_argument(
        "--split-group",
        metavar="REGEX",
        help="split by area: the regular expression's first group in a pair's name names its scene, and "
        r"whole scenes go to train, val or test (e.g. '(.*)_p\d+$' for SEN1-2's ROI scenes)",
    )
    parser.add_argument("--epochs", type=int, metavar="N")
    parser.add_argument("--batch-size", type=int, metavar="N", help="global batch size")
    parser.add_argument("--image-size", type=int, metavar="N")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of weights, split and data order (default 0)")
    parser.add_argument("--pairs", type=int, metavar="N", help=f"synthetic pairs, without --data ({DEFAULTS.pairs})")
    parser.add_argument("--precision", choices=PRECISIONS, help=f"(default {DEFAULTS.precision})")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="data parallelism: tf.distribute, or keras.distribution.DataParallel on JAX (default "
        f"{DEFAULTS.strategy})",
    )
    processes = parser.add_argument_group(
        "JAX across processes (--strategy mirrored; docs/distributed.md; TensorFlow reads TF_CONFIG or Slurm)"
    )
    processes.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="process 0's address: join a multi-process job (default KERAS_DISTRIBUTION_JOB_ADDRESSES)",
    )
    processes.add_argument(
        "--num-processes", type=int, metavar="N", help="processes in the job (KERAS_DISTRIBUTION_NUM_PROCESSES)"
    )
    processes.add_argument(
        "--process-id", type=int, metavar="I", help="this process, 0 to N-1 (KERAS_DISTRIBUTION_PROCESS_ID)"
    )
    parser.add_argument("--steps-per-epoch", type=int, metavar="N", help="batches per epoch (the data repeats)")
    parser.add_argument(
        "--sample-every", type=int, metavar="N", help=f"sample grid every N epochs (default {DEFAULTS.sample_every})"
    )
    parser.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop when val_g_l1 stalls")
    parser.add_argument("--tensorboard", action="store_true", default=None, help="also write TensorBoard logs")
    parser.add_argument(
        "--on-bad", choices=ON_BAD, help=f"bad data pairs: stop (error) or skip (default {DEFAULTS.on_bad})"
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic TensorFlow ops: an interrupted and resumed run ends with the same weights",
    )
    parser.add_argument("--l1-weight", type=float, metavar="LAMBDA")
    parser.add_argument("--g-learning-rate", type=float, metavar="LR")
    parser.add_argument("--d-learning-rate", type=float, metavar="LR")
    parser.add_argument(
        "--n-critic", type=int, metavar="N", help=f"critic updates per G update (wgan: {EXPERIMENTS['wgan'].n_critic})"
    )
    parser.add_argument(
        "--clip-value", type=float, metavar="C", help=f"critic weight clip (wgan: {EXPERIMENTS['wgan'].clip_value:g})"
    )
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None, help="no flips/rotations")
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="fit() verbosity: 0 silent, 1 progress bar, 2 a line per epoch (default: 1 on a terminal, else 2)",
    )
    add_sar_scaling_options(parser)
    add_optical_scaling_options(parser)
    finetune = parser.add_argument_group(f"fine-tuning ({', '.join(FINETUNE_EXPERIMENTS)}; report §4)")
    finetune.add_argument(
        "--generator",
        metavar="G",
        help="pre-trained generator: .keras, a SAR2Optical .pth/.safetensors, or preset:NAME (sar2opt presets) "
        "(required with --data; without both, a Pix2Pix pre-trained on the synthetic sentinel preset, cached)",
    )
    finetune.add_argument(
        "--discriminator",
        metavar="D",
        help="its discriminator, .keras/.pth/.safetensors or preset:NAME (default: a fresh PatchGAN)",
    )
    add_weights_dir_option(finetune)
    finetune.add_argument(
        "--cache", metavar="DIR", help="without --generator: folder of cached pre-training runs (default runs/cache)"
    )
    finetune.add_argument(
        "--pretrain-epochs",
        type=int,
        metavar="N",
        help=f"without --generator: epochs of the pre-training (default {DEFAULT_PRETRAIN_EPOCHS})",
    )
    lora = parser.add_argument_group(f"LoRA ({', '.join(LORA_EXPERIMENTS)}; report Table 7)")
    lora.add_argument("--rank", type=int, metavar="R", help=f"adapter rank (default {LORA_DEFAULTS.lora_rank})")
    lora.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        help=f"LoRA alpha: adapters are scaled by alpha / rank (default {LORA_DEFAULTS.lora_alpha:g})",
    )
    lora.add_argument(
        "--lora-dropout",
        type=float,
        metavar="P",
        help=f"dropout on the adapters' input (default {LORA_DEFAULTS.lora_dropout})",
    )
    lora.add_argument(
        "--targets",
        type=_names,
        metavar="NAMES",
        help=f"comma-separated convolutions or block prefixes (default {','.join(LORA_DEFAULTS.lora_targets)})",
    )
    lora.add_argument(
        "--also-train",
        type=_names,
        metavar="NAMES",
        help="comma-separated layers or block prefixes trained beside the adapters, e.g. dec8,head",
    )
    parser.set_defaults(func=run)


def _names(text):
    """A comma-separated list of layer names as a tuple."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer names, received {text!r}")
    return names


def _check_experiment_options(args):
    """Raise Sar2OptError for fine-tuning or LoRA options given to an experiment without them."""
    groups = (
        (FINETUNE_EXPERIMENTS, ("generator", "discriminator", "cache", "pretrain_epochs", "weights_dir")),
        (LORA_EXPERIMENTS, ("rank", "alpha", "lora_dropout", "targets", "also_train")),
    )
    for experiments, names in groups:
        given = ["--" + name.replace("_", "-") for name in names if getattr(args, name) is not None]
        if given and args.experiment not in experiments:
            raise Sar2OptError(
                f"Expected {', '.join(given)} only with --experiment {' or '.join(experiments)}, "
                f"received --experiment {args.experiment}"
            )


# Options that may accompany --resume; the others come from the run's config.json.
PROCESS_OPTIONS = ("coordinator", "num_processes", "process_id")
RESUME_OPTIONS = ("command", "func", "experiment", "resume", "epochs", "verbose", "data", *PROCESS_OPTIONS)


def _resume(args):
    from keras_sar2opt.training.run import resume_run

    given = [name for name, value in vars(args).items() if name not in RESUME_OPTIONS and value is not None]
    if given:
        spelled = {"augment": "--no-augment", "out": "--output"}
        flags = ", ".join(spelled.get(name, "--" + name.replace("_", "-")) for name in given)
        raise Sar2OptError(
            f"Expected only --epochs, --verbose and --data beside --resume (the run's config.json holds the rest), "
            f"received {flags}"
        )
    verbose = "auto" if args.verbose is None else args.verbose
    return resume_run(args.resume, epochs=args.epochs, verbose=verbose, experiment=args.experiment, data=args.data)


def run(args):
    from keras_sar2opt.training.distribute import start_processes

    start_processes(args.coordinator, args.num_processes, args.process_id)  # before any JAX computation
    if args.resume is not None:
        out = _resume(args)
        print(f"sar2opt train: run folder {out}")
        return 0
    if args.experiment is None:
        raise UsageError("Expected --experiment NAME or --resume RUN_DIR, received neither")
    if args.pairs is not None and args.data is not None:
        raise Sar2OptError(f"Expected --pairs only without --data, received --data {args.data}")
    _check_experiment_options(args)

    # The options given, by RunOptions' field names; checked here, before TensorFlow's import.
    given = {field.name: getattr(args, field.name, None) for field in dataclasses.fields(RunOptions)}
    given.update(sar_options=sar_scaling(args), optical_options=optical_scaling(args))
    options = RunOptions(**{name: value for name, value in given.items() if value is not None})
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
        lora_rank=args.rank,
        lora_alpha=args.alpha,
        lora_dropout=args.lora_dropout,
        lora_targets=args.targets,
        also_train=args.also_train,
    )
    from keras_sar2opt.training.run import train_experiment

    train = train_experiment
    if config.pretrained:
        from keras_sar2opt.finetune import finetune

        train = functools.partial(
            finetune,
            generator=args.generator,
            discriminator=args.discriminator,
            cache=args.cache,
            pretrain_epochs=args.pretrain_epochs,
            weights_dir=args.weights_dir,
        )
    verbose = "auto" if args.verbose is None else args.verbose
    out = train(config, data=args.data, out=args.out, options=options, verbose=verbose)
    print(f"sar2opt train: run folder {out}")
    return 0
