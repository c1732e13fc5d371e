"""Variants of the Pix2Pix train step on the CPU, side by side in one process: speed and results.

`python -m benchmarks.step_variants [--steps 5] [--rounds 3] [--block 2]` prints a Markdown table
(reports/cpu-profile.md). Each variant is AdversarialModel's compiled train function on the same
batches of `data.pipeline.training_batches` (Pix2Pix, batch 4, 256×256, float32), built from the
same seed:

- `default`: the step as `sar2opt train` runs it (keras_sar2opt.training.tf_step);
- `default, again`: a second model of the same step, the run-to-run spread of float32 round-off;
- `Keras BatchNorm and Adam`: the step with Keras's own ops for BatchNorm and Adam in place of
  TensorFlow's fused kernels (keras_sar2opt.training.fused), as it was traced before those;
- `XLA`: the same step with `jit_compile=True`;
- `D on 2B`: D's real and fake passes as one call on the batch of 2B (real then fake), split after it.
  Its BatchNorm layers then normalise with the statistics of real and fake images together;
- `fit()`: the default step through `model.fit` on the same batches (a tf.data stream of them), with
  the run's per-step callback (the NaN guard): fit()'s cost over `train_on_batch`'s. Its timed block
  is one fit() call, so the call's own setup (iterator, callbacks) counts against its `--block` steps.

First each variant makes `--steps` steps on the same batches (fit(): one call per step, so that its
logs are the last step's, as train_on_batch's) and its logged losses are compared with
`default`'s (the largest relative difference over d_loss, g_loss, g_adv, g_l1). Then the variants
are timed in whole blocks of `--block` steps, in turn, for `--rounds` rounds (each round starting
with the next variant); a rate is the median over rounds, a ratio the median of per-round ratios to
`default`'s block. Only Keras runs in this process, so blocks of different variants do not disturb
each other beyond the machine's load, given with each round.
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time

from benchmarks import worker

LOSSES = ("d_loss", "g_loss", "g_adv", "g_l1")
VARIANTS = ("default", "default, again", "Keras BatchNorm and Adam", "XLA", "D on 2B", "fit()")


def _joint_discriminator_step(model, sar, optical, generated):
    """tf_step's D update with the real and the fake pair in one call of D on 2B examples."""
    import tensorflow as tf

    from keras_sar2opt.training import tf_step

    with tf.GradientTape() as tape:
        both = model.discriminate(tf.concat([sar, sar], 0), tf.concat([optical, generated], 0), training=True)
        real_output, fake_output = tf.split(both, 2)
        values = model.discriminator_values(real_output, fake_output)
        loss = tf_step.global_mean(values["d_loss"])
    variables = model.discriminator.trainable_variables
    model.d_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    tf_step.update_trackers(model, values)


@contextlib.contextmanager
def _variant_step(variant):
    """tf_step with `variant`'s D update while the variant's train function is traced."""
    from keras_sar2opt.training import fused, tf_step

    original = tf_step._discriminator_step, fused.kernels
    if variant == "D on 2B":
        tf_step._discriminator_step = _joint_discriminator_step
    if variant == "Keras BatchNorm and Adam":
        fused.kernels = contextlib.nullcontext
    try:
        yield
    finally:
        tf_step._discriminator_step, fused.kernels = original


def _build(variant, config):
    model = worker.keras_model(config)
    model.jit_compile = variant == "XLA"
    return model


def _steps(model, variant, batches):
    """Train `model` on `batches`; returns the logs of the last step."""
    if variant == "fit()":
        import tensorflow as tf

        stream = tf.data.Dataset.from_tensor_slices(tuple(tf.stack(images) for images in zip(*batches)))
        history = model.fit(stream, epochs=1, verbose=0, shuffle=False, callbacks=worker.run_step_callbacks())
        return {name: values[-1] for name, values in history.history.items()}
    with _variant_step(variant):  # the first call traces the train function
        for batch in batches:
            logs = model.train_on_batch(*batch, return_dict=True)
    return logs


def run(steps, rounds, block, variants=VARIANTS, pairs=16):
    from keras_sar2opt.experiments import PIX2PIX

    config = PIX2PIX.with_overrides(batch_size=4, image_size=256)
    with tempfile.TemporaryDirectory(prefix="sar2opt-step-variants-") as folder:
        data = worker.synthetic_pairs(os.path.join(folder, "data"), pairs, config.image_size)
        stream = iter(worker.disk_training_data(data, config))
        checked = [next(stream) for _ in range(steps)]
        timed = [next(stream) for _ in range(block)]
        del stream  # its prefetching reads the folder
    models, logs, first_call = {}, {}, {}
    for variant in variants:
        models[variant] = _build(variant, config)
        started = time.perf_counter()
        for batch in checked:
            logs[variant] = _steps(models[variant], variant, [batch])
        first_call[variant] = time.perf_counter() - started
    rates = {variant: [] for variant in variants}
    loads = []
    for round_ in range(rounds):
        order = [variants[(round_ + i) % len(variants)] for i in range(len(variants))]
        for variant in order:
            started = time.perf_counter()
            _steps(models[variant], variant, timed)
            rates[variant].append(config.batch_size * block / (time.perf_counter() - started))
        loads.append(os.getloadavg()[0])
    return logs, first_call, rates, loads


def relative_difference(logs, variant):
    """The largest relative difference of `variant`'s logged losses from `default`'s."""
    default = {k: float(logs["default"][k]) for k in LOSSES}
    return max(abs(float(logs[variant][k]) - default[k]) / abs(default[k]) for k in LOSSES)


def format_table(logs, first_call, rates, loads, steps):
    lines = [
        f"| variant | img/s per round | median img/s | / default (median of rounds) | "
        f"losses after {steps} steps, largest relative difference to default | first {steps} steps, s |",
        "|---|---|---|---|---|---|",
    ]
    for variant in rates:
        ratios = [a / b for a, b in zip(rates[variant], rates["default"])]
        lines.append(
            f"| {variant} | {', '.join(f'{r:.3g}' for r in rates[variant])} | {statistics.median(rates[variant]):.3f} "
            f"| {statistics.median(ratios):.2f} | {relative_difference(logs, variant):.1e} "
            f"| {first_call[variant]:.0f} |"
        )
    lines.append("")
    lines.append(f"1-minute load average after each round: {', '.join(f'{load:.2f}' for load in loads)}.")
    losses = ", ".join(f"{k} {float(logs['default'][k]):.6g}" for k in LOSSES)
    lines.append(f"default's losses after {steps} steps: {losses}.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="steps before the losses are compared")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds")
    parser.add_argument("--block", type=int, default=2, help="steps per timed block")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=VARIANTS,
        metavar="VARIANT",
        help=f"the variants to run, each quoted, out of: {'; '.join(VARIANTS)} (default is always run; default: all)",
    )
    args = parser.parse_args()
    import keras_sar2opt  # noqa: F401  (oneDNN on, as for every user of the package)

    variants = ("default", *(variant for variant in args.variants if variant != "default"))
    results = run(args.steps, args.rounds, args.block, variants)
    print(format_table(*results, args.steps))


if __name__ == "__main__":
    main()
