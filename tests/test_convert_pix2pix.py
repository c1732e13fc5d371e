"""SAR2Optical checkpoints -> Keras: numerical parity with PyTorch, strict key checks, `sar2opt convert`."""

import sys

import numpy as np
import pytest

from keras_sar2opt.cli import main
from keras_sar2opt.convert import torch_reference
from keras_sar2opt.convert.pix2pix import (
    convert_discriminator,
    generator_config,
    load_pix2pix_discriminator,
    load_pix2pix_generator,
)
from keras_sar2opt.errors import Sar2OptError

TOLERANCE = 1e-4


def _torch_output(module, *inputs_nhwc):
    torch = pytest.importorskip("torch")
    x = torch.cat([torch.from_numpy(x.transpose(0, 3, 1, 2)) for x in inputs_nhwc], dim=1)
    with torch.no_grad():
        return module(x).numpy().transpose(0, 2, 3, 1)


def _numpy_state(module):
    return {k: v.numpy() for k, v in module.state_dict().items()}


def _inputs(seed, size, count=1, batch=1):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32) for _ in range(count)]


@pytest.mark.torch
def test_generator_parity_transpose_decoder(sar2optical_generator):
    path, module = sar2optical_generator
    (x,) = _inputs(0, 256)
    expected = _torch_output(module, x)
    assert expected.std() > 0.02  # a saturated or constant output would prove nothing
    model = load_pix2pix_generator(path)
    got = np.asarray(model(x, training=False))
    assert np.abs(got - expected).max() <= TOLERANCE


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_generator_parity_upsample_decoder(tmp_path, mode, torch_pix2pix):
    torch = pytest.importorskip("torch")
    module = torch_pix2pix("generator", seed=2, decoder="upsample", upsample_mode=mode)
    path = tmp_path / "gen_upsample.pth"
    torch.save(module.state_dict(), path)
    (x,) = _inputs(1, 256)
    expected = _torch_output(module, x)
    assert expected.std() > 0.02
    model = load_pix2pix_generator(path, upsample_mode=mode)
    assert model.get_layer("dec1_upsample") is not None
    got = np.asarray(model(x, training=False))
    assert np.abs(got - expected).max() <= TOLERANCE


@pytest.mark.torch
def test_discriminator_parity(tmp_path, torch_pix2pix):
    torch = pytest.importorskip("torch")
    module = torch_pix2pix("discriminator", seed=3)
    path = tmp_path / "pix2pix_disc_180.pth"
    torch.save(module.state_dict(), path)
    sar, optical = _inputs(2, 256, count=2, batch=2)
    expected = _torch_output(module, sar, optical)
    model = load_pix2pix_discriminator(path)
    got = np.asarray(model([sar, optical], training=False))
    assert got.shape == (2, 30, 30, 1)
    assert np.abs(got - expected).max() <= TOLERANCE


@pytest.mark.torch
def test_strict_mapping_lists_every_problem_in_one_error():
    pytest.importorskip("torch")
    state = _numpy_state(torch_reference.pix2pix_discriminator())
    del state["model.model.2.conv_block.1.running_var"]
    state["model.model.9.weight"] = np.zeros(3, np.float32)
    state["model.model.3.conv_block.0.weight"] = np.zeros((512, 256, 3, 3), np.float32)
    with pytest.raises(Sar2OptError) as error:
        convert_discriminator(state, image_size=32, source="d.pth")
    message = str(error.value)
    assert "\n" not in message and "d.pth" in message
    assert "1 missing keys: model.model.2.conv_block.1.running_var" in message
    assert "1 unexpected keys: model.model.9.weight" in message
    assert "1 shape mismatches: model.model.3.conv_block.0.weight (512, 256, 3, 3)" in message


@pytest.mark.torch
def test_non_strict_skips_missing_and_unexpected_but_not_shapes():
    pytest.importorskip("torch")
    state = _numpy_state(torch_reference.pix2pix_discriminator())
    del state["model.model.4.bias"]
    state["extra.weight"] = np.zeros(1, np.float32)
    model, config, report = convert_discriminator(state, image_size=32, strict=False)
    assert config == {"sar_channels": 3, "optical_channels": 3}
    assert report.missing == ["model.model.4.bias"] and report.unexpected == ["extra.weight"]
    assert len(report.ignored) == 3  # num_batches_tracked of the three BatchNorms
    np.testing.assert_array_equal(
        model.get_layer("disc4_conv").kernel.numpy(), state["model.model.4.weight"].transpose(2, 3, 1, 0)
    )
    state["model.model.0.conv_block.0.bias"] = np.zeros(5, np.float32)
    with pytest.raises(Sar2OptError, match="1 shape mismatches"):
        convert_discriminator(state, image_size=32, strict=False)


@pytest.mark.torch
def test_generator_variant_and_channels_come_from_the_keys():
    pytest.importorskip("torch")
    transpose = _numpy_state(torch_reference.pix2pix_generator(in_channels=1))
    upsample = _numpy_state(torch_reference.pix2pix_generator(decoder="upsample"))
    assert generator_config(transpose) == {"decoder": "transpose", "in_channels": 1, "out_channels": 3}
    assert generator_config(upsample)["decoder"] == "upsample"
    disc = _numpy_state(torch_reference.pix2pix_discriminator())
    with pytest.raises(Sar2OptError, match=r"generator state_dict .* in disc.pth, received keys \['model.model"):
        generator_config(disc, source="disc.pth")


@pytest.mark.torch
def test_convert_command_writes_working_keras_files(sar2optical_generator, torch_pix2pix, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    import keras

    gen_path, gen_module = sar2optical_generator
    disc_module = torch_pix2pix("discriminator", seed=4)
    disc_path = tmp_path / "disc.pth"
    torch.save({"epoch": 180, "model_state_dict": disc_module.state_dict()}, disc_path)
    out = tmp_path / "converted" / "sar2optical.keras"
    assert main(["convert", str(gen_path), "--discriminator", str(disc_path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "decoder transpose" in printed and "79 tensors loaded, 15 BatchNorm step counters ignored" in printed
    assert "19 tensors loaded, 3 BatchNorm step counters ignored" in printed

    disc = keras.saving.load_model(out.with_name("sar2optical_disc.keras"), compile=False)
    sar, optical = _inputs(5, 256, count=2)
    got = np.asarray(disc([sar, optical], training=False))
    assert np.abs(got - _torch_output(disc_module, sar, optical)).max() <= TOLERANCE
    gen = keras.saving.load_model(out, compile=False)
    got = np.asarray(gen(sar, training=False))
    assert np.abs(got - _torch_output(gen_module, sar)).max() <= TOLERANCE

    # A bad discriminator path fails before the generator is written.
    lone = tmp_path / "lone" / "g.keras"
    assert main(["convert", str(gen_path), "--discriminator", str(tmp_path / "absent.pth"), "-o", str(lone)]) == 1
    assert "absent.pth" in capsys.readouterr().err and not lone.parent.exists()


def test_convert_command_errors_are_one_line(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.pth"), "-o", str(tmp_path / "g.keras")]) == 1
    assert "missing path" in capsys.readouterr().err
    (tmp_path / "g.pth").write_bytes(b"\x80\x02}q\x00.")  # a pickled empty dict
    assert main(["convert", str(tmp_path / "g.pth"), "-o", str(tmp_path / "g.h5")]) == 1
    assert "Expected -o to end in .keras" in capsys.readouterr().err
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")  # the size is refused before the file is read
    assert main(["convert", str(tmp_path / "bad.pth"), "-o", str(tmp_path / "g.keras"), "--image-size", "128"]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "Expected image_size (--image-size) for pix2pix_generator to be a multiple of 256 (at least 256), "
            "received 128"
        )
    )


def test_convert_outputs_that_cannot_be_written_are_one_line_before_reading(tmp_path, cli_error):
    (tmp_path / "g.pth").write_bytes(b"\x80\x02}q\x00.")  # a pickled empty dict: read only after the checks
    blocker = tmp_path / "file.png"
    blocker.write_bytes(b"not a folder")
    convert = ["convert", str(tmp_path / "g.pth")]
    cases = [
        (["-o", str(blocker / "g.keras")], "-o", blocker / "g.keras", f"{blocker} is a file"),
        (
            [
                "-o",
                str(tmp_path / "ok.keras"),
                "--discriminator",
                str(tmp_path / "g.pth"),
                "--disc-out",
                str(blocker / "d.keras"),
            ],
            "--disc-out",
            blocker / "d.keras",
            f"{blocker} is a file",
        ),
    ]
    if sys.platform == "linux":  # /proc takes no new files, even from root
        cases.append(
            (["-o", "/proc/sar2opt/g.keras"], "-o", "/proc/sar2opt/g.keras", "No such file or directory in /proc")
        )
    for extra, option, out, reason in cases:
        line = cli_error([*convert, *extra])
        assert line == f"sar2opt convert: error: Expected a writable {option} file, received {out} ({reason})"
    assert not (tmp_path / "ok.keras").exists()


@pytest.mark.torch
def test_data_parallel_prefix_is_accepted():
    pytest.importorskip("torch")
    state = _numpy_state(torch_reference.pix2pix_discriminator())
    model, _, report = convert_discriminator({f"module.{k}": v for k, v in state.items()}, image_size=32)
    assert len(report.loaded) == 19
    np.testing.assert_array_equal(
        model.get_layer("disc1_bn").moving_variance.numpy(), state["model.model.1.conv_block.1.running_var"]
    )


@pytest.mark.torch
def test_training_checkpoint_of_a_compiled_generator_with_its_moving_average(
    sar2optical_generator, torch_pix2pix, tmp_path, capsys
):
    torch = pytest.importorskip("torch")
    import keras

    _, module = sar2optical_generator
    average = torch.optim.swa_utils.AveragedModel(torch_pix2pix("generator", seed=5))  # module.* keys, n_averaged
    compiled = torch.compile(module)  # its state_dict keys start with _orig_mod.
    assert next(iter(compiled.state_dict())).startswith("_orig_mod.")
    path = tmp_path / "epoch_180.pth"
    optimizer = torch.optim.Adam(module.head.parameters())
    checkpoint = {"epoch": 180, "model_state_dict": compiled.state_dict(), "loss": np.float64(0.25)}
    torch.save({**checkpoint, "optimizer_state_dict": optimizer.state_dict(), "model_ema": average.state_dict()}, path)
    (x,) = _inputs(3, 256)
    got = np.asarray(load_pix2pix_generator(path)(x, training=False))
    assert np.abs(got - _torch_output(module, x)).max() <= TOLERANCE

    out = tmp_path / "ema.keras"
    assert main(["convert", str(path), "--weights-key", "model_ema", "-o", str(out)]) == 0
    assert "79 tensors loaded" in capsys.readouterr().out
    got = np.asarray(keras.saving.load_model(out, compile=False)(x, training=False))
    expected = _torch_output(average.module, x)
    assert np.abs(got - expected).max() <= TOLERANCE and np.abs(expected - _torch_output(module, x)).max() > 0.01
