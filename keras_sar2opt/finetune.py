"""Report §4: fine-tuning a pre-trained Pix2Pix fully (§4.1, Table 6) or with LoRA adapters (§4.2, Table 7).

Without a generator, a Pix2Pix is first pre-trained on the synthetic `sentinel` preset (the
source domain; the run is cached under `runs/cache`, named by its settings) and then fine-tuned on
the `qxslab` preset (the target domain): the report's domain gap in miniature. A fine-tuning run
folder is a training run folder (keras_sar2opt.runs) with the trainable parameter counts
under "finetune" in config.json and `held_out.json`, the held-out L1 of the generator before and
after fine-tuning; a LoRA run adds `adapters.safetensors` (the adapters alone) and its
`generator.keras` is the merged, plain generator. docs/finetuning.md explains the counts.
"""

import dataclasses
import json
import os
from pathlib import Path

from keras_sar2opt import files, paper, presets
from keras_sar2opt.checks import check_positive_int
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import DEFAULT_PRETRAIN_EPOCHS, get_experiment
from keras_sar2opt.model_files import CHECKPOINT_EXTENSIONS, load_keras_model
from keras_sar2opt.runs import RunFolder, RunOptions
from keras_sar2opt.text import counted

PRETRAIN_EXPERIMENT = "pix2pix"
SOURCE_PRESET = "sentinel"  # the pre-training domain (§3: Sentinel-1/2); fine-tuning data defaults to qxslab
DEFAULT_CACHE = Path("runs") / "cache"
HELD_OUT_SPLIT = "val"


def pretraining_folder(cache, *, image_size, batch_size, pairs, epochs, steps_per_epoch, precision, seed):
    """The run folder of a cached pre-training: `cache` / a name holding every setting of the run."""
    steps = "all" if steps_per_epoch is None else steps_per_epoch
    return Path(cache) / (
        f"{PRETRAIN_EXPERIMENT}-{SOURCE_PRESET}-{image_size}px-{pairs}pairs-batch{batch_size}-{epochs}ep-"
        f"{steps}steps-{precision}-seed{seed}"
    )


def pretrain_generator(
    cache, *, image_size, batch_size, pairs, epochs, steps_per_epoch, precision, strategy, seed, verbose="auto"
):
    """generator.keras of a Pix2Pix trained on `pairs` synthetic sentinel pairs, reused when cached.

    A finished run folder (one holding generator.keras) is reused; an interrupted one resumes.
    """
    from keras_sar2opt.training.run import train_experiment

    settings = {"image_size": image_size, "batch_size": batch_size, "epochs": epochs, "seed": seed}
    out = pretraining_folder(cache, pairs=pairs, steps_per_epoch=steps_per_epoch, precision=precision, **settings)
    path = RunFolder(out).generator_path
    if path.is_file():
        print(f"Using the cached generator pre-trained on synthetic {SOURCE_PRESET} pairs: {path}")
        return path
    print(f"Pre-training {PRETRAIN_EXPERIMENT} on {pairs} synthetic {SOURCE_PRESET} pairs into {out}")
    train_experiment(
        get_experiment(PRETRAIN_EXPERIMENT).with_overrides(**settings),
        out=out,
        pairs=pairs,
        preset=SOURCE_PRESET,
        precision=precision,
        strategy=strategy,
        steps_per_epoch=steps_per_epoch,
        verbose=verbose,
    )
    return path


def _check_file(path, role):
    option = f"--{role}"
    if presets.preset_name(path) is not None:
        presets.check(path, role, option)
    elif path is not None and not Path(path).is_file():
        raise Sar2OptError(
            f"Expected {option} to be a .keras, .pth or .safetensors file or preset:NAME, received {path} (not found)"
        )


def _source_label(path):
    """How config.json and held_out.json name a network's source: `preset:NAME`, or the absolute path."""
    return os.fspath(path) if presets.preset_name(path) is not None else os.fspath(Path(path).resolve())


def load_network(path, role, image_size, weights_dir=None):
    """The pre-trained "generator" or "discriminator" in `path`: a .keras model (or a run's
    checkpoint holding both), a SAR2Optical checkpoint converted at `image_size`, or a `preset:NAME`
    (downloaded into `weights_dir` on first use). Its inputs must be image_size square (a conditional
    discriminator takes SAR and optical)."""
    from keras_sar2opt.convert.pix2pix import load_pix2pix_discriminator, load_pix2pix_generator
    from keras_sar2opt.training.adversarial import AdversarialModel

    option = f"--{role}"
    _check_file(path, role)
    name, path = presets.preset_name(path), Path(path)
    suffix = path.suffix.lower()
    if name is not None:
        model = presets.load(name, weights_dir=weights_dir, image_size=image_size)
    elif suffix in CHECKPOINT_EXTENSIONS:
        load = load_pix2pix_generator if role == "generator" else load_pix2pix_discriminator
        model = load(path, image_size=image_size)
    elif suffix == ".keras":
        model = load_keras_model(path, option)
        if isinstance(model, AdversarialModel):  # a run's checkpoint: take the network asked for
            model = getattr(model, role)
    else:
        raise Sar2OptError(f"Expected {option} to end in .keras, .pth or .safetensors, received {path}")
    shapes = [tuple(tensor.shape[1:3]) for tensor in model.inputs]
    if len(shapes) != (1 if role == "generator" else 2) or any(s != (image_size, image_size) for s in shapes):
        inputs = "one SAR input" if role == "generator" else "SAR and optical inputs"
        raise Sar2OptError(
            f"Expected {option} with {inputs} of {image_size}x{image_size} (--image-size), received {path} "
            f"with inputs {[tuple(tensor.shape) for tensor in model.inputs]}"
        )
    return model


def rebuild(model):
    """A copy of `model` with its weights whose layers compute in the global dtype policy, its output
    layers in float32 (as the run's own networks). Called in a run's precision and strategy scope,
    its variables belong to that scope."""
    import keras

    policy = keras.mixed_precision.global_policy().name
    outputs = set(model.output_names)

    def clone_layer(layer):
        dtype = "float32" if layer.name in outputs else policy
        return type(layer).from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=clone_layer)
    copy.set_weights(model.get_weights())
    return copy


def adapt_generator(generator, config):
    """The generator to train: all of `generator` (full fine-tuning), or a copy with LoRA adapters
    on `config.lora_targets` whose only trainable weights are the adapters and `config.also_train`."""
    if not config.lora_targets:
        return generator
    from keras_sar2opt.lora import apply_lora

    return apply_lora(
        generator,
        config.lora_targets,
        rank=config.lora_rank,
        alpha=config.lora_alpha,
        dropout=config.lora_dropout,
        also_train=config.also_train,
    )


def parameter_summary(generator, adapted, config):
    """Trainable parameters of the adapted generator, as a count and a percentage of the (fully
    trainable) generator's, beside the report's figures; for LoRA also the adapters' closed-form count."""
    from keras_sar2opt.lora import count_lora_parameters, count_trainable_parameters

    total = count_trainable_parameters(generator)
    trainable = count_trainable_parameters(adapted)
    summary = {"generator": total, "trainable": trainable, "percent": 100 * trainable / total}
    if config.lora_targets:
        adapters = count_lora_parameters(generator, config.lora_targets, rank=config.lora_rank)
        summary.update(
            adapters=adapters,
            adapters_percent=100 * adapters / total,
            also_trained=trainable - adapters,
            report={"trainable": paper.SECTION42_LORA_TRAINABLE, "percent": paper.SECTION42_LORA_PERCENT},
        )
    else:
        summary["report"] = {"trainable": paper.SECTION41_TRAINABLE, "percent": 100.0}
    return summary


def describe_parameters(config, summary):
    """One line for the terminal: the trainable count beside the report's."""
    line = (
        f"{config.name}: {summary['trainable']:,} trainable generator parameters = {summary['percent']:.3f}% "
        f"of {summary['generator']:,}"
    )
    if not config.lora_targets:
        return line + f" (report §4.1: all {paper.SECTION41_TRAINABLE / 1e6:.1f} million)"
    also = f" + also-trained {', '.join(config.also_train)}: {summary['also_trained']:,}" if config.also_train else ""
    return (
        f"{line} (LoRA r={config.lora_rank}, alpha={config.lora_alpha:g} on {', '.join(config.lora_targets)}: "
        f"{summary['adapters']:,} = {summary['adapters_percent']:.3f}%{also}); report §4.2.1: roughly "
        f"{paper.SECTION42_LORA_TRAINABLE:,}, about {paper.SECTION42_LORA_PERCENT}% (see docs/finetuning.md)"
    )


def export_generator(generator, folder, config):
    """Write a run's generator.keras; for LoRA the merged, plain generator, and the adapters alone
    as adapters.safetensors. Returns the generator written."""
    from keras_sar2opt.training.run import save_generator

    if config.lora_targets:
        from keras_sar2opt.lora import merge_lora, save_adapters

        with files.atomic_path(folder.adapters_path) as temporary:
            save_adapters(generator, temporary)
        generator = merge_lora(generator)
    save_generator(generator, folder)
    return generator


def held_out_l1(generator, pairs, image_size, batch_size, sar_options=None, optical_options=None, desc=None):
    """Mean L1 (images in [-1, 1]) of `generator` over `pairs`, in inference mode: val_g_l1's measure.
    `desc` labels a progress bar over the pairs (None: no bar)."""
    import keras
    import numpy as np
    from tqdm.auto import tqdm

    from keras_sar2opt.data import make_dataset
    from keras_sar2opt.training.losses import l1_loss

    dataset = make_dataset(
        pairs, image_size, batch_size, training=False, sar_options=sar_options, optical_options=optical_options
    )
    values = []
    with tqdm(total=len(pairs), desc=desc, unit="pair", disable=desc is None) as bar:
        for sar, optical in dataset:
            values.append(keras.ops.convert_to_numpy(l1_loss(generator(sar, training=False), optical)))
            bar.update(len(values[-1]))
    return float(np.mean(np.concatenate(values)))


def weights_digest(model):
    """SHA-256 of a model's weight values, in layer order: the same digest means the same network."""
    import hashlib

    import keras
    import numpy as np

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def measure_held_out(out, start, after, source, measure):
    """held_out.json's dict for the run in `out`: the held-out L1 of `start` (read from `source`)
    and of `after`, the generator the run wrote (`export_generator`), with `held_out_l1`'s `measure`
    arguments. An existing held_out.json of the same weights (a rerun of a finished run) is
    returned as it is; otherwise it is written."""
    folder = RunFolder(out)
    weights = {"before": weights_digest(start), "after": weights_digest(after)}
    path = folder.held_out_path
    if path.is_file():
        recorded = files.read_json(path, f"{path.name} of the run")
        if isinstance(recorded, dict) and recorded.get("weights") == weights:
            return recorded
    result = {
        "split": HELD_OUT_SPLIT,
        "pairs": len(measure["pairs"]),
        "generator": _source_label(source),
        "l1_before": held_out_l1(start, **measure, desc="Held-out L1 before fine-tuning"),
        "l1_after": held_out_l1(after, **measure, desc="Held-out L1 after fine-tuning"),
        "weights": weights,
    }
    files.write_text(path, json.dumps(result, indent=2) + "\n")
    return result


def _network_name(path, role, config):
    """The MODELS name of the `role` network a run of `config` starts from, known before it is loaded:
    without `path` the pre-training's generator or config's fresh discriminator, from a SAR2Optical
    checkpoint a Pix2Pix network; from a .keras file any network (None)."""
    if path is None:
        return get_experiment(PRETRAIN_EXPERIMENT).generator if role == "generator" else config.discriminator
    sar2optical = presets.preset_name(path) is not None or Path(path).suffix.lower() in CHECKPOINT_EXTENSIONS
    return f"pix2pix_{role}" if sar2optical else None


def check_finetune_options(config, generator, discriminator, cache, pretrain_epochs, data=None):
    """Raise Sar2OptError, naming the option, for fine-tuning settings a run cannot start with,
    checking what can be without the networks: the image size of those known by name, and LoRA
    targets against the blocks of a Pix2Pix generator."""
    from keras_sar2opt.lora import check_hyperparameters, check_layer_names
    from keras_sar2opt.models import check_model
    from keras_sar2opt.models.pix2pix import GENERATOR_BLOCKS

    if not config.pretrained:
        raise Sar2OptError(f"Expected a fine-tuning experiment (config.pretrained), received {config.name!r}")
    if generator is None and data is not None:
        raise Sar2OptError(
            f"Expected --generator with --data {data}: fine-tuning on a dataset starts from a pre-trained "
            "generator (the report's pix2pix_gen_180.pth); only the synthetic demo, without --data, pre-trains one"
        )
    _check_file(generator, "generator")
    _check_file(discriminator, "discriminator")
    if generator is not None and (cache is not None or pretrain_epochs is not None):
        raise Sar2OptError(
            f"Expected --cache and --pretrain-epochs only without --generator, received --generator {generator}"
        )
    check_positive_int(pretrain_epochs, "--pretrain-epochs", allow_none=True)
    if config.lora_targets:
        check_hyperparameters(config.lora_rank, config.lora_alpha, config.lora_dropout)
    elif config.lora_rank or config.also_train:
        raise Sar2OptError(
            f"Expected a LoRA rank and also-trained layers only with LoRA targets, received them for {config.name!r}"
        )
    names = {
        role: _network_name(path, role, config)
        for role, path in (("generator", generator), ("discriminator", discriminator))
    }
    for name in names.values():
        if name is not None:
            check_model(name, config.image_size)
    if config.lora_targets and names["generator"] == "pix2pix_generator":
        check_layer_names(names["generator"], GENERATOR_BLOCKS, config.lora_targets, config.also_train)


def finetune(
    config,
    data=None,
    out=None,
    options=None,
    *,
    generator=None,
    discriminator=None,
    cache=None,
    pretrain_epochs=None,
    weights_dir=None,
    verbose="auto",
    **overrides,
):
    """Fine-tune a pre-trained generator with the experiment `config` (`finetune-full` or
    `finetune-lora`) and write its run folder; returns its Path.

    generator: a .keras generator, SAR2Optical .pth/.safetensors checkpoint or `preset:NAME` (downloaded
    into `weights_dir` on first use); None (only without `data`) pre-trains a Pix2Pix on `options.pairs`
    synthetic sentinel pairs for `pretrain_epochs` (default 20) with the run's batch size, image size,
    steps per epoch, precision and seed, cached in `cache` (default runs/cache). discriminator:
    likewise, or None for a fresh one. data, out, options and `overrides` are train_experiment's (no
    data: synthetic qxslab pairs). Prints the trainable parameter count and the held-out L1 on the
    validation split before and after.
    """
    from keras_sar2opt.models import build_model
    from keras_sar2opt.training.prepare import prepare_run
    from keras_sar2opt.training.run import fit_run

    options = dataclasses.replace(options or RunOptions(), **overrides)
    # Everything that can be checked without the networks first: before a long pre-training, or
    # the load of a large generator.
    check_finetune_options(config, generator, discriminator, cache, pretrain_epochs, data)
    run = prepare_run(config, data, out, options)
    if generator is None:
        source = pretrain_generator(
            DEFAULT_CACHE if cache is None else cache,
            image_size=config.image_size,
            batch_size=config.batch_size,
            pairs=options.pairs,
            epochs=DEFAULT_PRETRAIN_EPOCHS if pretrain_epochs is None else pretrain_epochs,
            steps_per_epoch=options.steps_per_epoch,
            precision=options.precision,
            strategy=options.strategy,
            seed=config.seed,
            verbose=verbose,
        )
    else:
        source = Path(generator)
    start = load_network(source, "generator", config.image_size, weights_dir)
    start.trainable = True  # every layer, whatever the file says; LoRA freezes all but its own
    adapted = adapt_generator(start, config)  # here first, so bad targets fail before any data is written
    summary = parameter_summary(start, adapted, config)
    del adapted
    print(describe_parameters(config, summary))
    start_d = (
        None if discriminator is None else load_network(discriminator, "discriminator", config.image_size, weights_dir)
    )

    def networks():
        if start_d is None:
            d = build_model(config.discriminator, image_size=config.image_size)
        else:
            d = rebuild(start_d)
        return adapt_generator(rebuild(start), config), d

    settings = {
        "finetune": {
            "generator": _source_label(source),
            "pretraining": os.fspath(source.parent.resolve()) if generator is None else None,
            "discriminator": None if discriminator is None else _source_label(discriminator),
            "parameters": summary,
        }
    }
    model = fit_run(run, networks, extra_settings=settings, verbose=verbose)
    tuned = export_generator(model.generator, run.folder, config)
    measure = {
        "pairs": run.split[HELD_OUT_SPLIT],
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "sar_options": options.sar_options,
        "optical_options": options.optical_options,
    }
    result = measure_held_out(run.folder.path, start, tuned, source, measure)
    print(
        f"Held-out L1 on the {HELD_OUT_SPLIT} split ({counted(result['pairs'], 'pair')}): "
        f"{result['l1_before']:.4f} before fine-tuning, {result['l1_after']:.4f} after"
    )
    return run.folder.path
