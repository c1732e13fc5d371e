"""The report's networks: every table row, the totals, Pix2Pix naming and `.keras` round trips."""

import math

import keras
import numpy as np
import pytest

from keras_sar2opt import hardware
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.models import (
    INPUT_SIZES,
    MODELS,
    build_model,
    check_model,
    patchgan_discriminator,
    pix2pix_discriminator,
    pix2pix_generator,
    scratch_discriminator,
    unet_generator,
    wgan_critic,
)
from keras_sar2opt.models.pix2pix import GENERATOR_BLOCKS

# Transcribed from the report: (our layers covering the row, output shape, parameters).
TABLE_1 = [
    (("conv1",), (32, 32, 64), 1_792),
    (("lrelu1",), (32, 32, 64), 0),
    (("conv2",), (16, 16, 128), 73_856),
    (("lrelu2",), (16, 16, 128), 0),
    (("conv3",), (8, 8, 128), 147_584),
    (("lrelu3",), (8, 8, 128), 0),
    (("conv4",), (4, 4, 256), 295_168),
    (("lrelu4",), (4, 4, 256), 0),
    (("flatten",), (4096,), 0),
    (("dropout",), (4096,), 0),
    (("dense",), (1,), 4_097),
]
TABLE_3 = [
    (("sar",), (128, 128, 3), 0),
    (("optical",), (128, 128, 3), 0),
    (("concat",), (128, 128, 6), 0),
    (("conv1",), (64, 64, 32), 3_104),
    (("lrelu1",), (64, 64, 32), 0),
    (("conv2",), (32, 32, 64), 32_832),
    (("bn2",), (32, 32, 64), 256),
    (("lrelu2",), (32, 32, 64), 0),
    (("conv3",), (16, 16, 128), 131_200),
    (("bn3",), (16, 16, 128), 512),
    (("lrelu3",), (16, 16, 128), 0),
    (("dropout",), (16, 16, 128), 0),
    (("conv4",), (16, 16, 256), 524_544),
    (("bn4",), (16, 16, 256), 1_024),
    (("lrelu4",), (16, 16, 256), 0),
    (("conv5",), (16, 16, 1), 4_097),
]
TABLE_5 = [
    (("enc1", "enc1_lrelu"), (64, 64, 64), 3_136),
    (("enc2", "enc2_bn", "enc2_lrelu"), (32, 32, 128), 131_712),
    (("enc3", "enc3_bn", "enc3_lrelu"), (16, 16, 256), 525_568),
    (("enc4", "enc4_bn", "enc4_lrelu"), (8, 8, 512), 2_099_712),
    (("dec1", "dec1_bn", "dec1_relu"), (16, 16, 256), 2_098_432),
    (("dec2", "dec2_bn", "dec2_relu"), (32, 32, 128), 1_049_216),
    (("dec3", "dec3_bn", "dec3_relu"), (64, 64, 64), 262_464),
    (("out", "out_tanh"), (128, 128, 3), 6_147),
]
TABLES = [
    pytest.param("scratch_discriminator", TABLE_1, 522_497, id="table1"),
    pytest.param("wgan_critic", TABLE_1, 522_497, id="table1-critic"),
    pytest.param("patchgan_discriminator", TABLE_3, 697_569, id="table3"),
    pytest.param("unet_generator", TABLE_5, 6_176_387, id="table5"),
]

PIX2PIX_TRAINABLE = 54_541_827
PIX2PIX_TOTAL = 54_552_835
# Pix2Pix decoder convolutions (in, out channels), dec1..dec8: the upsample variant replaces
# each bias-free 4x4 transposed conv (16*in*out weights) by a bias-free 3x3 conv (9*in*out).
DECODER_CHANNELS = [(512, 512), (1024, 512), (1024, 512), (1024, 512), (1024, 256), (512, 128), (256, 64), (128, 64)]
UPSAMPLE_SAVING = sum((16 - 9) * cin * cout for cin, cout in DECODER_CHANNELS)


def trainable_count(model):
    return sum(math.prod(weight.shape) for weight in model.trainable_weights)


@pytest.fixture(scope="module")
def models():
    """Each default network built once per module (the Pix2Pix ones are large)."""
    built = {}

    def get(name):
        if name not in built:
            built[name] = build_model(name)
        return built[name]

    return get


@pytest.mark.parametrize("name, table, total", TABLES)
def test_every_row_and_total_match_the_report(models, name, table, total):
    model = models(name)
    for number, (layers, shape, params) in enumerate(table, start=1):
        found = [model.get_layer(layer) for layer in layers]
        assert tuple(found[-1].output.shape[1:]) == shape, f"row {number} {layers}"
        assert sum(layer.count_params() for layer in found) == params, f"row {number} {layers}"
    assert model.count_params() == total


def test_pix2pix_generator_counts_and_output(models):
    model = models("pix2pix_generator")
    assert trainable_count(model) == PIX2PIX_TRAINABLE
    assert model.count_params() == PIX2PIX_TOTAL
    assert model.output.shape == (None, 256, 256, 3)


def test_pix2pix_discriminator_counts_and_output(models):
    model = models("pix2pix_discriminator")
    assert trainable_count(model) == 2_768_705
    assert model.output.shape == (None, 30, 30, 1)


def check_upsample_decoder(model, mode):
    assert model.output.shape == (None, 256, 256, 3)
    assert trainable_count(model) == PIX2PIX_TRAINABLE - UPSAMPLE_SAVING == 39_230_979
    assert model.count_params() == PIX2PIX_TOTAL - UPSAMPLE_SAVING
    for k in range(1, 9):
        assert model.get_layer(f"dec{k}_upsample").interpolation == mode
        conv = model.get_layer(f"dec{k}_conv")
        assert conv.kernel_size == (3, 3) and not conv.use_bias


def test_pix2pix_upsample_decoder_nearest():
    check_upsample_decoder(pix2pix_generator(decoder="upsample"), "nearest")


def test_pix2pix_upsample_decoder_bilinear_round_trip(tmp_path):
    model = pix2pix_generator(decoder="upsample", upsample_mode="bilinear")
    check_upsample_decoder(model, "bilinear")
    round_trip(model, tmp_path / "pix2pix_upsample.keras")


def test_pix2pix_layer_names_follow_the_checkpoint(models):
    generator = {layer.name for layer in models("pix2pix_generator").layers}
    expected = (
        {f"enc{k}_{part}" for k in range(1, 9) for part in ("conv", "lrelu")}
        | {f"enc{k}_bn" for k in range(2, 9)}
        | {f"dec{k}_{part}" for k in range(1, 9) for part in ("conv", "bn", "relu")}
        | {f"dec{k}_dropout" for k in range(1, 4)}
        | {f"dec{k}_concat" for k in range(1, 8)}
        | {"sar", "head_conv", "head_tanh", "enc1_lrelu_slope"}  # max(x, 0.2·x) after the biased enc1_conv
    )
    assert generator == expected
    blocks = dict.fromkeys(layer.name.split("_")[0] for layer in models("pix2pix_generator").layers[1:])
    assert tuple(blocks) == GENERATOR_BLOCKS  # what LoRA targets are checked against before a load
    discriminator = {layer.name for layer in models("pix2pix_discriminator").layers}
    assert discriminator == (
        {"sar", "optical", "concat", "disc3_pad", "disc4_pad", "disc4_conv", "disc0_lrelu_slope"}
        | {f"disc{i}_{part}" for i in range(4) for part in ("conv", "lrelu")}
        | {f"disc{i}_bn" for i in range(1, 4)}
    )


def test_pix2pix_pytorch_constants(models):
    generator = models("pix2pix_generator")
    for name in ("enc2_bn", "dec8_bn"):
        bn = generator.get_layer(name)
        assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    assert generator.get_layer("enc5_lrelu").negative_slope == pytest.approx(0.2)
    assert generator.get_layer("dec2_dropout").rate == 0.5
    assert generator.get_layer("enc1_conv").use_bias
    assert not generator.get_layer("enc2_conv").use_bias
    discriminator = models("pix2pix_discriminator")
    conv = discriminator.get_layer("disc3_conv")
    assert (conv.strides, conv.padding, conv.use_bias) == ((1, 1), "valid", False)
    assert discriminator.get_layer("disc3_pad").padding == ((1, 1), (1, 1))


@pytest.mark.parametrize(
    "name, concats",
    [
        ("pix2pix_generator", [(f"dec{k}_concat", f"enc{8 - k}_lrelu", f"dec{k}_relu") for k in range(1, 8)]),
        ("unet_generator", [(f"dec{k}_concat", f"enc{4 - k}_lrelu", f"dec{k}_relu") for k in range(1, 4)]),
    ],
)
def test_skip_concatenation_puts_the_encoder_first(models, name, concats):
    model = models(name)
    outputs = [model.get_layer(layer).output for triple in concats for layer in triple]
    probe = keras.Model(model.input, outputs)
    x = np.random.default_rng(0).uniform(-1, 1, (1, *model.input.shape[1:])).astype("float32")
    values = [keras.ops.convert_to_numpy(v) for v in probe(x, training=False)]
    for concat, encoder, decoder in zip(values[0::3], values[1::3], values[2::3]):
        np.testing.assert_array_equal(concat, np.concatenate([encoder, decoder], axis=-1))


def test_output_conventions(models):
    rng = np.random.default_rng(1)
    optical = rng.uniform(-1, 1, (4, 128, 128, 3)).astype("float32")
    probability = keras.ops.convert_to_numpy(models("scratch_discriminator")(optical))
    assert np.all((probability >= 0) & (probability <= 1))
    assert models("scratch_discriminator").get_layer("dense").activation.__name__ == "sigmoid"
    assert models("wgan_critic").get_layer("dense").activation.__name__ == "linear"
    assert models("patchgan_discriminator").get_layer("conv5").activation.__name__ == "linear"
    assert models("pix2pix_discriminator").get_layer("disc4_conv").activation.__name__ == "linear"
    image = keras.ops.convert_to_numpy(models("unet_generator")(optical * 50))
    assert np.all(np.abs(image) <= 1)


def test_sizes_and_channels_are_arguments():
    assert scratch_discriminator(image_size=64, channels=1).output.shape == (None, 1)
    assert wgan_critic(image_size=32).output.shape == (None, 1)
    assert patchgan_discriminator(image_size=64, sar_channels=1).output.shape == (None, 8, 8, 1)
    generator = unet_generator(image_size=32, in_channels=1, out_channels=4)
    assert generator.output.shape == (None, 32, 32, 4)
    discriminator = pix2pix_discriminator(image_size=64, optical_channels=4)
    assert discriminator.output.shape == (None, 6, 6, 1)
    assert [x.shape[-1] for x in discriminator.inputs] == [3, 4]


def test_patchgan_dropout_rate_is_documented_default():
    model = patchgan_discriminator(image_size=16)
    assert model.get_layer("dropout").rate == 0.4
    assert patchgan_discriminator(image_size=16, dropout_rate=0.5).get_layer("dropout").rate == 0.5


BAD_ARGUMENTS = [
    (pix2pix_generator, {"image_size": 128}, "image_size (--image-size) for pix2pix_generator"),
    (pix2pix_generator, {"decoder": "deconv"}, "decoder for pix2pix_generator"),
    (pix2pix_generator, {"upsample_mode": "bicubic"}, "upsample_mode"),
    (pix2pix_discriminator, {"image_size": 16}, "multiple of 8 (at least 24)"),
    (scratch_discriminator, {"image_size": 100}, "multiple of 32"),
    (wgan_critic, {"image_size": "128"}, "received '128'"),
    (patchgan_discriminator, {"image_size": 12}, "multiple of 8"),
    (unet_generator, {"image_size": 136}, "multiple of 16"),
    (unet_generator, {"in_channels": 0}, "in_channels for unet_generator"),
    (patchgan_discriminator, {"optical_channels": 2.5}, "optical_channels"),
]


def test_bad_arguments_raise_one_line_errors():
    for builder, kwargs, message in BAD_ARGUMENTS:
        with pytest.raises(Sar2OptError, match="Expected") as error:
            builder(**kwargs)
        assert message in str(error.value)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", list(MODELS))
def test_check_model_refuses_the_sizes_its_builder_refuses(name):
    multiple, minimum = INPUT_SIZES[name]["multiple"], INPUT_SIZES[name]["minimum"]
    check_model(name, minimum)  # builds nothing
    for size in (minimum - multiple, minimum + multiple // 2, float(minimum)):
        with pytest.raises(Sar2OptError) as early:
            check_model(name, size)
        with pytest.raises(Sar2OptError) as built:
            MODELS[name](image_size=size)
        assert str(early.value) == str(built.value) and "image_size (--image-size)" in str(early.value)


def test_build_model_unknown_name_lists_choices():
    with pytest.raises(Sar2OptError) as error:
        build_model("pix2pix")
    assert "'pix2pix'" in str(error.value)
    for name in MODELS:
        assert name in str(error.value)


def test_build_model_passes_arguments():
    model = build_model("unet_generator", image_size=32)
    assert model.name == "unet_generator"
    assert model.output.shape == (None, 32, 32, 3)


def round_trip(model, path):
    rng = np.random.default_rng(2)
    for layer in model.layers:  # non-default BatchNorm statistics, so restoring them is tested
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    batch = 1 if model.name.startswith("pix2pix") else 2
    inputs = [rng.uniform(-1, 1, (batch, *x.shape[1:])).astype("float32") for x in model.inputs]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == model.name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    expected = keras.ops.convert_to_numpy(model(inputs, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs, training=False)), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_keras_round_trip(models, name, tmp_path):
    round_trip(models(name), tmp_path / f"{name}.keras")


def _import_in_a_fresh_process(code, **environment):
    """stdout of `code` run by a fresh Python importing from this checkout, TF_ENABLE_ONEDNN_OPTS unset unless given."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {key: value for key, value in os.environ.items() if key != hardware.ONEDNN_VARIABLE}
    env.update(environment, PYTHONPATH=os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.mark.slow
def test_importing_the_package_before_tensorflow_turns_onednn_on_and_keeps_a_users_value():
    code = "import os, keras_sar2opt, tensorflow; from keras_sar2opt import hardware; "
    code += "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), hardware.onednn_enabled())"
    assert _import_in_a_fresh_process(code) == ["1", "True"]
    # A user's 0 wins, and onednn_enabled() reports what TensorFlow enabled, not what it was built with.
    assert _import_in_a_fresh_process(code, TF_ENABLE_ONEDNN_OPTS="0") == ["0", "False"]


def test_importing_the_package_after_tensorflow_leaves_the_environment_alone(monkeypatch):
    import importlib
    import os
    import sys

    import keras_sar2opt

    assert "tensorflow" in sys.modules
    monkeypatch.delenv(hardware.ONEDNN_VARIABLE, raising=False)
    importlib.reload(keras_sar2opt)
    assert hardware.ONEDNN_VARIABLE not in os.environ


@pytest.fixture
def tensorflow_first_without_onednn(monkeypatch):
    """This process seen as one where TensorFlow was imported first and left oneDNN off on an AVX2 CPU."""
    monkeypatch.delenv(hardware.ONEDNN_VARIABLE, raising=False)
    monkeypatch.setattr(hardware, "onednn_enabled", lambda: False)
    monkeypatch.setattr(hardware, "cpu_info", lambda: ("x86 CPU", {"avx2", "fma"}))
    hardware.warn_if_slow_kernels.cache_clear()
    yield
    hardware.warn_if_slow_kernels.cache_clear()


def test_the_first_network_built_warns_once_in_one_line_where_tensorflow_runs_its_slow_kernels(
    tensorflow_first_without_onednn, caplog
):
    with caplog.at_level("WARNING", logger=hardware.__name__):
        scratch_discriminator(32)
        unet_generator(16)
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message and "set TF_ENABLE_ONEDNN_OPTS=1 before importing TensorFlow" in message


@pytest.mark.parametrize("setting", [{"TF_ENABLE_ONEDNN_OPTS": "0"}, {"enabled": True}, {"flags": {"neon"}}], ids=str)
def test_no_warning_where_the_user_chose_or_onednn_is_on_or_the_cpu_is_not_x86(
    tensorflow_first_without_onednn, monkeypatch, setting
):
    if "TF_ENABLE_ONEDNN_OPTS" in setting:
        monkeypatch.setenv(hardware.ONEDNN_VARIABLE, setting["TF_ENABLE_ONEDNN_OPTS"])
    if "enabled" in setting:
        monkeypatch.setattr(hardware, "onednn_enabled", lambda: True)
    if "flags" in setting:
        monkeypatch.setattr(hardware, "cpu_info", lambda: ("arm CPU", setting["flags"]))
    assert hardware.slow_kernels_message() is None
