"""The report's whole study in one call (`sar2opt reproduce`): §1–§4 trained, evaluated and reported.

Stages, in order: the source and target domains; Pix2Pix (§3) trained on the source domain; full
fine-tuning (§4.1, Figure 7) and LoRA fine-tuning with and without trainable dec8 + head (§4.2,
Figure 9), each then evaluated; the pre-trained generator evaluated on the source domain (Figure
3), on the target domain raw (Figure 4) and after median 7 + gamma 7 in both gamma conventions
(Figure 5); the three GANs of §1 (scratch, patchgan, wgan) on the target domain; then the report
(keras_sar2opt.reports.report), whose findings section tests the report's qualitative conclusions
on the metrics. With `jobs` > 1 the stages that do not wait for each other run at once, each in a
process of its own: on a CPU a second process uses the cores that one stage leaves idle while it
traces, loads, saves and evaluates (reports/cpu-profile.md, "Stages at once").

Without data the domains are the synthetic presets: `sentinel` as the source (the report's
Sentinel-1/2) and `qxslab` as the target (QXSLAB-SAROPT). Run folders go under `work`; every
stage reuses a finished run, so a rerun after a crash continues where it stopped. At the quick
scale a finished run keeps its last checkpoint only (a Pix2Pix one is 688 MB).
"""

import concurrent.futures
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

from keras_sar2opt import files
from keras_sar2opt.checks import check_positive_int
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
        self.total, self.started, self.start = total, 0, time.monotonic()

    def _elapsed(self):
        minutes, seconds = divmod(int(time.monotonic() - self.start), 60)
        return f"elapsed {minutes:d}:{seconds:02d}"

    def __call__(self, text, log=None):
        self.started += 1
        where = "" if log is None else f"; output in {log}"
        print(f"[{self.started}/{self.total}] {text} ({self._elapsed()}{where})", flush=True)

    def finished(self, name):
        print(f"Finished {name} ({self._elapsed()})", flush=True)


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


def _finish(run, keep_all_checkpoints):
    """A finished run's folder `run`, its checkpoints pruned to the last when the scale keeps only that."""
    from keras_sar2opt.training.checkpoints import CheckpointStore

    if not keep_all_checkpoints:
        store = CheckpointStore(RunFolder(run).checkpoints)
        if store.read():
            store.keep_last_only()
    return run


def _train(config, data, out, keep_all_checkpoints, **options):
    """A training stage: train_experiment, then `_finish`."""
    from keras_sar2opt.training.run import train_experiment

    _finish(train_experiment(config, data, out, **options), keep_all_checkpoints)


def _evaluate_pretrained(generator, evaluations, seed):
    """Figures 3-5: the pre-trained generator, read once, on each of `evaluations` ((folder, role, data, options))."""
    from keras_sar2opt.evaluation import evaluate
    from keras_sar2opt.model_files import load_generator

    loaded = load_generator(generator)
    for folder, role, data, options in evaluations:
        evaluate(generator, data, folder, seed=seed, role=role, loaded=loaded, **options)


def _finetune_and_evaluate(config, data, out, evaluation, role, seed, keep_all_checkpoints, **options):
    """A fine-tuning stage: finetune, `_finish`, then the evaluation of the generator it wrote into `evaluation`."""
    from keras_sar2opt.evaluation import evaluate
    from keras_sar2opt.finetune import finetune

    run = RunFolder(_finish(finetune(config, data, out, **options), keep_all_checkpoints))
    evaluate(run.generator_path, data, evaluation, seed=seed, role=role, split_file=run.split_path)


@dataclasses.dataclass(frozen=True)
class _Task:
    """One stage of the study: `function(**arguments)`, once the tasks named in `after` have finished."""

    name: str  # also its log file's name when it runs in a process of its own
    text: str
    function: object
    arguments: dict
    after: tuple = ()


def _in_log(log, function, arguments):
    """function(**arguments) with this process's output, Python's and TensorFlow's, appended to `log`."""
    streams = ((sys.stdout, 1), (sys.stderr, 2))
    saved = [os.dup(descriptor) for _, descriptor in streams]
    with open(log, "a") as file:
        for stream, descriptor in streams:
            stream.flush()
            os.dup2(file.fileno(), descriptor)
        try:
            with _without_retracing_warnings():
                return function(**arguments)
        finally:
            for (stream, descriptor), original in zip(streams, saved, strict=True):
                stream.flush()
                os.dup2(original, descriptor)
                os.close(original)


def run_tasks(tasks, jobs, stage, logs):
    """Run `tasks` in list order, each listed after and started once the tasks named in its `after`
    have finished: one at a time in this process (jobs 1), or up to `jobs` at once in as many
    processes, each task's output in `logs`/NAME.log. A failed task stops the study once the tasks
    still running have finished (their runs are kept for the rerun)."""
    names = set()
    for task in tasks:
        missing = sorted(set(task.after) - names)
        if missing:
            raise ValueError(f"Expected the tasks {missing} listed before {task.name!r}, which waits for them")
        names.add(task.name)
    if jobs == 1:
        for task in tasks:
            stage(task.text)
            task.function(**task.arguments)
        return
    files.check_writable(logs, "--work", create=True)
    waiting, running, finished = list(tasks), {}, set()
    context = multiprocessing.get_context("spawn")  # a fork would copy TensorFlow's threads' state
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        while waiting or running:
            ready = [task for task in waiting if set(task.after) <= finished]
            for task in ready[: jobs - len(running)]:
                waiting.remove(task)
                log = Path(logs) / f"{task.name}.log"
                stage(task.text, log)
                running[pool.submit(_in_log, log, task.function, task.arguments)] = (task, log)
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                task, log = running.pop(future)
                error = future.exception()
                if isinstance(error, Sar2OptError):
                    raise Sar2OptError(f"{error} (stage: {task.text}; its output: {log})") from None
                if error is not None:
                    raise error
                finished.add(task.name)
                stage.finished(task.name)


@_without_retracing_warnings()
def reproduce(
    out=None,
    *,
    scale="quick",
    work=None,
    data_source=None,
    data_target=None,
    precision="float32",
    jobs=1,
    verbose="auto",
):
    """Run the study at `scale` ("quick", "full" or a Scale) and write its report into `out`
    (default reports/reproduce-<scale>).

    work: the folder of run and evaluation folders (default runs/reproduce-<scale>).
    data_source / data_target: dataset folders (any layout find_pairs detects) for the source and
    target domains; None writes synthetic sentinel / qxslab pairs under work/data. jobs: stages run
    at once, each in a process of its own with its output in work/logs (1: one after another in this
    process). Returns the path of report.md.
    """
    from keras_sar2opt.reports.report import build_report
    from keras_sar2opt.training.prepare import prepare_data

    scale = get_scale(scale)
    _check_data(data_source, "--data-source")
    _check_data(data_target, "--data-target")
    check_positive_int(jobs, "--jobs")
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
        "keep_all_checkpoints": scale.keep_all_checkpoints,
    }
    pix2pix_options = {**run_options, "steps_per_epoch": scale.pix2pix_steps}
    evaluations = work / "evaluations"
    fine_tunings = [  # (config, run name, role, evaluation folder)
        (config, name, role, evaluations / f"{role}-{name}")
        for config, name, role in (
            (full, "finetune-full", "fig7"),
            (lora, "finetune-lora", "fig9"),
            (lora_decoder, "finetune-lora-dec8-head", "fig9"),
        )
    ]
    stage = _Stages(len(gans) + len(fine_tunings) + 4)  # + data, pix2pix, its evaluations, the report

    stage("Preparing the source and target domains")
    domains = {"image_size": pix2pix.image_size, "seed": pix2pix.seed}
    source_pairs = RunOptions(pairs=scale.pix2pix_pairs, preset=SOURCE_PRESET)
    source = data_source or prepare_data(None, work, options=source_pairs, **domains)[0].root
    target_pairs = RunOptions(pairs=scale.pix2pix_pairs)
    target = data_target or prepare_data(None, work, options=target_pairs, **domains)[0].root

    pretrained = work / "pix2pix-source"
    generator = RunFolder(pretrained).generator_path
    transfer = [  # Figures 3-5: (folder, role, data, evaluate's options)
        (evaluations / "fig3-source", "fig3", source, {"split_file": RunFolder(pretrained).split_path}),
        (evaluations / "fig4-target-raw", "fig4", target, {}),
        *(
            (evaluations / f"fig5-target-median7-gamma7-{convention}", "fig5", target, {"preprocessing": steps})
            for convention, steps in MEDIAN_GAMMA.items()
        ),
    ]
    # The longest chain first: Pix2Pix, then the fine-tunings that start from it, then the short
    # evaluations of Figures 3-5, so that with jobs > 1 they fill the end; the GANs of §1, which need
    # nothing else, fill the other processes while Pix2Pix trains.
    tasks = [
        _Task(
            "pix2pix-source",
            f"Training pix2pix ({pix2pix.section}) on the source domain",
            _train,
            {"config": pix2pix, "data": source, "out": pretrained, **pix2pix_options},
        ),
        *(
            _Task(
                name,
                f"Fine-tuning: {name} ({config.section}) on the target domain, then evaluating it "
                f"(Figure {role.removeprefix('fig')})",
                _finetune_and_evaluate,
                {
                    "config": config,
                    "data": target,
                    "out": work / name,
                    "generator": generator,
                    "evaluation": evaluation,
                    "role": role,
                    "seed": pix2pix.seed,
                    **pix2pix_options,
                },
                after=("pix2pix-source",),
            )
            for config, name, role, evaluation in fine_tunings
        ),
        _Task(
            "evaluations-fig3-5",
            "Evaluating pix2pix on the source domain (Figure 3), on raw target SAR (Figure 4) and on "
            "median 7 + gamma 7 target SAR in both gamma conventions (Figure 5)",
            _evaluate_pretrained,
            {"generator": generator, "evaluations": transfer, "seed": pix2pix.seed},
            after=("pix2pix-source",),
        ),
        *(
            _Task(
                config.name,
                f"Training {config.name} ({config.section}) on the target domain",
                _train,
                {
                    "config": config,
                    "data": data_target,
                    "out": work / config.name,
                    "pairs": scale.gan_pairs,
                    **run_options,
                },
            )
            for config in gans
        ),
    ]
    run_tasks(tasks, jobs, stage, work / "logs")

    stage(f"Writing the report into {out}")
    runs = [work / config.name for config in gans] + [pretrained] + [work / name for _, name, _, _ in fine_tunings]
    figures = [(role, folder) for folder, role, _, _ in transfer] + [
        (role, folder) for *_, role, folder in fine_tunings
    ]
    title = f"SAR-to-optical translation: reproduction report ({scale.name} scale)"
    return build_report(runs, out, figures=figures, title=title)
