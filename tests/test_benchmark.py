"""The benchmark machinery at toy sizes: FLOP counts, timing, the table and the command."""

import json
import math

import keras
import numpy as np
import pytest

from benchmarks import (
    flops,
    paths,
    report,
    results,
    step_variants,
    timing,
    torch_pix2pix,
    torch_report_gan,
    transposed_conv,
)
from keras_sar2opt import cli
from keras_sar2opt.models import patchgan_discriminator, unet_generator

TOY = dict(
    workloads=("report-gan-train",),
    precisions=("float32",),
    torch=False,
    report_gan_size=32,
    report_gan_batch=2,
    pix2pix_size=32,
    pairs=4,
    warmup=2,
    steps=1,
    repeats=2,
    budget=5.0,
    quiet_wait=0.0,
    matmul_size=128,
)


def tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)  # -> 4x4x4
    x = keras.layers.Conv2D(6, 1, groups=2)(x)  # -> 4x4x6, grouped
    x = keras.layers.Conv2DTranspose(2, 2, strides=2)(x)  # -> 8x8x2
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)
    return keras.Model(inputs, outputs)


def test_forward_macs_equals_a_hand_count():
    hand = (
        4 * 4 * 3 * 3 * 3 * 4  # Conv2D: output positions x kernel x C_in x C_out
        + 4 * 4 * 1 * 1 * (4 // 2) * 6  # grouped 1x1 Conv2D: C_in per group
        + 4 * 4 * 2 * 2 * 6 * 2  # Conv2DTranspose: input positions x kernel x C_in x C_out
        + 8 * 8 * 2 * 5  # Dense on the flattened 8x8x2
    )
    assert flops.forward_macs(tiny_model()) == hand
    outer = keras.Sequential([keras.Input((8, 8, 3)), tiny_model()])  # nested models are walked
    assert flops.forward_macs(outer) == hand


def test_forward_macs_of_table5_generator():
    # Table 5 at 128x128: (input or output positions, kernel, C_in, C_out) of each layer.
    layers = [
        (64 * 64, 16, 3, 64),
        (32 * 32, 16, 64, 128),
        (16 * 16, 16, 128, 256),
        (8 * 8, 16, 256, 512),
        (8 * 8, 16, 512, 256),
        (16 * 16, 16, 512, 128),
        (32 * 32, 16, 256, 64),
        (64 * 64, 16, 128, 3),
    ]
    assert flops.forward_macs(unet_generator()) == sum(math.prod(layer) for layer in layers)


def test_train_flops_formula():
    assert flops.train_flops(10, 1) == 2 * (3 * 10 + 8 * 1)


def test_budget_turns_slow_calls_into_single_timed_calls():
    settings = timing.Settings(steps=4, repeats=5, budget=10.0)
    assert timing._plan_calls(0.1, settings) == (4, 5)
    assert timing._plan_calls(3.0, settings) == (1, 3)
    assert timing._plan_calls(100.0, settings) == (1, 1)


def test_medians_are_over_quiet_blocks_when_there_are_any():
    quiet = timing.summarise([1.0, 2.0, 10.0], [0.0, 1.5, 0.1], calls=6)
    assert (quiet.rate, quiet.calls, quiet.quiet_blocks, quiet.blocks) == (5.5, 6, 2, 3)
    assert quiet.others == pytest.approx(0.05)
    busy = timing.summarise([1.0, 2.0, 10.0], [1.0, 1.5, 2.0], calls=3)
    assert (busy.rate, busy.quiet_blocks) == (2.0, 0) and busy.others == pytest.approx(1.5)
    unknown = timing.summarise([3.0], [math.nan], calls=1)  # no /proc: every block counts
    assert unknown.rate == 3.0 and unknown.quiet_blocks == 1 and math.isnan(unknown.others)
    assert timing.summarise([1.0, 2.0], [0.0, 1.0], 2, cpu=[4.0, 9.0]).cpu_per_call == 4.0


def test_command_runs_a_toy_benchmark_and_writes_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(timing.Settings, "quick", classmethod(lambda cls, **overrides: cls(**{**TOY, **overrides})))
    out = tmp_path / "reports" / "benchmarks.md"
    assert cli.main(["benchmark", "--quick", "--no-torch", "--precision", "float32", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert "`sar2opt benchmark --quick --backend tensorflow --precision float32 --no-torch --out" in text
    assert "| " + " | ".join(report.TABLE_COLUMNS) + " |" in text
    assert "## Targets" in text and "| TensorFlow | float32 | 128×128 |" in text
    (line,) = [line for line in text.splitlines() if line.startswith(f"| {results.REPORT_GAN_TRAIN} |")]
    cells = dict(zip(report.TABLE_COLUMNS, (cell.strip() for cell in line.strip("|").split("|"))))
    assert cells["feed"] == results.DISK and cells["batch"] == "2" and cells["precision"] == "float32"
    for column in ("Keras img/s", "Keras GFLOP/s"):
        assert np.isfinite(float(cells[column])) and float(cells[column]) > 0
    per_image = flops.train_flops(
        flops.forward_macs(unet_generator(32)), flops.forward_macs(patchgan_discriminator(32))
    )
    assert cells["GFLOP/img"] == f"{per_image / 1e9:.4g}"
    assert float(cells["of matmul ceiling"].rstrip("%")) > 0
    assert cells["PyTorch img/s"] == "—"  # --no-torch


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--repeats", "0"], "Expected --repeats to be a positive integer, received 0"),
        (["--budget", "-1"], "Expected --budget to be a positive number of seconds, received -1"),
        (["--quiet-wait", "-5"], "Expected --quiet-wait to be a non-negative number of seconds, received -5"),
        (["--backend", "jax"], "Expected the Keras backend jax before Keras is imported"),
    ],
)
def test_bad_options_are_one_line_errors(argv, message, tmp_path, capsys):
    assert cli.main(["benchmark", "--no-torch", "--out", str(tmp_path / "b.md"), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_out_must_not_be_a_folder(tmp_path, capsys):
    assert cli.main(["benchmark", "--out", str(tmp_path)]) == 1
    assert f"Expected a writable --output file, received {tmp_path} ({tmp_path} is a folder)" in capsys.readouterr().err


@pytest.mark.torch
def test_torch_side_counts_the_same_flops_and_runs():
    torch = pytest.importorskip("torch")
    from keras_sar2opt.models import pix2pix_generator

    networks = torch_pix2pix.build_networks()
    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        weight = module.weight
        if isinstance(module, torch.nn.ConvTranspose2d):  # weight (C_in, C_out, k, k)
            macs += math.prod(inputs[0].shape[2:]) * weight.numel()
        else:  # weight (C_out, C_in, k, k)
            macs += math.prod(output.shape[2:]) * weight.numel()

    hooks = [
        module.register_forward_hook(count)
        for module in networks[0].modules()
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    call = torch_pix2pix.inference_call(networks[0], 1, 256, bf16=False)
    output = call()
    for hook in hooks:
        hook.remove()
    assert output.shape == (1, 3, 256, 256) and np.isfinite(output).all()
    assert macs == flops.forward_macs(pix2pix_generator())
    sar, optical = torch_pix2pix.images(2, 256, seed=1), torch_pix2pix.images(2, 256, seed=2)
    step = torch_pix2pix.train_step(networks, sar, optical, bf16=False)  # BatchNorm of enc8 (1x1) needs 2
    assert np.isfinite(step().item())


def test_gpu_section_compares_each_rate_with_pytorch_bf16_autocast_and_the_best_pytorch_rate(tmp_path):
    assert report.gpu_section(tmp_path) == []
    records = [
        {
            "framework": "Keras 3 / JAX",
            "device": "cuda:0",
            "device_data": True,
            "steps_per_execution": 1,
            "rates": {"float32": 700.0, "mixed_bfloat16": 1500.0},
        },
        {
            "framework": "PyTorch eager",
            "device": "NVIDIA H100",
            "channels_last": False,
            "rates": {"float32": 750.0, "bf16 autocast": 1000.0},
        },
        {"framework": "PyTorch eager", "device": "NVIDIA H100", "rates": {"bf16 autocast": 960.0}},
        {
            "framework": "Keras 3 / JAX",
            "device": "cuda:0",
            "device_data": False,
            "steps_per_execution": 4,
            "rates": {"mixed_bfloat16": 1200.0},
        },
        {
            "framework": "PyTorch eager",
            "device": "NVIDIA H100",
            "channels_last": True,
            "rates": {"bf16 autocast": 1250.0},
        },
    ]
    (tmp_path / "gpu_pix2pix_h100.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    text = "\n".join(report.gpu_section(tmp_path))
    assert "## GPU: Pix2Pix train step, batch 32, 256×256 (NVIDIA H100)" in text
    # The reference is the median of the NCHW bf16 autocast rates (1000 and 960: 980); the best is 1250.
    assert "| Keras 3 / JAX | batches on the GPU | mixed_bfloat16 | 1,500 | 1.53 | 1.20 |" in text
    assert "| Keras 3 / JAX | host arrays, 4 steps per call | mixed_bfloat16 | 1,200 | 1.22 | 0.96 |" in text
    assert "| PyTorch eager | NCHW | float32 | 750 | 0.77 | 0.60 |" in text
    assert "| PyTorch eager | channels_last | bf16 autocast | 1,250 | 1.28 | 1.00 |" in text


def test_out_under_a_file_is_refused_before_the_backend_loads(tmp_path, cli_error, monkeypatch):
    monkeypatch.setattr(timing, "configure", lambda *args: pytest.fail("the backend was configured"))
    blocker = tmp_path / "file.png"
    blocker.write_bytes(b"not a folder")
    line = cli_error(["benchmark", "--no-torch", "--out", str(blocker / "b.md")])
    assert (
        line == f"sar2opt benchmark: error: Expected a writable --output file, received {blocker / 'b.md'} "
        f"({blocker} is a file)"
    )


def test_an_installed_package_without_the_benchmarks_folder_is_a_one_line_error(tmp_path, cli_error, monkeypatch):
    import keras_sar2opt

    package = tmp_path / "site-packages" / "keras_sar2opt"
    monkeypatch.setattr(keras_sar2opt, "__file__", str(package / "__init__.py"))
    line = cli_error(["benchmark", "--no-torch", "--out", str(tmp_path / "b.md")])
    assert line == (
        "sar2opt benchmark: error: Expected a source checkout of keras_sar2opt with its benchmarks/ folder for "
        f"`sar2opt benchmark` (clone the repository; pip install -e .), received an installed package at {package}"
    )


@pytest.mark.slow
def test_paths_time_fit_from_the_pipeline_in_fresh_processes_that_report_their_kernels(tmp_path):
    settings = timing.Settings(**{**TOY, "repeats": 2, "block_seconds": 0.1})
    measured = paths.measure("report-gan-fit", settings, ("library", "cli"), tmp_path / "data", torch=False)
    assert [(t.workload, t.path, t.batch) for t in measured] == [("report-gan-fit", p, 2) for p in ("library", "cli")]
    for t in measured:
        # Started without TF_ENABLE_ONEDNN_OPTS, the package set it and TensorFlow enabled oneDNN.
        assert (t.runtime["TF_ENABLE_ONEDNN_OPTS"], t.runtime["onednn"]) == ("1", True)
        assert len(t.rates) == 2 and all(rate > 0 for rate in t.rates) and t.ratios == []
    assert (tmp_path / "data").is_dir()


def test_paths_section_and_targets_come_from_the_per_round_rates():
    runtime = {"onednn": True, "TF_ENABLE_ONEDNN_OPTS": "1", "slow-kernels warning": False, "threads": "all"}
    fit = {
        path: paths.PathTiming("pix2pix-fit", path, 4, runtime, rates, [3.0], ratios)
        for path, rates, ratios in (("library", [1.0, 1.2], [1.25, 1.3]), ("cli", [1.0, 1.0], [1.25, 1.1]))
    }
    train_on_batch = paths.PathTiming("pix2pix-train-on-batch", "library", 4, runtime, [1.0, 1.25], [3.0], [1.3])
    inference = paths.PathTiming("pix2pix-inference", "library", 4, runtime, [6.0], [3.0], [1.5])
    measured = results.Results(timing.Settings(), {}, paths=[*fit.values(), train_on_batch, inference])
    values = {target.name: (value, target.met(value)) for target, value in report.path_target_values(measured)}
    assert values["Pix2Pix fit, library path / CLI path"] == (pytest.approx(1.1), False)  # median of 1.0 and 1.2
    assert values["Pix2Pix fit() / train_on_batch, same batches, library path"] == (pytest.approx(0.98), True)
    assert values["Pix2Pix fit() from training_batches b4, library path / PyTorch"] == (pytest.approx(1.275), True)
    assert values["Pix2Pix inference b4 predict_on_batch, library path / PyTorch"] == (1.5, False)
    value, met = values["report GAN fit() b32 (Tables 5 + 3), library path / PyTorch"]
    assert math.isnan(value) and met is None
    text = "\n".join(report.paths_section(measured))
    row = "| Pix2Pix train step, fit() from training_batches | 4 | library | oneDNN on (TF_ENABLE_ONEDNN_OPTS=1), all |"
    assert row in text
    assert "| Pix2Pix train step, train_on_batch from training_batches | 4 | library |" in text


@pytest.mark.torch
def test_torch_report_gan_has_the_tables_parameters_and_shapes():
    torch = pytest.importorskip("torch")
    generator, discriminator, _ = torch_report_gan.build_networks()
    count = lambda network: sum(p.numel() for p in network.parameters())  # noqa: E731
    trainable = lambda model: sum(math.prod(w.shape) for w in model.trainable_weights)  # noqa: E731
    assert count(generator) == trainable(unet_generator()) == 6_173_699
    assert count(discriminator) == trainable(patchgan_discriminator()) == 696_673
    sar = torch.zeros(2, 3, 128, 128)
    generated = generator(sar)
    assert generated.shape == (2, 3, 128, 128)
    assert discriminator(torch.cat([sar, generated], 1)).shape == (2, 1, 16, 16)  # Table 3's 16x16 patches


def test_step_variants_table_gives_ratios_and_loss_differences_to_the_default():
    logs = {variant: dict.fromkeys(step_variants.LOSSES, 2.0) for variant in step_variants.VARIANTS}
    logs["XLA"]["g_l1"] = 2.5
    rates = {variant: [1.0, 2.0, 4.0] for variant in step_variants.VARIANTS}
    rates["D on 2B"] = [1.5, 2.0, 4.4]  # per round 1.5, 1.0, 1.1 times default's
    assert step_variants.relative_difference(logs, "XLA") == pytest.approx(0.25)
    table = step_variants.format_table(logs, dict.fromkeys(step_variants.VARIANTS, 3.0), rates, [1.0] * 3, 5)
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in table.splitlines()[2:7]}
    assert [cell.strip() for cell in rows["D on 2B"]] == ["1.5, 2, 4.4", "2.000", "1.10", "0.0e+00", "3"]
    assert rows["XLA"][3].strip() == "2.5e-01"


def test_transposed_conv_benchmark_times_the_generators_decoder_layers():
    # §3.1 at 256 px: dec1 reads enc8's 1x1x512, dec_k the concatenation of dec_{k-1} and an encoder output.
    inputs = [(512, 1), (1024, 2), (1024, 4), (1024, 8), (1024, 16), (512, 32), (256, 64), (128, 128)]
    filters = (512, 512, 512, 512, 256, 128, 64, 64)
    expected = [(f"dec{k}", cin, cout, side) for k, ((cin, side), cout) in enumerate(zip(inputs, filters), start=1)]
    layers = transposed_conv.decoder_layers()
    assert layers == expected
    small = [("dec8", 6, 4, 8)]
    times = {"tf": transposed_conv.tensorflow_times(small, 1, 1), "torch": transposed_conv.torch_times(small, 1, 1)}
    assert all(len(seconds["dec8"]) == 3 and min(seconds["dec8"]) > 0 for seconds in times.values())
    table = transposed_conv.table(small, {"dec8": [0.002, 0.004, 0.006]}, {"dec8": [0.001, 0.002, 0.003]})
    assert "| dec8 (6 → 4, 8) | 2.0 | 1.0 | 4.0 | 2.0 | 6.0 | 3.0 |" in table
    assert table.endswith("forward 2.00, input gradient 2.00, filter gradient 2.00.")
