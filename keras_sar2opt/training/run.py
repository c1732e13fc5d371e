"""One training run of an experiment (report §1–§3): fit() with callbacks into its run folder.

A run folder (keras_sar2opt.runs) holds config.json (every setting, the split, versions, seed),
split.json, history.csv (one row per epoch), checkpoints/ (last.keras, last.prev.keras and
best.keras by val_g_l1, each the AdversarialModel with its optimiser state, verified by
checkpoints/manifest.json), generator.keras (the final generator alone), samples/epoch_NNN.png
grids and the curve PNGs; every file is written atomically. Without data, the synthetic `qxslab`
preset is written into `data/` first.

A run has two phases: `prepare_run` (keras_sar2opt.training.prepare) checks it and finds its
pairs and split; `fit_run` trains it. `train_experiment` does both and writes the generator.
Running again into a folder whose run was interrupted (or `resume_run`) continues after the
last completed epoch with the model, optimiser and random-seed states and the same data order
(`training_batches`), so with `deterministic=True` it ends with the weights of an uninterrupted run.
"""

import dataclasses
import functools
import logging
import math
import os
import platform
import re
import shlex
import shutil
import sys
import warnings
from pathlib import Path

from keras_sar2opt import files
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import get_experiment
from keras_sar2opt.runs import DEFAULT_PAIRS, SYNTHETIC_PRESET, RunFolder, RunOptions
from keras_sar2opt.text import counted
from keras_sar2opt.training.prepare import check_same_run, prepare_run

logger = logging.getLogger(__name__)

SAMPLE_PAIRS = 4
MONITOR = "val_g_l1"  # the checkpoint and early-stopping criterion: held-out reconstruction error


def float32_outputs(network):
    """Under a mixed policy, compute the network's output layers in float32.

    Keras's mixed-precision guidance: the generated image and D's scores reach the losses at full
    precision, and the saved generator returns float32 images.
    """
    import keras

    if keras.mixed_precision.global_policy().compute_dtype != "float32":
        for name in network.output_names:
            network.get_layer(name).dtype_policy = "float32"
    return network


def build_adversarial_model(config, networks=None):
    """The experiment's generator and discriminator in a compiled AdversarialModel.

    networks: None to build fresh ones by name, or a callable returning (generator, discriminator).
    """
    from keras_sar2opt.models import build_model
    from keras_sar2opt.training.adversarial import AdversarialModel

    if networks is None:
        generator = build_model(config.generator, image_size=config.image_size)
        discriminator = build_model(config.discriminator, image_size=config.image_size)
    else:
        generator, discriminator = networks()
    model = AdversarialModel(
        float32_outputs(generator),
        float32_outputs(discriminator),
        conditional=config.conditional,
        name=f"{config.name}_gan",
    )
    model.compile(**config.compile_kwargs())
    return model


def versions():
    """Versions of Python and the libraries of the run (TensorFlow when it is loaded)."""
    import keras
    import numpy

    import keras_sar2opt

    tensorflow = sys.modules.get("tensorflow")
    return {
        "python": platform.python_version(),
        "tensorflow": getattr(tensorflow, "__version__", None),
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "keras_sar2opt": keras_sar2opt.__version__,
        "keras_backend": keras.backend.backend(),
    }


def run_settings(run):
    """What config.json records of a PreparedRun: every setting, the data and its split, the seed and the versions."""
    from keras_sar2opt.data.io import inspect_image

    tile = inspect_image(run.split["train"][0].sar)
    return {
        "experiment": run.config.to_dict(),
        "run": {
            "data": os.fspath(Path(run.pair_set.root).resolve()),
            "layout": run.pair_set.layout,
            "tile_size": [tile.height, tile.width],  # of the first training pair, before its resize
            "synthetic": run.synthetic,
            "pairs": {name: len(pairs) for name, pairs in run.split.items()},
            "skipped": len(run.pair_set.skipped),
            "replicas": run.replicas,
            "monitor": MONITOR,
            **run.options.to_config(),
            "out": os.fspath(run.folder.path.resolve()),
            "command": sys.orig_argv,  # with the interpreter, so it can be run again as it stands
            "cwd": os.getcwd(),  # where its relative paths start
        },
        "seed": run.config.seed,
        "split": {name: [pair.name for pair in pairs] for name, pairs in run.split.items()},
        "versions": versions(),
    }


def check_free_space(folder, model, store):
    """Raise Sar2OptError when the disk of `folder` lacks room for the run's checkpoints.

    Needed: `COPIES` checkpoints (the model's and both optimisers' variables each) and
    generator.keras, less the checkpoint files a resumed run replaces.
    """
    from keras_sar2opt.training.checkpoints import COPIES, state_bytes

    needed = COPIES * state_bytes(model) + 4 * model.generator.count_params() - store.bytes_on_disk()
    free = shutil.disk_usage(files.existing_ancestor(folder.path)).free
    if free < needed:
        raise Sar2OptError(
            f"Expected {needed / 1e9:.2f} GB free for the checkpoints of {folder.path}, "
            f"received {free / 1e9:.2f} GB free"
        )


def make_callbacks(folder, store, sample_batch, options, history):
    """The run's callbacks, in the order they run at an epoch's end; fit()'s `verbose` adds the
    progress bar.

    NonFiniteGuard (stops at a NaN/inf loss before anything of that epoch is saved), HistoryCSV,
    EpochCheckpoint (last and best by val_g_l1 into `store`, every `options.checkpoint_every`
    epochs), SampleGrid, and optionally
    TensorBoard and early stopping on val_g_l1. `history`: the rows of the epochs already trained.
    """
    import keras

    from keras_sar2opt.training.callbacks import (
        EpochCheckpoint,
        HistoryCSV,
        NonFiniteGuard,
        ResumableEarlyStopping,
        SampleGrid,
    )

    past = [row[MONITOR] for row in history if MONITOR in row]
    callbacks = [
        NonFiniteGuard(store.describe_last),
        HistoryCSV(folder.history_path, history),
        EpochCheckpoint(store, MONITOR, best=min(past, default=math.inf), every=options.checkpoint_every),
        SampleGrid(*sample_batch, folder.samples, every=options.sample_every),
    ]
    if options.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.fspath(folder.logs)))
    if options.early_stopping:
        callbacks.append(ResumableEarlyStopping(past, monitor=MONITOR, patience=options.early_stopping))
    return callbacks


def fit_verbosity(verbose):
    """fit()'s `verbose`, with "auto" a progress bar on a terminal and one line per epoch otherwise:
    a log file would get a line with ANSI colour codes at every update of the bar."""
    if verbose != "auto":
        return verbose
    return 1 if sys.stdout.isatty() else 2


def reading_data(function, *args, **kwargs):
    """function(*args, **kwargs), turning a data error raised inside tf.data (a file that went bad
    after the up-front scan) into the one-line Sar2OptError it carries."""
    import tensorflow as tf

    try:
        return function(*args, **kwargs)
    except tf.errors.OpError as error:
        found = re.search(r"Sar2OptError: (.+)", error.message)
        if found is None:
            raise
        raise Sar2OptError(found.group(1).strip()) from None


def validation_pairs(run):
    """The validation pairs, cut to a number every batch of which splits evenly between replicas:
    a multiple of the replicas (tf.distribute gives each replica its part of a short last batch),
    or on a multi-process JAX run, where each process feeds an equal part, of the batch size."""
    import keras

    from keras_sar2opt.training.distribute import worker_position

    pairs = run.split["val"]
    multiprocess = keras.backend.backend() == "jax" and worker_position(run.strategy)[1] > 1
    parts, unit = (run.config.batch_size, "--batch-size") if multiprocess else (run.replicas, "the replicas")
    if len(pairs) < parts:
        raise Sar2OptError(f"Expected at least {parts} validation pairs ({unit}), received {len(pairs)}")
    return pairs[: len(pairs) - len(pairs) % parts]


def _fit(run, model, store, done, history, verbose):
    """fit() the epochs after `done`; returns (epochs trained in all, whether early stopping ended it)."""
    import keras

    from keras_sar2opt.data import make_dataset
    from keras_sar2opt.data.pipeline import training_batches
    from keras_sar2opt.training.callbacks import HistoryCSV
    from keras_sar2opt.training.distribute import worker_position
    from keras_sar2opt.training.multiworker import collectively, fit_across_workers

    config, options = run.config, run.options
    steps = options.steps_per_epoch or len(run.split["train"]) // config.batch_size
    reading = {
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "sar_options": options.sar_options,
        "optical_options": options.optical_options,
    }
    train = training_batches(
        run.split["train"], seed=config.seed, augment=config.augment, first_batch=done * steps, **reading
    )
    val = make_dataset(validation_pairs(run), training=False, seed=config.seed, **reading)
    samples = make_dataset(run.split["val"][:SAMPLE_PAIRS], training=False, **reading)
    sample_batch = [keras.ops.convert_to_numpy(images) for images in reading_data(next, iter(samples))]
    callbacks = make_callbacks(run.folder, store, sample_batch, options, history)
    fit = {"epochs": config.epochs, "initial_epoch": done, "callbacks": callbacks, "verbose": fit_verbosity(verbose)}
    history_csv = next(c for c in callbacks if isinstance(c, HistoryCSV))
    if keras.backend.backend() == "tensorflow" and worker_position(run.strategy)[1] > 1:
        reading_data(fit_across_workers, model, run.strategy, train, val, steps=steps, **fit)  # keras#20585
    else:  # the stream shuffles itself, seeded by position
        fitting = functools.partial(model.fit, train, validation_data=val, steps_per_epoch=steps, shuffle=False, **fit)
        with warnings.catch_warnings():
            # The training stream never ends; Keras's dataset sharded between JAX processes has no known
            # length, and Keras says the input "ran out" when each validation reaches its end.
            warnings.filterwarnings("ignore", "Your input ran out of data", UserWarning)
            collectively(run.strategy, lambda: f"training epoch {len(history_csv.rows) + 1}", reading_data, fitting)
    trained = history_csv.rows
    stopped = any(isinstance(c, keras.callbacks.EarlyStopping) and c.stopped_epoch for c in callbacks)
    return len(trained), stopped


def fit_run(run, networks=None, extra_settings=None, verbose="auto"):
    """Train a PreparedRun into its folder; returns the trained AdversarialModel, whose generator
    the caller writes (`save_generator`).

    networks: a callable returning the (generator, discriminator) to train, called in the run's
    precision and strategy scope (default: fresh networks named by the experiment; an experiment
    with `config.pretrained` needs it, see keras_sar2opt.finetune). extra_settings: more top-level
    entries of config.json, which a resumed run must share. A rerun of an interrupted run resumes
    after its last completed epoch, from the newest checkpoint that verifies; a rerun of a
    finished one trains nothing. A NaN or infinite loss stops the run with a Sar2OptError naming
    the epoch and step.
    """
    import keras

    from keras_sar2opt.data import save_skipped, save_split
    from keras_sar2opt.data.loading import warn_about_scaling
    from keras_sar2opt.plots import plot_run_curves, read_history
    from keras_sar2opt.training.checkpoints import CheckpointStore, state_variables
    from keras_sar2opt.training.distribute import dtype_policy, enable_determinism, warn_if_bfloat16_is_emulated
    from keras_sar2opt.training.multiworker import restore_on_chief, share_chief_state

    config, options, folder = run.config, run.options, run.folder
    if config.pretrained and networks is None:
        raise Sar2OptError(
            f"Expected the pre-trained generator of {config.name!r} (keras_sar2opt.finetune; to resume, rerun "
            "its train_finetune_*.py command with the same --output), received none"
        )
    store = CheckpointStore(folder.checkpoints)
    if store.read():
        check_same_run(folder, config, options, extra_settings)
    if options.deterministic:
        enable_determinism()
    warn_if_bfloat16_is_emulated(options.precision)
    with dtype_policy(options.precision), run.strategy.scope():
        keras.utils.set_random_seed(config.seed)
        model = build_adversarial_model(config, networks)
        check_free_space(folder, model, store)
        run.find_pairs()
        split_counts = ", ".join(f"{len(pairs)} {name}" for name, pairs in run.split.items())
        print(f"Data: {run.pair_set.describe()}; split {split_counts}")
        warn_about_scaling(run.split["train"], options.sar_options, options.optical_options)
        files.check_writable(folder.path, "--output", create=True)
        save_split(run.split, folder.split_path)
        if run.pair_set.skipped:
            save_skipped(run.pair_set, folder.skipped_path)
        folder.write_config({**run_settings(run), **(extra_settings or {})})

    # Outside the strategy's scope: loading makes variables, which a multi-worker strategy creates
    # collectively, and only the chief loads (it then shares the checkpoint).
    checkpoint = store.latest() if store.directory.is_dir() else None
    done = 0
    if checkpoint is not None:
        restore_on_chief(run.strategy, state_variables(model), functools.partial(store.restore, model, checkpoint))
        done = checkpoint.epoch
    stopped_early = bool(store.finished and store.finished["stopped_early"])
    with dtype_policy(options.precision), run.strategy.scope():
        done, stopped_early = share_chief_state(run.strategy, state_variables(model), done, stopped_early)
        history = folder.history_rows(done)
        if done < config.epochs and not stopped_early:
            if checkpoint is not None:
                logger.warning(f"Resuming {folder.path} after epoch {done} of {config.epochs} from {checkpoint.path}")
            trained, stopped = _fit(run, model, store, done, history, verbose)
            store.mark_finished(trained, stopped_early=stopped)
        else:
            logger.warning(f"{folder.path} holds a finished run of {counted(done, 'epoch')}: nothing to train")
    plot_run_curves(read_history(folder.history_path), folder.path, title=f"{config.name} ({config.section})")
    return model


def save_generator(generator, folder):
    """Write the final generator of a run as its generator.keras (atomically)."""
    with files.atomic_path(RunFolder(folder).generator_path) as temporary:
        generator.save(temporary)


def train_experiment(config, data=None, out=None, options=None, *, verbose="auto", **overrides):
    """Train the experiment `config` (an ExperimentConfig) and write its run folder; returns its Path.

    data: a dataset folder or CSV, or None for synthetic `qxslab` pairs at the experiment's image
    size. out: the run folder (default runs/<name>); rerunning into a folder whose run was
    interrupted resumes it (the settings must be the same; `config.epochs` may grow). options: a
    RunOptions, with `overrides` replacing its fields (e.g. `steps_per_epoch=2`).
    """
    options = dataclasses.replace(options or RunOptions(), **overrides)
    run = prepare_run(config, data, out, options)
    model = fit_run(run, verbose=verbose)
    save_generator(model.generator, run.folder)
    return run.folder.path


def experiment_from_dict(recorded):
    """The ExperimentConfig that `config.to_dict()` recorded (nested optimiser settings included)."""
    base = get_experiment(recorded.get("name") if isinstance(recorded, dict) else None)
    values = {}
    for field in dataclasses.fields(base):
        if field.name in recorded:
            current, value = getattr(base, field.name), recorded[field.name]
            if dataclasses.is_dataclass(current) and isinstance(value, dict):
                value = type(current)(**value)
            elif isinstance(current, tuple) and isinstance(value, list):
                value = tuple(value)
            values[field.name] = value
    return dataclasses.replace(base, **values)


def resume_run(run_dir, epochs=None, verbose="auto", experiment=None, data=None):
    """Continue the run in `run_dir` with the settings of its config.json; returns its Path.

    epochs: a new total number of epochs (to train a finished run further), or None.
    experiment: when given, the experiment name the run must have. data: where the run's dataset
    is now, when it moved (default: the recorded one).
    """
    folder = RunFolder(run_dir)
    if not folder.exists():
        raise Sar2OptError(f"Expected a run folder holding config.json to resume, received {folder.path}")
    recorded = folder.read_config("config.json of the run to resume")
    path = folder.config_path
    try:
        config = experiment_from_dict(recorded["experiment"])
        run = recorded["run"]
        synthetic = run.get("synthetic")
        recorded_data, pairs = (None, synthetic["pairs"]) if synthetic else (run["data"], DEFAULT_PAIRS)
        preset = synthetic.get("preset", SYNTHETIC_PRESET) if synthetic else SYNTHETIC_PRESET
        options = RunOptions.from_config(run, pairs=pairs, preset=preset)
    except (KeyError, TypeError) as error:
        raise Sar2OptError(f"Expected the settings of a run in {path}, received no {error}") from None
    if experiment is not None and experiment != config.name:
        raise Sar2OptError(f"Expected a run of {experiment!r} to resume, received {path} of {config.name!r}")
    if config.pretrained:
        command, cwd = run.get("command"), run.get("cwd")
        where = f"cd {shlex.quote(cwd)} && " if isinstance(cwd, str) else ""
        raise Sar2OptError(
            f"Expected a run that --resume continues, received the fine-tuning run {folder.path}, which resumes by "
            "rerunning its command" + (f": {where}{shlex.join(command)}" if isinstance(command, list) else "")
        )
    if data is not None and synthetic:
        raise Sar2OptError(f"Expected no --data to resume {folder.path}, received {data}: it trains on synthetic pairs")
    if data is None and recorded_data is not None and not Path(recorded_data).exists():
        raise Sar2OptError(
            f"Expected the run's data {recorded_data} (recorded in {path}), received nothing there; "
            "if it moved, pass --data NEW_PATH beside --resume"
        )
    if epochs is not None:
        config = config.with_overrides(epochs=epochs)
    return train_experiment(config, recorded_data if data is None else data, folder.path, options, verbose=verbose)
