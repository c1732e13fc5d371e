"""The fine-tuning scripts (report §4) end to end: pre-train on synthetic sentinel, fine-tune on qxslab."""

import contextlib
import io
import json

import keras
import numpy as np
import pandas as pd
import pytest

from keras_sar2opt import finetune, lora
from keras_sar2opt.cli import main, train_main
from keras_sar2opt.model_files import load_generator
from keras_sar2opt.models import pix2pix_discriminator

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pix2pix")]

# CPU-sized settings shared by both runs (Pix2Pix needs 256x256): 16/2/2 pairs, epochs of 2 steps, those of the
# session's pre-training (conftest.py), so a run without --generator finds it in the cache.
SETTINGS = ["--pairs", "20", "--batch-size", "2", "--steps-per-epoch", "2", "--sample-every", "1", "--verbose", "0"]
EPOCHS = {"lora_run": 2, "full_run": 1}
TABLE8_COLUMNS = ["d_loss", "g_loss", "g_l1", "val_d_loss", "val_g_loss", "val_g_l1"]


def _train(experiment, argv):
    """The script's main in this process; returns what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert train_main(experiment, argv) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def lora_run(module_tmp, pretrained_pix2pix):
    """train_finetune_lora.py without --generator, adapters plus dec8 and head: (run folder, printed text).

    Its --cache holds the session's pre-training, which its options name."""
    out = module_tmp("lora") / "run"
    argv = [
        *SETTINGS,
        "--epochs",
        str(EPOCHS["lora_run"]),
        "--pretrain-epochs",
        str(pretrained_pix2pix.settings["epochs"]),
        "--cache",
        str(pretrained_pix2pix.cache),
        "--also-train",
        "dec8,head",
        "--out",
        str(out),
    ]
    return out, _train("finetune-lora", argv)


@pytest.fixture(scope="module")
def pretrained(pretrained_pix2pix):
    """The generator of the session's pre-training on sentinel pairs."""
    return pretrained_pix2pix.generator


@pytest.fixture(scope="module")
def full_run(module_tmp, pretrained):
    """train_finetune_full.py --generator (the cached one) --discriminator (a saved fresh one)."""
    root = module_tmp("full")
    discriminator = root / "discriminator.keras"
    pix2pix_discriminator(256).save(discriminator)
    out = root / "run"
    argv = [
        *SETTINGS,
        "--epochs",
        str(EPOCHS["full_run"]),
        "--generator",
        str(pretrained),
        "--discriminator",
        str(discriminator),
        "--out",
        str(out),
    ]
    return out, _train("finetune-full", argv)


def _weights(model):
    return {weight.path: np.array(weight) for weight in model.weights}


@pytest.mark.parametrize("name", ["lora_run", "full_run"])
def test_run_folder_and_lower_held_out_l1_after_finetuning(name, request):
    out, printed = request.getfixturevalue(name)
    epochs = EPOCHS[name]
    for file in (
        "config.json",
        "split.json",
        "history.csv",
        "loss_curves.png",
        "accuracy_curves.png",
        f"samples/epoch_{epochs:03d}.png",
        "checkpoints/last.keras",
        "generator.keras",
        "held_out.json",
    ):
        assert (out / file).is_file() and (out / file).stat().st_size > 0, file
    history = pd.read_csv(out / "history.csv")
    assert len(history) == epochs and np.isfinite(history[TABLE8_COLUMNS].to_numpy()).all()
    held_out = json.loads((out / "held_out.json").read_text())
    assert (held_out["split"], held_out["pairs"]) == ("val", 2)
    assert held_out["l1_after"] < held_out["l1_before"]
    # The saved generator (merged, for LoRA) is the one measured, and the model of the last epoch's val_g_l1.
    assert finetune.weights_digest(load_generator(out / "generator.keras")) == held_out["weights"]["after"]
    assert held_out["l1_after"] == pytest.approx(history["val_g_l1"].iloc[-1], abs=1e-4)
    assert f"{held_out['l1_before']:.4f} before fine-tuning, {held_out['l1_after']:.4f} after" in printed
    assert json.loads((out / "config.json").read_text())["run"]["synthetic"]["preset"] == "qxslab"


def test_pretraining_on_sentinel_is_cached_and_reused(lora_run, pretrained_pix2pix, capsys):
    out, printed = lora_run
    cache, pretrained = pretrained_pix2pix.cache, pretrained_pix2pix.generator
    assert f"Pre-training pix2pix on 20 synthetic sentinel pairs into {pretrained.parent}" in pretrained_pix2pix.printed
    assert f"Using the cached generator pre-trained on synthetic sentinel pairs: {pretrained}" in printed
    settings = json.loads((pretrained.parent / "config.json").read_text())
    assert (settings["experiment"]["name"], settings["run"]["synthetic"]["preset"]) == ("pix2pix", "sentinel")
    written = pretrained.stat().st_mtime_ns
    assert finetune.pretrain_generator(cache, strategy="none", **pretrained_pix2pix.settings) == pretrained
    assert "Using the cached generator" in capsys.readouterr().out and pretrained.stat().st_mtime_ns == written
    assert json.loads((out / "config.json").read_text())["finetune"]["pretraining"] == str(pretrained.parent.resolve())


def test_lora_run_trains_adapters_and_named_layers_only(lora_run, pretrained):
    out, printed = lora_run
    settings = json.loads((out / "config.json").read_text())
    parameters = settings["finetune"]["parameters"]
    assert (parameters["trainable"], parameters["adapters"], parameters["generator"]) == (820_803, 687_872, 54_541_827)
    assert "820,803 trainable generator parameters = 1.505% of 54,541,827" in printed
    assert "roughly 820,000, about 1.5%" in printed
    assert settings["experiment"]["also_train"] == ["dec8", "head"]
    assert settings["finetune"]["generator"] == str(pretrained.resolve())

    base = keras.saving.load_model(pretrained)
    trained = keras.saving.load_model(out / "checkpoints" / "last.keras").generator
    adapters = [layer for layer in trained.layers if isinstance(layer, lora.LoRAConv)]
    assert sorted(layer.name for layer in adapters) == [f"enc{k}_conv" for k in range(1, 9)]
    for layer in adapters:  # B starts at zero
        assert np.abs(np.array(layer.lora_b.kernel)).max() > 0, layer.name
    for layer in trained.layers:
        weights = layer.layer.weights if isinstance(layer, lora.LoRAConv) else layer.weights
        original = base.get_layer(layer.name).weights
        assert len(weights) == len(original), layer.name
        for weight, start in zip(weights, original):
            if layer.name in ("dec8_conv", "head_conv"):
                assert not np.array_equal(np.array(weight), np.array(start)), weight.path
            elif not layer.name.startswith(("dec8_", "head_")):  # BatchNorm statistics included, bit for bit
                np.testing.assert_array_equal(np.array(weight), np.array(start), err_msg=f"{layer.name} {weight.path}")

    merged = keras.saving.load_model(out / "generator.keras")
    assert not any(isinstance(layer, lora.LoRAConv) for layer in merged.layers)
    assert (out / "adapters.safetensors").stat().st_size < 0.02 * (out / "generator.keras").stat().st_size
    from_adapters = lora.load_adapters(base, out / "adapters.safetensors", rank=16, alpha=32)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 256, 256, 3)).astype("float32")
    np.testing.assert_allclose(merged(x, training=False), from_adapters(x, training=False), atol=1e-4)


def test_full_run_trains_every_generator_kernel_from_the_given_networks(full_run, pretrained):
    out, printed = full_run
    settings = json.loads((out / "config.json").read_text())
    assert settings["finetune"]["parameters"]["trainable"] == 54_541_827
    assert "54,541,827 trainable generator parameters = 100.000% of 54,541,827" in printed
    assert settings["finetune"]["discriminator"].endswith("discriminator.keras")
    assert settings["experiment"]["g_optimizer"]["learning_rate"] == 5e-5
    assert not (out / "adapters.safetensors").exists()
    start = _weights(keras.saving.load_model(pretrained))
    final = _weights(keras.saving.load_model(out / "generator.keras"))
    kernels = [path for path in final if path.endswith("kernel")]
    assert len(kernels) == 17 and all(not np.array_equal(final[path], start[path]) for path in kernels)


def test_unknown_also_trained_layer_fails_before_data_is_written(pretrained, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--experiment",
        "finetune-lora",
        "--generator",
        str(pretrained),
        "--also-train",
        "dec9",
        "--out",
        str(out),
    ]
    assert main(argv) == 1
    error = capsys.readouterr().err
    blocks = ", ".join([f"enc{k}" for k in range(1, 9)] + [f"dec{k}" for k in range(1, 9)] + ["head"])
    assert (
        f"Expected also_train (--also-train) to name layers or block prefixes of model 'pix2pix_generator' ({blocks}), "
        "received 'dec9'" in error
    )
    assert not out.exists()
