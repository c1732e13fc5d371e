"""The report's whole study in one call (`sar2opt reproduce`): §1–§4 trained, evaluated and reported.

Stages, in order: the three GANs of §1 (scratch, patchgan, wgan) on the target domain; Pix2Pix
(§3) trained on the source domain and evaluated there (Figure 3); the same generator applied to
the target domain raw (Figure 4) and after median 7 + gamma 7 in both gamma conventions (Figure 5);
full fine-tuning (§4.1, Figure 7); LoRA fine-tuning with and without trainable dec8 + head (§4.2,
Figure 9); then the report (keras_sar2opt.reports.report), whose findings section tests the
report's qualitative conclusions on the metrics.

Without data the domains are the synthetic presets: `sentinel` as the source (the report's
Sentinel-1/2) and `qxslab` as the target (QXSLAB-SAROPT). Run folders go under `work`; every
stage reuses a finished run, so a rerun after a crash continues where it stopped. At the quick
scale a finished run keeps its last checkpoint only (a Pix2Pix one is 688 MB).
"""

import contextlib
import dataclasses
import logging
import time
from pathlib import Path

from keras_sar2opt import files
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import get_experiment
from keras_sar2opt.finetune import SOURCE_PRESET
from keras_sar2opt.runs import DEFAULT_PAIRS, RunFolder, RunOptions
from keras_sar2opt.text import counted

GAN_EXPERIMENTS = ("scratch", "patchgan", "wgan")
LORA_DECODER = ("dec8", "head")  # the layers §4.2's ~820,000 trainable parameters imply (docs/finetuning.md)
MEDIAN_GAMMA = {
    convention: [("median", {"window": 7}), ("gamma", {"gamma": 7.0, "convention": convention})]
    for convention in ("power", "inverse")
}


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much of the study to run. None keeps the experiment's own setting (the report's)."""

    name: str
    gan_image_size: int | None  # §1 networks (Tables 1, 3, 5: 128)
    gan_pairs: int  # synthetic target pairs at the GAN image size
    gan_epochs: int | None
    gan_batch_size: int | None
    pix2pix_pairs: int  # synthetic pairs of each domain at 256 px
    pix2pix_epochs: int | None
    finetune_epochs: int | None
    lora_epochs: int | None
    pix2pix_batch_size: int | None
    pix2pix_steps: int | None  # steps per epoch of the Pix2Pix runs (None: one pass)
    sample_every: int  # epochs between sample grids
    # False: a run saves a checkpoint after its last epoch only and keeps last.keras only (disk and
    # time: a Pix2Pix checkpoint is 688 MB, about 5 s to write and hash); a stage cut short starts again
    keep_all_checkpoints: bool = True

    def summary(self):
        """One line of the sizes and epochs this scale trains with."""

        def own(value, experiment, field):
            return getattr(get_experiment(experiment), field) if value is None else value

        gan = GAN_EXPERIMENTS[0]
        steps = "" if self.pix2pix_steps is None else f" x {counted(self.pix2pix_steps, 'step')}"
        gan_epochs, pix2pix_epochs, finetune_epochs = (
            counted(own(value, experiment, "epochs"), "epoch")
            for value, experiment in (
                (self.gan_epochs, gan),
                (self.pix2pix_epochs, "pix2pix"),
                (self.finetune_epochs, "finetune-full"),
            )
        )
        return (
            f"GANs {own(self.gan_image_size, gan, 'image_size')} px, {self.gan_pairs} synthetic pairs, "
            f"{gan_epochs}; Pix2Pix {get_experiment('pix2pix').image_size} px, "
            f"{self.pix2pix_pairs} synthetic pairs per domain, {pix2pix_epochs}{steps}; fine-tuning {finetune_epochs}, "
            f"LoRA {own(self.lora_epochs, 'finetune-lora', 'epochs')}"
        )


SCALES = {
    "quick": Scale(
        "quick",
        gan_image_size=64,
        gan_pairs=60,
        gan_epochs=6,
        gan_batch_size=8,
        pix2pix_pairs=100,
        pix2pix_epochs=5,
        finetune_epochs=2,
        lora_epochs=2,
        pix2pix_batch_size=4,
        pix2pix_steps=6,
        sample_every=1,
        keep_all_checkpoints=False,
    ),
    "full": Scale(
        "full",
        gan_image_size=None,
        gan_pairs=DEFAULT_PAIRS,
        gan_epochs=None,
        gan_batch_size=None,
        pix2pix_pairs=DEFAULT_PAIRS,
        pix2pix_epochs=None,
        finetune_epochs=None,
        lora_epochs=None,
        pix2pix_batch_size=None,
        pix2pix_steps=None,
        sample_every=5,
    ),
}


def get_scale(scale):
    """A Scale, or the one registered under its name in SCALES."""
    if isinstance(scale, Scale):
        return scale
    if scale not in SCALES:
        raise Sar2OptError(f"Expected a scale among {', '.join(SCALES)}, received {scale!r}")
    return SCALES[scale]


def _check_data(path, option):
    if path is not None and not Path(path).is_dir():
        raise Sar2OptError(f"Expected {option} to be an existing dataset folder, received {path}")


class _Stages:
    """Numbered stage headers with the elapsed time, so a long study shows where it is."""

    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.monotonic()

    def __call__(self, text):
        self.done += 1
        minutes, seconds = divmod(int(time.monotonic() - self.start), 60)
        print(f"[{self.done}/{self.total}] {text} (elapsed {minutes:d}:{seconds:02d})", flush=True)


class _RetracingWarnings(logging.Filter):
    """Drops TensorFlow's warning that a tf.function was traced again: each stage builds or loads
    its own model, whose functions are traced anew, as expected."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _without_retracing_warnings():
    logger, quiet = logging.getLogger("tensorflow"), _RetracingWarnings()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@_without_retracing_warnings()
def reproduce(
    out=None, *, scale="quick", work=None, data_source=None, data_target=None, precision="float32", verbose="auto"
):
    """Run the study at `scale` ("quick", "full" or a Scale) and write its report into `out`
    (default reports/reproduce-<scale>).

    work: the folder of run and evaluation folders (default runs/reproduce-<scale>).
    data_source / data_target: dataset folders (any layout find_pairs detects) for the source and
    target domains; None writes synthetic sentinel / qxslab pairs under work/data. Returns the path
    of report.md.
    """
    from keras_sar2opt.evaluation import evaluate
    from keras_sar2opt.finetune import finetune
    from keras_sar2opt.model_files import load_generator
    from keras_sar2opt.reports.report import build_report
    from keras_sar2opt.training.checkpoints import CheckpointStore
    from keras_sar2opt.training.prepare import prepare_data
    from keras_sar2opt.training.run import train_experiment

    scale = get_scale(scale)
    _check_data(data_source, "--data-source")
    _check_data(data_target, "--data-target")
    work = Path(work if work is not None else Path("runs") / f"reproduce-{scale.name}")
    out = Path(out if out is not None else Path("reports") / f"reproduce-{scale.name}")
    files.check_writable(work, "--work")  # before hours of training
    files.check_writable(out, "-o")
    gans = [
        get_experiment(name).with_overrides(
            image_size=scale.gan_image_size, epochs=scale.gan_epochs, batch_size=scale.gan_batch_size
        )
        for name in GAN_EXPERIMENTS
    ]
    pix2pix_sizes = {"batch_size": scale.pix2pix_batch_size}
    pix2pix = get_experiment("pix2pix").with_overrides(epochs=scale.pix2pix_epochs, **pix2pix_sizes)
    full = get_experiment("finetune-full").with_overrides(epochs=scale.finetune_epochs, **pix2pix_sizes)
    lora = get_experiment("finetune-lora").with_overrides(epochs=scale.lora_epochs, **pix2pix_sizes)
    lora_decoder = lora.with_overrides(also_train=LORA_DECODER)
    run_options = {
        "precision": precision,
        "sample_every": scale.sample_every,
        "checkpoint_every": 1 if scale.keep_all_checkpoints else None,
        "verbose": verbose,
    }
    pix2pix_options = {**run_options, "steps_per_epoch": scale.pix2pix_steps}
    stage = _Stages(len(gans) + 13)  # + data, pix2pix, 4 evaluations, 3 fine-tunings and theirs, report
    runs, figures = [], []

    def finished(run):
        if not scale.keep_all_checkpoints:
            store = CheckpointStore(RunFolder(run).checkpoints)
            if store.read():
                store.keep_last_only()
        runs.append(run)
        return run

    for config in gans:
        stage(f"Training {config.name} ({config.section}) on the target domain")
        finished(train_experiment(config, data_target, work / config.name, pairs=scale.gan_pairs, **run_options))

    stage("Preparing the source and target domains")
    domains = {"image_size": pix2pix.image_size, "seed": pix2pix.seed}
    source_pairs = RunOptions(pairs=scale.pix2pix_pairs, preset=SOURCE_PRESET)
    source = data_source or prepare_data(None, work, options=source_pairs, **domains)[0].root
    target_pairs = RunOptions(pairs=scale.pix2pix_pairs)
    target = data_target or prepare_data(None, work, options=target_pairs, **domains)[0].root

    stage(f"Training pix2pix ({pix2pix.section}) on the source domain")
    pretrained = finished(train_experiment(pix2pix, source, work / "pix2pix-source", **pix2pix_options))
    generator = RunFolder(pretrained).generator_path
    pretrained_generator = load_generator(generator)  # read once for Figures 3-5, its prediction traced once
    evaluations = work / "evaluations"

    def evaluation(role, name, model, data, text, **options):
        stage(f"Evaluating {text} (Figure {role.removeprefix('fig')})")
        folder = evaluations / name
        evaluate(model, data, folder, seed=pix2pix.seed, role=role, **options)
        figures.append((role, folder))

    evaluation(
        "fig3",
        "fig3-source",
        generator,
        source,
        "pix2pix on the source domain",
        split_file=RunFolder(pretrained).split_path,
        loaded=pretrained_generator,
    )
    evaluation("fig4", "fig4-target-raw", generator, target, "pix2pix on raw target SAR", loaded=pretrained_generator)
    for convention, steps in MEDIAN_GAMMA.items():
        evaluation(
            "fig5",
            f"fig5-target-median7-gamma7-{convention}",
            generator,
            target,
            f"pix2pix on median 7 + gamma 7 ({convention}) target SAR",
            preprocessing=steps,
            loaded=pretrained_generator,
        )
    del pretrained_generator

    for config, name, role in (
        (full, "finetune-full", "fig7"),
        (lora, "finetune-lora", "fig9"),
        (lora_decoder, "finetune-lora-dec8-head", "fig9"),
    ):
        stage(f"Fine-tuning: {name} ({config.section}) on the target domain")
        run = RunFolder(finished(finetune(config, target, work / name, generator=generator, **pix2pix_options)))
        evaluation(
            role,
            f"{role}-{name}",
            run.generator_path,
            target,
            f"the {name} generator",
            split_file=run.split_path,
        )

    stage(f"Writing the report into {out}")
    title = f"SAR-to-optical translation: reproduction report ({scale.name} scale)"
    return build_report(runs, out, figures=figures, title=title)
