"""One training run of an experiment (report §1–§3): data, models, fit() with callbacks, and its run folder.

A run folder holds config.json (every setting, the split, versions, seed), split.json,
history.csv (one row per epoch), checkpoints/ (last.keras, last.prev.keras and best.keras by
val_g_l1, each the AdversarialModel with its optimiser state, verified by
checkpoints/manifest.json), generator.keras (the final generator alone), samples/epoch_NNN.png
grids and the curve PNGs; every file is written atomically. Without data, the synthetic `qxslab`
preset is written into `data/` first.

Running again into a folder whose run was interrupted (or `resume_run`) continues after the
last completed epoch with the model, optimiser and random-seed states and the same data order
(`training_batches`), so with `deterministic=True` it ends with the weights of an uninterrupted run.
"""

import contextlib
import dataclasses
import functools
import importlib.util
import json
import logging
import os
import platform
import re
import shlex
import shutil
import sys
from pathlib import Path

from keras_sar2opt import files
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import DEFAULT_PAIRS, PRECISIONS, STRATEGIES, get_experiment
from keras_sar2opt.text import counted

logger = logging.getLogger(__name__)

SYNTHETIC_PRESET = "qxslab"
SAMPLE_PAIRS = 4
MONITOR = "val_g_l1"  # the checkpoint and early-stopping criterion: held-out reconstruction error
# train_experiment options recorded in config.json["run"] and taken from there by resume_run.
RUN_OPTIONS = (
    "precision",
    "strategy",
    "steps_per_epoch",
    "sample_every",
    "tensorboard",
    "early_stopping",
    "on_bad",
    "deterministic",
    "sar_options",
    "optical_options",
    "split_group",
)


def _named(name):
    """A setting with the `sar2opt train` option that sets it, for error messages: "batch_size (--batch-size)"."""
    return f"{name} (--{name.replace('_', '-')})"


def _check_choice(name, value, choices):
    if value not in choices:
        raise Sar2OptError(f"Expected {_named(name)} to be one of {', '.join(map(str, choices))}, received {value!r}")


def _check_count(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Sar2OptError(f"Expected {_named(name)} to be a positive integer, received {value!r}")


def check_run_options(
    config,
    *,
    data,
    pairs,
    precision="float32",
    strategy="none",
    steps_per_epoch=None,
    sample_every=5,
    tensorboard=False,
    early_stopping=None,
    on_bad="error",
    deterministic=False,
    sar_options=None,
    optical_options=None,
    split_group=None,
):
    """Raise Sar2OptError, naming the option, for any setting a run cannot start with (the
    defaults are train_experiment's). The networks built by name must take the image size; those
    of a fine-tuning experiment (`config.pretrained`) are checked by keras_sar2opt.finetune."""
    from keras_sar2opt.data import ON_BAD
    from keras_sar2opt.data.loading import check_reading_options
    from keras_sar2opt.data.splits import check_split_group
    from keras_sar2opt.models import check_model, check_model_name
    from keras_sar2opt.training.adversarial import check_loss_settings

    check_model_name(config.generator)
    check_model_name(config.discriminator)
    for name in ("epochs", "batch_size", "image_size"):
        _check_count(name, getattr(config, name))
    if not config.pretrained:
        check_model(config.generator, config.image_size)
        check_model(config.discriminator, config.image_size)
    wasserstein = config.adversarial_loss == "wasserstein"
    critic = {"n_critic": config.n_critic, "clip_value": config.clip_value} if wasserstein else {}
    check_loss_settings(config.adversarial_loss, config.l1_weight, **critic)  # as compile_kwargs() passes them
    _check_count("pairs", pairs)
    _check_count("steps_per_epoch", steps_per_epoch, allow_none=True)
    _check_count("sample_every", sample_every)
    _check_count("early_stopping", early_stopping, allow_none=True)
    _check_choice("precision", precision, PRECISIONS)
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("on_bad", on_bad, ON_BAD)
    _check_choice("tensorboard", tensorboard, (False, True))
    _check_choice("deterministic", deterministic, (False, True))
    check_reading_options(sar_options, optical_options)
    if split_group is not None:
        check_split_group(split_group)
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise Sar2OptError(
            "Expected the tensorboard package for --tensorboard, received none installed "
            '(pip install "keras_sar2opt[tensorboard]")'
        )
    if data is not None and not Path(data).exists():
        raise Sar2OptError(f"Expected --data to be an existing dataset folder or CSV, received {data}")
    for name, optimizer in (("g_learning_rate", config.g_optimizer), ("d_learning_rate", config.d_optimizer)):
        if not optimizer.learning_rate > 0:
            raise Sar2OptError(f"Expected {_named(name)} to be positive, received {optimizer.learning_rate!r}")
    if not wasserstein and (config.n_critic != 1 or config.clip_value is not None):
        raise Sar2OptError(
            f"Expected {_named('n_critic')} and {_named('clip_value')} only with a wasserstein experiment, "
            f"received them for {config.name!r}"
        )


class KerasDistribution:
    """A keras.distribution data-parallel layout with the part of tf.distribute's strategy
    interface a run uses (`scope()`, `num_replicas_in_sync`), for the JAX backend."""

    cluster_resolver = None  # one process: it is the chief

    def __init__(self, distribution=None):
        self.distribution = distribution
        self.num_replicas_in_sync = 1 if distribution is None else int(distribution.device_mesh.devices.size)

    def scope(self):
        return contextlib.nullcontext() if self.distribution is None else self.distribution.scope()


@functools.cache
def make_strategy(name):
    """The distribution named by `--strategy` (none: the default, single-device one).

    TensorFlow backend: a tf.distribute strategy. JAX backend: "mirrored" is
    keras.distribution.DataParallel over every local device (multi-worker runs are not supported).
    One instance per name and process: runs in one process share it, since the collective
    operations of a second MirroredStrategy over the same devices clash with the first's.
    """
    import keras

    if keras.backend.backend() == "jax":
        if name == "multiworker":
            raise Sar2OptError("Expected --strategy none or mirrored on the JAX backend, received multiworker")
        return KerasDistribution(keras.distribution.DataParallel() if name == "mirrored" else None)
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


def warn_if_bfloat16_is_emulated(precision):
    """Log a warning when mixed_bfloat16 would run on a CPU without bfloat16 instructions."""
    if precision != "mixed_bfloat16":
        return
    import keras

    from keras_sar2opt.hardware import native_bf16

    if keras.backend.backend() == "jax":
        import jax

        on_cpu = jax.default_backend() == "cpu"
    else:
        import tensorflow as tf

        on_cpu = not tf.config.list_physical_devices("GPU")
    if on_cpu and not native_bf16():
        logger.warning(
            "mixed_bfloat16 on a CPU without AVX-512 BF16 or AMX instructions: bfloat16 is emulated and "
            "trains several times slower than float32 (--precision float32)"
        )


@contextlib.contextmanager
def _dtype_policy(precision):
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def prepare_data(
    data, out, *, image_size, pairs, seed, on_bad, preset=SYNTHETIC_PRESET, optical_bands=None, sar_band=None
):
    """The PairSet to train on: `data`, or the synthetic `preset` (default qxslab) written into `out/data`.

    The synthetic pairs are reused when `out/data` already holds a complete set with the same
    settings (its synthetic.json, written last), and rewritten otherwise. Pairs are checked as
    `find_pairs` checks them, their images for `optical_bands` and `sar_band`.
    """
    from keras_sar2opt.data import find_pairs

    if data is not None:
        return find_pairs(data, on_bad=on_bad, optical_bands=optical_bands, sar_band=sar_band), None
    from keras_sar2opt.data.synthetic import get_preset, write_synthetic

    synthetic = {"preset": preset, "pairs": pairs, "size": image_size, "seed": seed}
    root = out / "data" / "{preset}-{size}px-{pairs}pairs-seed{seed}".format(**synthetic)
    info = root / "synthetic.json"
    try:
        written = json.loads(info.read_text())
    except (OSError, ValueError):  # none yet, or cut short
        written = {}
    if not isinstance(written, dict) or any(written.get(key) != synthetic[key] for key in ("pairs", "size", "seed")):
        shutil.rmtree(root, ignore_errors=True)  # an interrupted write: start this folder again
        write_synthetic(root, preset, pairs, layout=get_preset(preset).layout, size=image_size, seed=seed)
    return find_pairs(root, on_bad=on_bad, optical_bands=optical_bands, sar_band=sar_band), synthetic


def check_run_data(
    config, data=None, out=None, *, on_bad="error", sar_options=None, optical_options=None, split_group=None
):
    """(run folder, the PairSet of `data` or None) once the run folder is found writable and the
    pairs of `data` found and checked as train_experiment checks them (layout, files, bands, enough
    pairs for a batch unless the run folder holds a split to resume with; replicas are checked by
    train_experiment). For a caller with a long step before train_experiment, which takes the
    PairSet as `pair_set`."""
    out = run_folder(config, out)
    files.check_writable(out, "--output")
    if data is None:  # synthetic pairs, written into the run folder by train_experiment
        return out, None
    pair_set, _ = prepare_data(
        data,
        out,
        image_size=config.image_size,
        pairs=None,
        seed=config.seed,
        on_bad=on_bad,
        optical_bands=(optical_options or {}).get("bands"),
        sar_band=(sar_options or {}).get("band"),
    )
    if not (out / "split.json").is_file():
        make_split(pair_set, config.seed, config.batch_size, group=split_group)
    return out, pair_set


def make_split(pair_set, seed, batch_size, replicas=1, group=None):
    """The dataset's own split (a SAR2Optical split.json) or a seeded 80/10/10 one, by area when
    `group` (a `split_pairs` pattern) is given.

    Training needs at least one full batch (the last partial one is dropped) and validation at
    least one pair per replica.
    """
    from keras_sar2opt.data import split_pairs

    if group is not None and pair_set.split:
        raise Sar2OptError(f"Expected --split-group only for data without its own split.json, received {pair_set.root}")
    split = pair_set.split or split_pairs(pair_set.pairs, seed=seed, group=group)
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
        _float32_outputs(generator),
        _float32_outputs(discriminator),
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
    from keras_sar2opt.data.io import inspect_image

    tile = inspect_image(split["train"][0].sar)
    return {
        "experiment": config.to_dict(),
        "run": {
            "data": os.fspath(Path(pair_set.root).resolve()),
            "layout": pair_set.layout,
            "tile_size": [tile.height, tile.width],  # of the first training pair, before its resize
            "synthetic": synthetic,
            "pairs": {name: len(pairs) for name, pairs in split.items()},
            "skipped": len(pair_set.skipped),
            "replicas": distribution.num_replicas_in_sync,
            "monitor": MONITOR,
            **options,
            "out": os.fspath(out.resolve()),
            "command": sys.orig_argv,  # with the interpreter, so it can be run again as it stands
            "cwd": os.getcwd(),  # where its relative paths start
        },
        "seed": config.seed,
        "split": {name: [pair.name for pair in pairs] for name, pairs in split.items()},
        "versions": versions(),
    }


def run_folder(config, out=None):
    """The folder of a run of `config`: `out`, or runs/<experiment name>."""
    return Path(out if out is not None else Path("runs") / config.name)


def check_free_space(out, model, store):
    """Raise Sar2OptError when the disk of `out` lacks room for the run's checkpoints.

    Needed: `COPIES` checkpoints (the model's and both optimisers' variables each) and
    generator.keras, less the checkpoint files a resumed run replaces.
    """
    from keras_sar2opt.training.checkpoints import COPIES, state_bytes

    needed = COPIES * state_bytes(model) + 4 * model.generator.count_params() - store.bytes_on_disk()
    free = shutil.disk_usage(files.existing_ancestor(out)).free
    if free < needed:
        raise Sar2OptError(
            f"Expected {needed / 1e9:.2f} GB free for the checkpoints of {out}, received {free / 1e9:.2f} GB free"
        )


def enable_determinism():
    """Deterministic TensorFlow ops for the rest of this process (there is no way back).

    Seeds are set by train_experiment and the data pipeline is deterministic already (ordered
    parallel maps, stateless shuffles), so a run then gives the same weights each time.
    """
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


# Run options a resumed run must share with the recorded one, with the value a run recorded before
# the option existed.
RESUME_BINDING = {
    "steps_per_epoch": None,
    "precision": "float32",
    "sar_options": None,
    "optical_options": None,
    "split_group": None,
}


def check_same_run(out, config, options, extra_settings=None):
    """Raise Sar2OptError unless `out`'s config.json records the same experiment settings (the number
    of epochs may grow), the same `options` of RESUME_BINDING (steps per epoch, precision, SAR and
    optical scaling, split by area) and the same extra settings (a fine-tuning run's starting
    networks), so that a resumed run continues the same run."""
    path = out / "config.json"
    if not path.is_file():
        return
    recorded = files.read_json(path, "config.json of the run to resume")
    # A setting added to ExperimentConfig after the run was recorded counts as its default.
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    before = json.loads(json.dumps({**defaults, **recorded.get("experiment", {})}))
    now = json.loads(json.dumps(config.to_dict()))
    before.pop("epochs", None), now.pop("epochs", None)
    changed = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
    run = recorded.get("run", {})
    given = json.loads(json.dumps({key: options.get(key, default) for key, default in RESUME_BINDING.items()}))
    changed += [key for key, default in RESUME_BINDING.items() if run.get(key, default) != given[key]]
    for key, value in json.loads(json.dumps(extra_settings or {})).items():
        recorded_value = recorded.get(key)
        if isinstance(value, dict) and isinstance(recorded_value, dict):
            changed += [f"{key}.{name}" for name in value if recorded_value.get(name) != value[name]]
        elif recorded_value != value:
            changed.append(key)
    if changed:
        raise Sar2OptError(
            f"Expected the settings recorded in {path} to resume that run, received a different "
            f"{', '.join(changed)}; pass the same options, or another --output for a new run"
        )


def recorded_split(out, pair_set):
    """The split the run in `out` recorded in split.json, applied by name to the pairs found now: a
    resumed run keeps its split whatever was added to its data since. Data found elsewhere than the
    run's config.json records (moved, or another dataset with the same pair names) is warned about."""
    from keras_sar2opt.data.splits import split_of

    try:
        split = split_of(out / "split.json", pair_set)
    except Sar2OptError as error:
        raise Sar2OptError(f"{error}; pass the data of the run to resume, or another --output for a new run") from None
    config = out / "config.json"
    recorded = files.read_json(config, "config.json of the run to resume").get("run", {}) if config.is_file() else {}
    found = os.fspath(Path(pair_set.root).resolve())
    if isinstance(recorded, dict) and recorded.get("data") not in (None, found):
        logger.warning(f"Resuming {out} on the pairs of {found}; the run was trained on {recorded['data']}")
    return split


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
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise Sar2OptError(f"Expected a run folder holding config.json to resume, received {run_dir}")
    recorded = files.read_json(path, "config.json of the run to resume")
    try:
        config = experiment_from_dict(recorded["experiment"])
        run = recorded["run"]
        options = {key: run[key] for key in RUN_OPTIONS if key in run}
        synthetic = run.get("synthetic")
        recorded_data, pairs = (None, synthetic["pairs"]) if synthetic else (run["data"], DEFAULT_PAIRS)
        preset = synthetic.get("preset", SYNTHETIC_PRESET) if synthetic else SYNTHETIC_PRESET
    except (KeyError, TypeError) as error:
        raise Sar2OptError(f"Expected the settings of a run in {path}, received no {error}") from None
    if experiment is not None and experiment != config.name:
        raise Sar2OptError(f"Expected a run of {experiment!r} to resume, received {path} of {config.name!r}")
    if config.pretrained:
        command, cwd = run.get("command"), run.get("cwd")
        where = f"cd {shlex.quote(cwd)} && " if isinstance(cwd, str) else ""
        raise Sar2OptError(
            f"Expected a run that --resume continues, received the fine-tuning run {run_dir}, which resumes by "
            "rerunning its command" + (f": {where}{shlex.join(command)}" if isinstance(command, list) else "")
        )
    if data is not None and synthetic:
        raise Sar2OptError(f"Expected no --data to resume {run_dir}, received {data}: it trains on synthetic pairs")
    if data is None and recorded_data is not None and not Path(recorded_data).exists():
        raise Sar2OptError(
            f"Expected the run's data {recorded_data} (recorded in {path}), received nothing there; "
            "if it moved, pass --data NEW_PATH beside --resume"
        )
    if epochs is not None:
        config = config.with_overrides(epochs=epochs)
    return train_experiment(
        config,
        recorded_data if data is None else data,
        run_dir,
        pairs=pairs,
        preset=preset,
        verbose=verbose,
        **options,
    )


def make_callbacks(out, store, sample_batch, *, sample_every, tensorboard, early_stopping, history):
    """The run's callbacks, in the order they run at an epoch's end; fit()'s `verbose` adds the
    progress bar.

    NonFiniteGuard (stops at a NaN/inf loss before anything of that epoch is saved), HistoryCSV,
    EpochCheckpoint (last and best by val_g_l1 into `store`), SampleGrid, and optionally
    TensorBoard and early stopping on val_g_l1. `history`: the rows of the epochs already trained.
    """
    import math

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
        HistoryCSV(out / "history.csv", history),
        EpochCheckpoint(store, MONITOR, best=min(past, default=math.inf)),
        SampleGrid(*sample_batch, out / "samples", every=sample_every),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.fspath(out / "logs")))
    if early_stopping:
        callbacks.append(ResumableEarlyStopping(past, monitor=MONITOR, mode="min", patience=early_stopping))
    return callbacks


def _fit_verbosity(verbose):
    """fit()'s `verbose`, with "auto" a progress bar on a terminal and one line per epoch otherwise:
    a log file would get a line with ANSI colour codes at every update of the bar."""
    if verbose != "auto":
        return verbose
    return 1 if sys.stdout.isatty() else 2


def _reading_data(function, *args, **kwargs):
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


def save_generator(generator, out):
    """Write the final generator of a run as out/generator.keras (atomically)."""
    with files.atomic_path(out / "generator.keras") as temporary:
        generator.save(temporary)


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
    deterministic=False,
    sar_options=None,
    optical_options=None,
    split_group=None,
    verbose="auto",
    preset=SYNTHETIC_PRESET,
    networks=None,
    extra_settings=None,
    export=None,
    pair_set=None,
):
    """Train the experiment `config` (an ExperimentConfig) and write its run folder; returns its Path.

    data: a dataset folder (any layout `find_pairs` detects), or None for `pairs` synthetic
    `qxslab` pairs at the experiment's image size. out: the run folder (default runs/<name>);
    rerunning into a folder whose run was interrupted resumes it after its last completed epoch
    (the settings must be the same; `config.epochs` may grow), falling back to the newest
    checkpoint that verifies when the last one does not; rerunning a finished run trains nothing.
    precision: "float32" or "mixed_bfloat16". strategy: "none", "mirrored" or "multiworker"
    (batch_size is the global batch; losses are averaged over it). steps_per_epoch: batches per
    epoch (the data repeats; default one pass). early_stopping: patience in epochs on val_g_l1,
    or None. deterministic: deterministic TensorFlow ops (`enable_determinism`), so that a run,
    interrupted or not, ends with the same weights. sar_options: how stored SAR values are scaled
    (`keras_sar2opt.data.to_unit`; None: integers as images, floats as dB or linear per image).
    optical_options: which optical bands and which range of stored values make [0, 1]
    (`keras_sar2opt.data.io.optical_to_unit`; None: all bands, by bit depth).
    split_group: a regular expression naming each pair's area (`split_pairs`), for a split that
    keeps every area on one side.

    Before any data is read or generated it checks the options, that `out` is writable, that
    the image size suits the networks and that the disk has room for the checkpoints. A NaN or
    infinite loss stops the run with a Sar2OptError naming the epoch and step.

    preset: the synthetic preset used without data. networks: a callable returning the
    (generator, discriminator) to train, called in the run's precision and strategy scope (default:
    fresh networks named by config; an experiment with `config.pretrained` needs it, see
    keras_sar2opt.finetune). extra_settings: more top-level entries of config.json. export: a
    callable (generator, out) writing the final generator (default: out/generator.keras).
    pair_set: the PairSet `prepare_data` found in `data` already (a caller that checks the data
    before a long step of its own), so that it is not scanned again.
    """
    if config.pretrained and networks is None:
        raise Sar2OptError(
            f"Expected the pre-trained generator of {config.name!r} (keras_sar2opt.finetune; to resume, rerun "
            "its train_finetune_*.py command with the same --output), received none"
        )
    # None, {} and None-valued keys mean the same: record one form (SAR options with their input kind).
    if isinstance(sar_options, dict):
        sar_options = {key: value for key, value in sar_options.items() if value is not None}
        sar_options = {"input": "auto", **sar_options} if sar_options else None
    if isinstance(optical_options, dict):
        optical_options = {key: value for key, value in optical_options.items() if value is not None} or None
    options = {
        "precision": precision,
        "strategy": strategy,
        "steps_per_epoch": steps_per_epoch,
        "sample_every": sample_every,
        "tensorboard": tensorboard,
        "early_stopping": early_stopping,
        "on_bad": on_bad,
        "deterministic": deterministic,
        "sar_options": sar_options,
        "optical_options": optical_options,
        "split_group": split_group,
    }
    check_run_options(config, data=data, pairs=pairs, **options)
    distribution = make_strategy(strategy)  # first: multi-worker strategies precede other TF work
    replicas = distribution.num_replicas_in_sync
    if config.batch_size % replicas:
        raise Sar2OptError(
            f"Expected --batch-size to be a multiple of the {replicas} replicas, received {config.batch_size}"
        )
    out = run_folder(config, out)
    if not _is_chief(distribution):  # each worker trains; only the chief writes the run folder
        resolver = distribution.cluster_resolver
        out = out / "workers" / f"{resolver.task_type}-{resolver.task_id}"

    from keras_sar2opt.training.checkpoints import CheckpointStore

    store = CheckpointStore(out / "checkpoints")
    if store.read():
        check_same_run(out, config, options, extra_settings)
    files.check_writable(out, "--output")
    if deterministic:
        enable_determinism()
    warn_if_bfloat16_is_emulated(precision)

    import keras

    from keras_sar2opt.data import make_dataset, save_skipped, save_split
    from keras_sar2opt.data.loading import warn_about_scaling
    from keras_sar2opt.data.pipeline import training_batches
    from keras_sar2opt.plots import plot_run_curves, read_history
    from keras_sar2opt.training.callbacks import HistoryCSV, read_history_rows

    with _dtype_policy(precision), distribution.scope():
        keras.utils.set_random_seed(config.seed)
        model = build_adversarial_model(config, networks)  # before the data: a bad image size fails fast
        check_free_space(out, model, store)

        if pair_set is None:
            pair_set, synthetic = prepare_data(
                data,
                out,
                image_size=config.image_size,
                pairs=pairs,
                seed=config.seed,
                on_bad=on_bad,
                preset=preset,
                optical_bands=(optical_options or {}).get("bands"),
                sar_band=(sar_options or {}).get("band"),
            )
        else:
            synthetic = None
        if store.exists and (out / "split.json").is_file():
            split = recorded_split(out, pair_set)
        else:
            split = make_split(pair_set, config.seed, config.batch_size, replicas, split_group)
        print(
            f"Data: {pair_set.describe()}; split " + ", ".join(f"{len(pairs)} {name}" for name, pairs in split.items())
        )
        warn_about_scaling(split["train"], sar_options, optical_options)
        files.check_writable(out, "--output", create=True)
        save_split(split, out / "split.json")
        if pair_set.skipped:
            save_skipped(pair_set, out / "skipped.csv")
        settings = {
            **run_settings(config, pair_set, split, synthetic, distribution, out, **options),
            **(extra_settings or {}),
        }
        files.write_text(out / "config.json", json.dumps(settings, indent=2, ensure_ascii=False) + "\n")

        checkpoint = store.latest() if store.directory.is_dir() else None
        done = 0
        if checkpoint is not None:
            store.restore(model, checkpoint)
            done = checkpoint.epoch
        history = read_history_rows(out / "history.csv", done)
        stopped_early = bool(store.finished and store.finished["stopped_early"])
        if done < config.epochs and not stopped_early:
            if checkpoint is not None:
                logger.warning(f"Resuming {out} after epoch {done} of {config.epochs} from {checkpoint.path}")
            steps = steps_per_epoch or len(split["train"]) // config.batch_size
            dataset_options = {
                "image_size": config.image_size,
                "batch_size": config.batch_size,
                "sar_options": sar_options,
                "optical_options": optical_options,
            }
            train = training_batches(
                split["train"], seed=config.seed, augment=config.augment, first_batch=done * steps, **dataset_options
            )
            val_pairs = _whole_replicas(split["val"], replicas)
            val = make_dataset(val_pairs, training=False, seed=config.seed, **dataset_options)
            samples = make_dataset(split["val"][:SAMPLE_PAIRS], training=False, **dataset_options)
            sample_batch = _reading_data(next, iter(samples))
            callbacks = make_callbacks(
                out,
                store,
                [keras.ops.convert_to_numpy(images) for images in sample_batch],
                sample_every=sample_every,
                tensorboard=tensorboard,
                early_stopping=early_stopping,
                history=history,
            )
            _reading_data(
                model.fit,
                train,
                validation_data=val,
                epochs=config.epochs,
                initial_epoch=done,
                steps_per_epoch=steps,
                callbacks=callbacks,
                shuffle=False,  # the stream shuffles itself, seeded by position
                verbose=_fit_verbosity(verbose),
            )
            trained = next(c for c in callbacks if isinstance(c, HistoryCSV)).rows
            stopped = any(isinstance(c, keras.callbacks.EarlyStopping) and c.stopped_epoch for c in callbacks)
            store.mark_finished(len(trained), stopped_early=stopped)
        else:
            logger.warning(f"{out} holds a finished run of {counted(done, 'epoch')}: nothing to train")
        (export or save_generator)(model.generator, out)
    plot_run_curves(read_history(out / "history.csv"), out, title=f"{config.name} ({config.section})")
    return out
