"""One training run of an experiment (report §1–§3): data, models, fit() with callbacks, and its run folder.

A run folder holds config.json (every setting, the split, versions, seed), split.json,
history.csv, checkpoints/last.keras and checkpoints/best.keras (the AdversarialModel, best by
val_g_l1), generator.keras (the final generator alone), samples/epoch_NNN.png grids and the
curve PNGs. Without data, the synthetic `qxslab` preset is written into `data/` first.
"""

import contextlib
import functools
import importlib.util
import json
import os
import platform
import shutil
import sys
from pathlib import Path

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import DEFAULT_PAIRS, PRECISIONS, STRATEGIES

SYNTHETIC_PRESET = "qxslab"
SAMPLE_PAIRS = 4
MONITOR = "val_g_l1"  # the checkpoint and early-stopping criterion: held-out reconstruction error


def _check_choice(option, value, choices):
    if value not in choices:
        raise Sar2OptError(f"Expected {option} to be one of {', '.join(map(str, choices))}, received {value!r}")


def _check_count(option, value, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Sar2OptError(f"Expected {option} to be a positive integer, received {value!r}")


def check_run_options(
    config, *, data, pairs, precision, strategy, steps_per_epoch, sample_every, tensorboard, early_stopping, on_bad
):
    """Raise Sar2OptError, naming the option, for any setting a run cannot start with."""
    from keras_sar2opt.data import ON_BAD
    from keras_sar2opt.models import check_model_name
    from keras_sar2opt.training.losses import check_adversarial_loss

    check_model_name(config.generator)
    check_model_name(config.discriminator)
    check_adversarial_loss(config.adversarial_loss)
    for option in ("epochs", "batch_size", "image_size"):
        _check_count(option.replace("_", "-"), getattr(config, option))
    _check_count("pairs", pairs)
    _check_count("steps-per-epoch", steps_per_epoch, allow_none=True)
    _check_count("sample-every", sample_every)
    _check_count("early-stopping", early_stopping, allow_none=True)
    _check_choice("precision", precision, PRECISIONS)
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("on-bad", on_bad, ON_BAD)
    _check_choice("tensorboard", tensorboard, (False, True))
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise Sar2OptError("Expected the tensorboard package for --tensorboard, received none installed")
    if data is not None and not Path(data).exists():
        raise Sar2OptError(f"Expected --data to be an existing dataset folder or CSV, received {data}")
    for option, optimizer in (("g-learning-rate", config.g_optimizer), ("d-learning-rate", config.d_optimizer)):
        if not optimizer.learning_rate > 0:
            raise Sar2OptError(f"Expected {option} to be positive, received {optimizer.learning_rate!r}")
    if config.adversarial_loss != "wasserstein" and (config.n_critic != 1 or config.clip_value is not None):
        raise Sar2OptError(
            f"Expected n-critic and clip-value only with a wasserstein experiment, received them for {config.name!r}"
        )


@functools.cache
def make_strategy(name):
    """The tf.distribute strategy named by `--strategy` (none: the default, single-device one).

    One instance per name and process: runs in one process share it, since the collective
    operations of a second MirroredStrategy over the same devices clash with the first's.
    """
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":  # the cluster comes from the TF_CONFIG environment variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


@contextlib.contextmanager
def _dtype_policy(precision):
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def prepare_data(data, out, *, image_size, pairs, seed, on_bad):
    """The PairSet to train on: `data`, or the synthetic qxslab preset written into `out/data`.

    The synthetic pairs are reused when `out/data` already holds a complete set with the same
    settings (its synthetic.json, written last), and rewritten otherwise.
    """
    from keras_sar2opt.data import find_pairs

    if data is not None:
        return find_pairs(data, on_bad=on_bad), None
    from keras_sar2opt.data.synthetic import write_synthetic

    synthetic = {"preset": SYNTHETIC_PRESET, "pairs": pairs, "size": image_size, "seed": seed}
    root = out / "data" / "{preset}-{size}px-{pairs}pairs-seed{seed}".format(**synthetic)
    info = root / "synthetic.json"
    written = json.loads(info.read_text()) if info.is_file() else {}
    if any(written.get(key) != synthetic[key] for key in ("pairs", "size", "seed")):
        shutil.rmtree(root, ignore_errors=True)  # an interrupted write: start this folder again
        write_synthetic(root, SYNTHETIC_PRESET, pairs, layout="qxslab", size=image_size, seed=seed)
    return find_pairs(root, on_bad=on_bad), synthetic


def make_split(pair_set, seed, batch_size, replicas=1):
    """The dataset's own split (a SAR2Optical split.json) or a seeded 80/10/10 one.

    Training needs at least one full batch (the last partial one is dropped) and validation at
    least one pair per replica.
    """
    from keras_sar2opt.data import split_pairs

    split = pair_set.split or split_pairs(pair_set.pairs, seed=seed)
    if len(split.get("train", [])) < batch_size or len(split.get("val", [])) < replicas:
        counts = ", ".join(f"{name} {len(split.get(name, []))}" for name in ("train", "val", "test"))
        raise Sar2OptError(
            f"Expected at least {batch_size} training pairs (the batch size) and {replicas} validation "
            f"pair(s) in {pair_set.root}, received {counts}"
        )
    return split


def _whole_replicas(pairs, replicas):
    """The first pairs, a multiple of `replicas` of them, so that every batch splits evenly.

    (fit() builds a distributed model from the first batch, which fails on unequal parts.)
    """
    return pairs[: len(pairs) - len(pairs) % replicas]


def _float32_outputs(network):
    """Under a mixed policy, compute the network's output layers in float32.

    Keras's mixed-precision guidance: the generated image and D's scores reach the losses at full
    precision, and the saved generator returns float32 images.
    """
    import keras

    if keras.mixed_precision.global_policy().compute_dtype != "float32":
        for name in network.output_names:
            network.get_layer(name).dtype_policy = "float32"
    return network


def build_adversarial_model(config):
    """The experiment's generator and discriminator in a compiled AdversarialModel."""
    from keras_sar2opt.models import build_model
    from keras_sar2opt.training.adversarial import AdversarialModel

    model = AdversarialModel(
        _float32_outputs(build_model(config.generator, image_size=config.image_size)),
        _float32_outputs(build_model(config.discriminator, image_size=config.image_size)),
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


def run_settings(config, pair_set, split, synthetic, distribution, out, **options):
    """What config.json records: every setting, the data and its split, the seed and the versions."""
    return {
        "experiment": config.to_dict(),
        "run": {
            "data": os.fspath(Path(pair_set.root).resolve()),
            "layout": pair_set.layout,
            "synthetic": synthetic,
            "pairs": {name: len(pairs) for name, pairs in split.items()},
            "skipped": len(pair_set.skipped),
            "replicas": distribution.num_replicas_in_sync,
            "monitor": MONITOR,
            **options,
            "out": os.fspath(out.resolve()),
            "command": sys.argv,
        },
        "seed": config.seed,
        "split": {name: [pair.name for pair in pairs] for name, pairs in split.items()},
        "versions": versions(),
    }


def make_callbacks(out, sample_batch, *, sample_every, tensorboard, early_stopping, resuming):
    """The run's callbacks; fit()'s `verbose` adds the progress bar.

    BackupAndRestore (resumes an interrupted run), CSVLogger, ModelCheckpoint last and best (by
    val_g_l1), SampleGrid, and optionally TensorBoard and EarlyStopping on val_g_l1.
    """
    import keras

    from keras_sar2opt.training.callbacks import SampleGrid

    checkpoints = out / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(os.fspath(out / "backup")),
        keras.callbacks.CSVLogger(os.fspath(out / "history.csv"), append=resuming),
        keras.callbacks.ModelCheckpoint(os.fspath(checkpoints / "last.keras")),
        keras.callbacks.ModelCheckpoint(
            os.fspath(checkpoints / "best.keras"), monitor=MONITOR, mode="min", save_best_only=True
        ),
        SampleGrid(*sample_batch, out / "samples", every=sample_every),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.fspath(out / "logs")))
    if early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="min", patience=early_stopping))
    return callbacks


def train_experiment(
    config,
    data=None,
    out=None,
    *,
    pairs=DEFAULT_PAIRS,
    precision="float32",
    strategy="none",
    steps_per_epoch=None,
    sample_every=5,
    tensorboard=False,
    early_stopping=None,
    on_bad="error",
    verbose="auto",
):
    """Train the experiment `config` (an ExperimentConfig) and write its run folder; returns its Path.

    data: a dataset folder (any layout `find_pairs` detects), or None for `pairs` synthetic
    `qxslab` pairs at the experiment's image size. out: the run folder (default runs/<name>);
    rerunning into a folder whose run was interrupted resumes it from its last epoch.
    precision: "float32" or "mixed_bfloat16". strategy: "none", "mirrored" or "multiworker"
    (batch_size is the global batch; losses are averaged over it). early_stopping: patience in
    epochs on val_g_l1, or None.
    """
    options = {
        "precision": precision,
        "strategy": strategy,
        "steps_per_epoch": steps_per_epoch,
        "sample_every": sample_every,
        "tensorboard": tensorboard,
        "early_stopping": early_stopping,
        "on_bad": on_bad,
    }
    check_run_options(config, data=data, pairs=pairs, **options)
    distribution = make_strategy(strategy)  # first: multi-worker strategies precede other TF work
    replicas = distribution.num_replicas_in_sync
    if config.batch_size % replicas:
        raise Sar2OptError(
            f"Expected --batch-size to be a multiple of the {replicas} replicas, received {config.batch_size}"
        )
    out = Path(out if out is not None else Path("runs") / config.name)
    if not _is_chief(distribution):  # each worker trains; only the chief writes the run folder
        resolver = distribution.cluster_resolver
        out = out / "workers" / f"{resolver.task_type}-{resolver.task_id}"

    import keras

    from keras_sar2opt.data import make_dataset, save_skipped, save_split
    from keras_sar2opt.reports.plots import plot_run_curves, read_history

    with _dtype_policy(precision), distribution.scope():
        keras.utils.set_random_seed(config.seed)
        model = build_adversarial_model(config)  # before the data: a bad image size fails fast

        pair_set, synthetic = prepare_data(
            data, out, image_size=config.image_size, pairs=pairs, seed=config.seed, on_bad=on_bad
        )
        split = make_split(pair_set, config.seed, config.batch_size, replicas)
        out.mkdir(parents=True, exist_ok=True)
        save_split(split, out / "split.json")
        if pair_set.skipped:
            save_skipped(pair_set, out / "skipped.csv")
        settings = run_settings(config, pair_set, split, synthetic, distribution, out, **options)
        (out / "config.json").write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")

        dataset_options = {"image_size": config.image_size, "batch_size": config.batch_size, "seed": config.seed}
        train = make_dataset(split["train"], training=True, augment=config.augment, **dataset_options)
        if steps_per_epoch:
            train = train.repeat()
        val = make_dataset(_whole_replicas(split["val"], replicas), training=False, **dataset_options)
        sample_batch = next(iter(make_dataset(split["val"][:SAMPLE_PAIRS], training=False, **dataset_options)))
        callbacks = make_callbacks(
            out,
            [keras.ops.convert_to_numpy(images) for images in sample_batch],
            sample_every=sample_every,
            tensorboard=tensorboard,
            early_stopping=early_stopping,
            resuming=(out / "backup").is_dir(),
        )
        model.fit(
            train,
            validation_data=val,
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,  # the training dataset shuffles itself, seeded
            verbose=verbose,
        )
        model.generator.save(out / "generator.keras")
    plot_run_curves(read_history(out / "history.csv"), out, title=f"{config.name} ({config.section})")
    return out

