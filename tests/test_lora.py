"""LoRA adapters (report §4.2, Table 7): frozen base, exact merge, adapter files, Pix2Pix counts."""

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

from keras_sar2opt import lora
from keras_sar2opt.errors import Sar2OptError


def tiny_model(channels=3, name="tiny"):
    """conv (relu) -> frozen-able BN -> transposed conv -> skip concat -> head, 16x16 input."""
    inputs = keras.Input((16, 16, channels), name="sar")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="enc1_conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="enc1_bn")(x)
    x = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", use_bias=False, name="dec1_conv")(x)
    x = keras.layers.BatchNormalization(name="dec1_bn")(x)
    x = keras.layers.Concatenate(name="dec1_concat")([inputs, x])
    outputs = keras.layers.Conv2D(3, 3, padding="same", name="head_conv")(x)
    return keras.Model(inputs, outputs, name=name)


def batch(seed=0, n=4, channels=3):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 16, 16, channels)).astype("float32")


def wrappers(model):
    return [layer for layer in model.layers if isinstance(layer, lora.LoRAConv)]


def trainable_paths(model):
    return sorted(w.path for w in model.trainable_weights)


def randomise_adapters(model, seed=1):
    rng = np.random.default_rng(seed)
    for layer in wrappers(model):
        for variable in (layer.lora_a.kernel, layer.lora_b.kernel):
            variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))


def test_apply_lora_starts_equal_to_base_and_trains_only_adapters():
    base = tiny_model()
    adapted = lora.apply_lora(base, ("enc1", "dec1"), rank=2, alpha=4, also_train=("head",))
    x = batch()
    np.testing.assert_array_equal(adapted(x, training=False), base(x, training=False))
    assert [layer.name for layer in adapted.layers] == [layer.name for layer in base.layers]
    assert trainable_paths(adapted) == sorted(
        [f"{name}/lora_{ab}/kernel" for name in ("enc1_conv", "dec1_conv") for ab in "ab"]
        + ["head_conv/kernel", "head_conv/bias"]
    )
    # Conv2D A (3,3,3,2) + B (1,1,2,8); Conv2DTranspose A (4,4,2,8) + B (1,1,2,4); head 7*9*3+3.
    assert lora.count_lora_parameters(base, ("enc1_conv", "dec1_conv"), rank=2) == 70 + 264
    assert lora.count_trainable_parameters(adapted) == 70 + 264 + 192
    assert len(base.trainable_weights) == 9  # the original model is left trainable
    adapted.trainable = False
    adapted.trainable = True  # unfreezes the other layers, never a wrapped base convolution
    assert not {"enc1_conv/base/kernel", "dec1_conv/base/kernel"} & set(trainable_paths(adapted))


def test_training_steps_change_adapters_and_keep_every_base_weight():
    tf = pytest.importorskip("tensorflow")
    base = tiny_model()
    adapted = lora.apply_lora(base, ("enc1_conv", "dec1_conv"), rank=2, alpha=4, dropout=0.1)
    before = {w.path: np.array(w) for w in adapted.weights}
    optimizer = keras.optimizers.Adam(1e-2)
    x, target = batch(0), np.tanh(batch(1))
    for _ in range(3):  # B starts at zero, so A only receives a gradient from the second step on
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.ops.abs(adapted(x, training=True) - target))
        grads = tape.gradient(loss, adapted.trainable_weights)
        optimizer.apply_gradients(zip(grads, adapted.trainable_weights))
    after = {w.path: np.array(w) for w in adapted.weights}
    adapter_paths = {w.path for w in adapted.trainable_weights}
    assert len(adapter_paths) == 4
    for path in adapter_paths:
        assert not np.array_equal(before[path], after[path]), path
    base_weights = {w.path: np.array(w) for w in base.weights}  # BN moving statistics included
    for path, value in after.items():
        if path not in adapter_paths:
            np.testing.assert_array_equal(value, base_weights[path.replace("/base/", "/")], err_msg=path)
    assert len(base_weights) == len(adapted.weights) - 4


def test_frozen_batch_norm_uses_moving_statistics_in_training():
    base = tiny_model()
    x = batch()
    frozen = lora.apply_lora(base, ("enc1_conv",), rank=2, alpha=2, dropout=0.0)
    np.testing.assert_allclose(frozen(x, training=True), frozen(x, training=False), atol=1e-6)
    trained_bn = lora.apply_lora(base, ("enc1_conv",), rank=2, alpha=2, dropout=0.0, also_train=("dec1_bn",))
    assert not np.allclose(trained_bn(x, training=True), trained_bn(x, training=False), atol=1e-3)


def test_adapter_dropout_only_in_training():
    adapted = lora.apply_lora(tiny_model(), ("enc1_conv",), rank=2, alpha=4, dropout=0.5)
    randomise_adapters(adapted)
    x = batch()
    np.testing.assert_array_equal(adapted(x, training=False), adapted(x, training=False))
    assert not np.allclose(adapted(x, training=True), adapted(x, training=False), atol=1e-4)


MERGE_CASES = [
    ("Conv2D", {"strides": 1, "padding": "same"}),
    ("Conv2D", {"strides": 2, "padding": "same"}),
    ("Conv2D", {"strides": 1, "padding": "valid"}),
    ("Conv2D", {"strides": 2, "padding": "valid"}),
    ("Conv2D", {"dilation_rate": 2, "padding": "same", "activation": "relu"}),
    ("Conv2DTranspose", {"strides": 1, "padding": "same"}),
    ("Conv2DTranspose", {"strides": 2, "padding": "same"}),
    ("Conv2DTranspose", {"strides": 2, "padding": "valid"}),
]


@pytest.mark.parametrize("layer_type, options", MERGE_CASES)
def test_merge_lora_is_exact(layer_type, options):
    inputs = keras.Input((15, 15, 5), name="x")
    outputs = getattr(keras.layers, layer_type)(6, 4, name="target", **options)(inputs)
    base = keras.Model(inputs, outputs)
    adapted = lora.apply_lora(base, ("target",), rank=3, alpha=6)
    randomise_adapters(adapted)
    merged = lora.merge_lora(adapted)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 15, 15, 5)).astype("float32")
    expected = np.asarray(adapted(x, training=False))
    assert not np.allclose(expected, base(x), atol=1e-3)  # the adapter really contributes
    np.testing.assert_allclose(merged(x), expected, atol=1e-5, rtol=0)
    layer = merged.get_layer("target")
    assert type(layer).__name__ == layer_type and layer.trainable
    assert merged.count_params() == base.count_params()


def test_adapters_alone_round_trip_onto_a_fresh_base(tmp_path):
    base = tiny_model()
    adapted = lora.apply_lora(base, ("enc1", "dec1"), rank=2, alpha=4, also_train=("head", "dec1_bn"))
    randomise_adapters(adapted)
    adapted.get_layer("dec1_bn").moving_mean.assign(np.full((4,), 0.3, "float32"))
    path = lora.save_adapters(adapted, tmp_path / "adapters.safetensors")
    base.save_weights(tmp_path / "base.weights.h5")
    assert path.stat().st_size * 2 < (tmp_path / "base.weights.h5").stat().st_size
    assert path.stat().st_mode & 0o777 == (tmp_path / "base.weights.h5").stat().st_mode & 0o777  # readable alike

    fresh = tiny_model()
    fresh.load_weights(tmp_path / "base.weights.h5")
    loaded = lora.load_adapters(fresh, path, rank=2, alpha=4)
    x = batch()
    np.testing.assert_array_equal(loaded(x, training=False), adapted(x, training=False))
    assert trainable_paths(loaded) == trainable_paths(adapted)
    config, tensors = lora.read_adapters(path)
    assert config["targets"] == ["enc1_conv", "dec1_conv"]
    assert config["also_train"] == ["dec1_bn", "head_conv"]
    assert (config["rank"], config["alpha"], config["dropout"]) == (2, 4, 0.1)
    assert tensors["enc1_conv/lora_a"].shape == (3, 3, 3, 2)
    assert tensors["dec1_conv/lora_a"].shape == (4, 4, 2, 8)
    assert "dec1_bn/moving_mean" in tensors and "enc1_conv/kernel" not in tensors


def test_load_adapters_errors(tmp_path):
    adapted = lora.apply_lora(tiny_model(), ("enc1", "dec1"), rank=2, alpha=4)
    path = lora.save_adapters(adapted, tmp_path / "a.safetensors")
    with pytest.raises(Sar2OptError, match="rank 8"):
        lora.load_adapters(tiny_model(), path, rank=8)
    with pytest.raises(Sar2OptError, match="alpha 16"):
        lora.load_adapters(tiny_model(), path, alpha=16)
    with pytest.raises(Sar2OptError, match=r"shape \(3, 3, 1, 2\) for 'enc1_conv/lora_a'"):
        lora.load_adapters(tiny_model(channels=1), path)
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="enc1_conv")], name="other")
    with pytest.raises(Sar2OptError, match="dec1_conv .*'other'"):
        lora.load_adapters(other, path)
    with pytest.raises(Sar2OptError, match="not found"):
        lora.load_adapters(tiny_model(), tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Sar2OptError, match="bad.safetensors"):
        lora.load_adapters(tiny_model(), tmp_path / "bad.safetensors")
    save_file({"x": np.zeros(2, "float32")}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(Sar2OptError, match="metadata lacks"):
        lora.load_adapters(tiny_model(), tmp_path / "plain.safetensors")
    with pytest.raises(Sar2OptError, match=r"\.safetensors"):
        lora.save_adapters(adapted, tmp_path / "a.npz")
    with pytest.raises(Sar2OptError, match="without any"):
        lora.save_adapters(tiny_model(), tmp_path / "b.safetensors")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"targets": ("enc9",)}, r"Expected targets \(--targets\) to name convolutions .*received 'enc9'"),
        ({"targets": ("enc1_bn",)}, "Conv2D or Conv2DTranspose.*enc1_bn"),
        ({"targets": ("enc1",), "also_train": ("enc1",)}, r"also_train \(--also-train\) .*enc1_conv in both"),
        ({"targets": ("enc1",), "also_train": ("nope",)}, r"Expected also_train \(--also-train\) to name layers"),
        ({"targets": ("enc1",), "rank": 0}, r"Expected rank \(--rank\) to be a positive integer, received 0"),
        ({"targets": ("enc1",), "alpha": -1}, r"Expected alpha \(--alpha\) to be a positive number"),
        ({"targets": ("enc1",), "dropout": 1.0}, r"Expected dropout \(--lora-dropout\) to be in \[0, 1\)"),
    ],
)
def test_apply_lora_rejects_bad_options(kwargs, message):
    with pytest.raises(Sar2OptError, match=message):
        lora.apply_lora(tiny_model(), **kwargs)


def test_layer_names_are_checked_against_the_blocks_before_the_model_is_at_hand():
    blocks = ("enc1", "dec1", "head")
    for kwargs in ({"targets": ("enc9",)}, {"targets": ("enc1",), "also_train": ("dec1_bn", "nope")}):
        with pytest.raises(Sar2OptError) as early:
            lora.check_layer_names("tiny", blocks, **kwargs)
        with pytest.raises(Sar2OptError) as applied:
            lora.apply_lora(tiny_model(), **kwargs)
        assert str(early.value) == str(applied.value)
    with pytest.raises(Sar2OptError, match=r"also_train \(--also-train\) to exclude .*received enc1 in both"):
        lora.check_layer_names("tiny", blocks, ("enc1", "dec1"), ("enc1",))
    lora.check_layer_names("tiny", blocks, "enc1", ("dec1_bn", "head"))  # a block's missing layer is left to apply_lora


def test_apply_lora_rejects_an_adapted_model_and_merge_a_plain_one():
    adapted = lora.apply_lora(tiny_model(), ("enc1",), rank=2, alpha=4)
    with pytest.raises(Sar2OptError, match="without LoRA adapters"):
        lora.apply_lora(adapted, ("dec1",))
    with pytest.raises(Sar2OptError, match="with LoRA adapters"):
        lora.merge_lora(tiny_model())


def test_adapted_model_keras_round_trip(tmp_path):
    adapted = lora.apply_lora(tiny_model(), ("enc1", "dec1"), rank=2, alpha=4, also_train=("head",))
    randomise_adapters(adapted)
    adapted.save(tmp_path / "adapted.keras")
    loaded = keras.saving.load_model(tmp_path / "adapted.keras")
    x = batch()
    np.testing.assert_array_equal(loaded(x, training=False), adapted(x, training=False))
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in adapted.layers]
    assert trainable_paths(loaded) == trainable_paths(adapted)
    assert loaded.get_layer("enc1_conv").activation.__name__ == "relu"


def test_pix2pix_lora_trainable_counts():
    models = pytest.importorskip("keras_sar2opt.models")
    generator = models.pix2pix_generator(256)
    closed_form = lora.count_lora_parameters(generator, lora.PIX2PIX_ENCODER_TARGETS, rank=16)
    adapters_only = lora.apply_lora(generator, lora.PIX2PIX_ENCODER_TARGETS, rank=16, alpha=32, dropout=0.1)
    adapters_only_count = lora.count_trainable_parameters(adapters_only)
    del adapters_only
    with_decoder = lora.apply_lora(
        generator,
        [f"enc{k}" for k in range(1, 9)],  # block prefixes resolve to the same eight convolutions
        rank=16,
        alpha=32,
        dropout=0.1,
        also_train=("dec8", "head"),
    )
    print(
        f"LoRA r=16 on enc1..enc8: {adapters_only_count:,} trainable (closed form {closed_form:,}); "
        f"+ dec8 + head: {lora.count_trainable_parameters(with_decoder):,}; report: ~820,000"
    )
    assert closed_form == adapters_only_count == 687_872
    assert lora.count_trainable_parameters(with_decoder) == 820_803
    assert {w.path.split("/")[0] for w in with_decoder.trainable_weights} == set(lora.PIX2PIX_ENCODER_TARGETS) | {
        "dec8_conv",
        "dec8_bn",
        "head_conv",
    }
    # Merging through the whole U-Net (skips, BatchNorm, 16 convolutions) in float32.
    rng = np.random.default_rng(3)
    for layer in wrappers(with_decoder):
        layer.lora_b.kernel.assign(rng.normal(0, 0.01, layer.lora_b.kernel.shape).astype("float32"))
    merged = lora.merge_lora(with_decoder)
    x = rng.uniform(-1, 1, (1, 256, 256, 3)).astype("float32")
    expected = np.asarray(with_decoder(x, training=False))
    assert not np.allclose(merged.get_layer("enc8_conv").kernel, generator.get_layer("enc8_conv").kernel)
    np.testing.assert_allclose(merged(x, training=False), expected, atol=1e-4, rtol=0)
    assert lora.count_trainable_parameters(merged) == 54_541_827  # a plain, fully trainable generator
