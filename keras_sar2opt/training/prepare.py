"""The first phase of a training run (report §1–§4): checks, the run folder, the pairs and their split.

`prepare_run` does everything that needs no network, so a caller with work of its own before
training (fine-tuning loads or pre-trains a generator) finds a bad option, folder or dataset
before that work; `keras_sar2opt.training.run.fit_run` then trains the prepared run.
"""

import atexit
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from keras_sar2opt import files
from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.runs import DATA, RunFolder, RunOptions, flag

logger = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    """A run ready to train: its experiment, options, folder, strategy, and its pairs and split.

    Synthetic pairs (a run without data) are written by `find_pairs`, which fit_run calls once the
    disk is known to hold the checkpoints; a dataset's pairs are found by prepare_run.
    """

    config: object  # the ExperimentConfig
    options: RunOptions
    folder: RunFolder
    data: object  # the dataset folder or CSV, or None for synthetic pairs
    strategy: object  # its tf.distribute strategy (KerasDistribution on JAX)
    resuming: bool  # the folder holds checkpoints of this run
    pair_set: object = None  # the PairSet found in the data
    split: dict = None  # {"train": [Pair, ...], "val": [...], "test": [...]}
    synthetic: dict = None  # the settings of the synthetic pairs written for the run

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync

    def find_pairs(self):
        """Find (or write) the run's pairs and its split, once."""
        if self.pair_set is not None:
            return
        config, folder = self.config, self.folder
        self.pair_set, self.synthetic = prepare_data(
            self.data, folder.path, image_size=config.image_size, seed=config.seed, options=self.options
        )
        if self.resuming and folder.split_path.is_file():
            self.split = recorded_split(folder, self.pair_set)
        else:
            self.split = make_split(
                self.pair_set, config.seed, config.batch_size, self.replicas, self.options.split_group
            )


def check_experiment(config, data=None):
    """Raise Sar2OptError, naming the option, for experiment settings a run cannot start with.

    The networks built by name must take the image size; those of a fine-tuning experiment
    (`config.pretrained`) are checked by keras_sar2opt.finetune.
    """
    from keras_sar2opt.models import check_model, check_model_name
    from keras_sar2opt.training.adversarial import check_loss_settings

    check_model_name(config.generator)
    check_model_name(config.discriminator)
    for name in ("epochs", "batch_size", "image_size"):
        check_positive_int(getattr(config, name), flag(name))
    if not config.pretrained:
        check_model(config.generator, config.image_size)
        check_model(config.discriminator, config.image_size)
    wasserstein = config.adversarial_loss == "wasserstein"
    critic = {"n_critic": config.n_critic, "clip_value": config.clip_value} if wasserstein else {}
    check_loss_settings(config.adversarial_loss, config.l1_weight, **critic)  # as compile_kwargs() passes them
    for name, optimizer in (("g_learning_rate", config.g_optimizer), ("d_learning_rate", config.d_optimizer)):
        if not optimizer.learning_rate > 0:
            raise Sar2OptError(f"Expected {flag(name)} to be positive, received {optimizer.learning_rate!r}")
    if not wasserstein and (config.n_critic != 1 or config.clip_value is not None):
        raise Sar2OptError(
            f"Expected {flag('n_critic')} and {flag('clip_value')} only with a wasserstein experiment, "
            f"received them for {config.name!r}"
        )
    if data is not None and not Path(data).exists():
        raise Sar2OptError(f"Expected --data to be an existing dataset folder or CSV, received {data}")


def check_environment(options):
    """Raise Sar2OptError for options this installation cannot run."""
    if options.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise Sar2OptError(
            "Expected the tensorboard package for --tensorboard, received none installed "
            '(pip install "keras_sar2opt[tensorboard]")'
        )


def prepare_data(data, folder, *, image_size, seed, options):
    """(PairSet to train on, synthetic settings or None): the pairs of `data`, or `options.pairs`
    synthetic `options.preset` pairs written into the run folder's data/.

    The synthetic pairs are reused when that folder already holds a complete set with the same
    settings (its synthetic.json, written last), and rewritten otherwise. Pairs are checked as
    `find_pairs` checks them, their images for the run's optical bands and SAR band.
    """
    from keras_sar2opt.data import find_pairs

    optical, sar = options.optical_options, options.sar_options
    bands = {"optical_bands": optical and optical.bands, "sar_band": sar and sar.band, "on_bad": options.on_bad}
    if data is not None:
        return find_pairs(data, **bands), None
    from keras_sar2opt.data.synthetic import get_preset, write_synthetic

    synthetic = {"preset": options.preset, "pairs": options.pairs, "size": image_size, "seed": seed}
    root = Path(folder) / DATA / "{preset}-{size}px-{pairs}pairs-seed{seed}".format(**synthetic)
    try:
        written = json.loads((root / "synthetic.json").read_text())
    except (OSError, ValueError):  # none yet, or cut short
        written = {}
    if not isinstance(written, dict) or any(written.get(key) != synthetic[key] for key in ("pairs", "size", "seed")):
        shutil.rmtree(root, ignore_errors=True)  # an interrupted write: start this folder again
        preset = get_preset(options.preset)
        write_synthetic(root, options.preset, options.pairs, layout=preset.layout, size=image_size, seed=seed)
    return find_pairs(root, **bands), synthetic


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


def recorded_split(folder, pair_set):
    """The split the run in `folder` recorded in split.json, applied by name to the pairs found now:
    a resumed run keeps its split whatever was added to its data since. Data found elsewhere than
    the run's config.json records (moved, or another dataset with the same pair names) is warned about."""
    from keras_sar2opt.data.splits import split_of

    try:
        split = split_of(folder.split_path, pair_set)
    except Sar2OptError as error:
        raise Sar2OptError(f"{error}; pass the data of the run to resume, or another --output for a new run") from None
    recorded = folder.read_config("config.json of the run to resume").get("run", {}) if folder.exists() else {}
    found = os.fspath(Path(pair_set.root).resolve())
    if isinstance(recorded, dict) and recorded.get("data") not in (None, found):
        logger.warning(f"Resuming {folder.path} on the pairs of {found}; the run was trained on {recorded['data']}")
    return split


def check_same_run(folder, config, options, extra_settings=None):
    """Raise Sar2OptError unless `folder`'s config.json records the same experiment settings (the
    number of epochs may grow), the same options of RunOptions.RESUME_BINDING (steps per epoch,
    precision, SAR and optical scaling, split by area) and the same extra settings (a fine-tuning
    run's starting networks), so that a resumed run continues the same run."""
    if not folder.exists():
        return
    recorded = folder.read_config("config.json of the run to resume")
    # A setting added to ExperimentConfig after the run was recorded counts as its default.
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    before = json.loads(json.dumps({**defaults, **recorded.get("experiment", {})}))
    now = json.loads(json.dumps(config.to_dict()))
    before.pop("epochs", None), now.pop("epochs", None)
    changed = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
    changed += options.changed_from(recorded.get("run", {}))
    for key, value in json.loads(json.dumps(extra_settings or {})).items():
        recorded_value = recorded.get(key)
        if isinstance(value, dict) and isinstance(recorded_value, dict):
            changed += [f"{key}.{name}" for name in value if recorded_value.get(name) != value[name]]
        elif recorded_value != value:
            changed.append(key)
    if changed:
        raise Sar2OptError(
            f"Expected the settings recorded in {folder.config_path} to resume that run, received a different "
            f"{', '.join(changed)}; pass the same options, or another --output for a new run"
        )


def run_folder(config, out=None):
    """The RunFolder of a run of `config`: `out`, or runs/<experiment name>."""
    return RunFolder(out if out is not None else Path("runs") / config.name)


def worker_folder(folder, index):
    """The temporary folder that worker `index` (not the chief) of a run into `folder` writes, emptied
    now and deleted at exit. Its name follows from `folder`, so a rerun after a worker was killed
    also deletes what the killed one left."""
    digest = hashlib.sha256(os.fsencode(Path(folder).resolve())).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"sar2opt-worker{index}-{digest}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return RunFolder(path)


def prepare_run(config, data=None, out=None, options=None):
    """Check a run of the experiment `config` and find its dataset's pairs and split; returns a PreparedRun.

    data: a dataset folder or CSV (any layout `find_pairs` detects), or None for `options.pairs`
    synthetic pairs at the experiment's image size, written into the run folder by fit_run. out:
    the run folder (default runs/<name>); a folder whose run was interrupted keeps its recorded
    split. Nothing is written: a bad option, folder or dataset fails before any work.
    """
    from keras_sar2opt.training.checkpoints import CheckpointStore
    from keras_sar2opt.training.distribute import make_strategy, worker_position

    options = options or RunOptions()
    check_experiment(config, data)
    check_environment(options)
    strategy = make_strategy(options.strategy)  # first: multi-worker strategies precede other TF work
    if config.batch_size % strategy.num_replicas_in_sync:
        raise Sar2OptError(
            f"Expected --batch-size to be a multiple of the {strategy.num_replicas_in_sync} replicas, "
            f"received {config.batch_size}"
        )
    folder = run_folder(config, out)
    index, count = worker_position(strategy)
    if count > 1:
        if index:  # every worker trains and saves alike; only the chief keeps what it writes
            folder = worker_folder(folder, index)
        writes = f"writes {folder.path}" if index == 0 else f"writes only to {folder.path}, deleted at exit"
        print(f"Worker {index} of {count}{' (chief)' if index == 0 else ''}: {writes}", flush=True)
    resuming = CheckpointStore(folder.checkpoints).read()
    if resuming:
        check_same_run(folder, config, options)
    files.check_writable(folder.path, "--output")
    run = PreparedRun(config, options, folder, data, strategy, resuming)
    if data is not None:
        run.find_pairs()
    return run
