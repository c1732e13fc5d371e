"""Fine-tuning (report §4): Table 6 and 7 settings, LoRA through fit(), parameter counts, option errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sar2opt import finetune, lora, paper
from keras_sar2opt.cli import main
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.experiments import OptimizerConfig, get_experiment
from keras_sar2opt.models import patchgan_discriminator, pix2pix_generator, unet_generator
from keras_sar2opt.models.pix2pix import ENCODER_FILTERS
from keras_sar2opt.training.run import build_adversarial_model, train_experiment

SIZE = 32


def test_experiments_follow_tables_6_and_7():
    full, lora_config = get_experiment("finetune-full"), get_experiment("finetune-lora")
    assert full.pretrained and lora_config.pretrained
    table6, table7, (beta_1, beta_2) = paper.TABLE6_FULL_FINETUNING, paper.TABLE7_LORA, paper.ADAM_BETAS
    assert full.g_optimizer == OptimizerConfig("adam", table6["learning_rate"], beta_1=beta_1, beta_2=beta_2)
    assert (full.batch_size, full.epochs, full.l1_weight) == (
        table6["batch_size"],
        table6["epochs"],
        table6["l1_weight"],
    )
    assert full.augment
    assert full.lora_targets == () and full.discriminator == "pix2pix_discriminator"
    assert lora_config.g_optimizer == OptimizerConfig("adam", table7["learning_rate"], beta_1=beta_1, beta_2=beta_2)
    assert (lora_config.batch_size, lora_config.epochs) == (table7["batch_size"], table7["epochs"])
    lora_settings = (lora_config.lora_rank, lora_config.lora_alpha, lora_config.lora_dropout)
    assert lora_settings == (table7["rank"], table7["alpha"], table7["dropout"])
    assert lora_config.lora_targets == tuple(f"enc{k}" for k in range(1, 9)) and lora_config.also_train == ()
    for config in (full, lora_config):
        assert (config.generator, config.discriminator, config.image_size) == (
            "pix2pix_generator",
            "pix2pix_discriminator",
            256,
        )
        assert "d_optimizer" in config.assumed


def _pairs(n, seed):
    rng = np.random.default_rng(seed)
    sar = rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32")
    return sar, np.tanh(2 * sar[..., ::-1]).astype("float32")


def test_lora_fit_keeps_every_base_weight_and_changes_every_adapter():
    targets = ("enc1", "enc2", "enc3", "enc4")  # Table 5's encoder convolutions
    config = get_experiment("finetune-lora").with_overrides(image_size=SIZE, lora_targets=targets)
    base = unet_generator(SIZE)
    model = build_adversarial_model(
        config, lambda: (finetune.adapt_generator(finetune.rebuild(base), config), patchgan_discriminator(SIZE))
    )
    generator = model.generator
    adapters = {
        w.path
        for layer in generator.layers
        if isinstance(layer, lora.LoRAConv)
        for w in (layer.lora_a.kernel, layer.lora_b.kernel)
    }
    assert {w.path for w in generator.trainable_weights} == adapters and len(adapters) == 2 * len(targets)
    before = {w.path: np.array(w) for w in generator.weights}
    dataset = tf.data.Dataset.from_tensor_slices(_pairs(6, 0)).batch(2)
    model.fit(dataset, epochs=1, shuffle=False, verbose=0)  # 3 steps; B starts at zero, so A moves from the second
    base_weights = {w.path: np.array(w) for w in base.weights}  # BatchNorm moving statistics included
    assert len(base_weights) == len(generator.weights) - len(adapters)
    for weight in generator.weights:
        if weight.path in adapters:
            assert not np.array_equal(before[weight.path], np.array(weight)), weight.path
        else:
            np.testing.assert_array_equal(
                np.array(weight), base_weights[weight.path.replace("/base/", "/")], err_msg=weight.path
            )


def test_pix2pix_lora_counts_match_the_closed_form_and_are_printed():
    generator = pix2pix_generator(256)
    config = get_experiment("finetune-lora")
    # Σ over enc1..enc8 of r·(k·k·C_in + C_out), 4x4 kernels, C_in the previous block's channels.
    channels_in = (3,) + ENCODER_FILTERS[:-1]
    closed_form = sum(16 * (4 * 4 * c_in + c_out) for c_in, c_out in zip(channels_in, ENCODER_FILTERS))
    summary = finetune.parameter_summary(generator, finetune.adapt_generator(generator, config), config)
    assert summary["trainable"] == summary["adapters"] == closed_form == 687_872
    assert summary["generator"] == 54_541_827
    assert summary["percent"] == pytest.approx(100 * 687_872 / 54_541_827)
    line = finetune.describe_parameters(config, summary)
    assert "687,872 trainable" in line and "1.261%" in line and "roughly 820,000, about 1.5%" in line

    wider = config.with_overrides(also_train=("dec8", "head"))
    summary = finetune.parameter_summary(generator, finetune.adapt_generator(generator, wider), wider)
    assert (summary["trainable"], summary["adapters"], summary["also_trained"]) == (820_803, 687_872, 132_931)
    assert f"{summary['percent']:.3f}" == "1.505"
    assert "+ also-trained dec8, head: 132,931" in finetune.describe_parameters(wider, summary)

    full = get_experiment("finetune-full")
    summary = finetune.parameter_summary(generator, finetune.adapt_generator(generator, full), full)
    assert (summary["trainable"], summary["percent"]) == (54_541_827, 100.0)


def test_rebuild_copies_weights_into_the_global_policy():
    model = unet_generator(SIZE)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        copy = finetune.rebuild(model)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert copy.get_layer("enc2").dtype_policy.name == "mixed_bfloat16"
    assert copy.get_layer("out_tanh").dtype_policy.name == "float32" and copy.output.dtype == "float32"
    assert [w.path for w in copy.weights] == [w.path for w in model.weights]
    for ours, theirs in zip(copy.weights, model.weights):
        np.testing.assert_array_equal(np.array(ours), np.array(theirs))
        assert ours is not theirs


def test_load_network_checks_size_and_inputs(tmp_path):
    path = tmp_path / "small.keras"
    unet_generator(SIZE).save(path)
    assert finetune.load_network(path, "generator", SIZE).name == "unet_generator"
    with pytest.raises(Sar2OptError, match=r"--generator with one SAR input of 256x256 \(--image-size\)"):
        finetune.load_network(path, "generator", 256)
    with pytest.raises(Sar2OptError, match="--discriminator with SAR and optical inputs"):
        finetune.load_network(path, "discriminator", SIZE)
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(Sar2OptError, match="--generator to end in .keras, .pth or .safetensors"):
        finetune.load_network(tmp_path / "weights.h5", "generator", SIZE)
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(Sar2OptError, match="--generator to be a loadable .keras model, received .*broken.keras"):
        finetune.load_network(tmp_path / "broken.keras", "generator", SIZE)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--experiment", "pix2pix", "--rank", "8"], "Expected --rank only with --experiment finetune-lora"),
        (["--experiment", "finetune-full", "--also-train", "head"], "--also-train only with --experiment finetune-"),
        (["--experiment", "patchgan", "--generator", "g.keras"], "--generator only with --experiment finetune-full or"),
        (["--experiment", "finetune-full", "--generator", "missing.keras"], "--generator to be a .keras, .pth or"),
        (
            ["--experiment", "finetune-lora", "--rank", "0"],
            "Expected rank (--rank) to be a positive integer, received 0",
        ),
        (["--experiment", "finetune-lora", "--lora-dropout", "1"], "Expected dropout (--lora-dropout) to be in [0, 1)"),
        (["--experiment", "finetune-lora", "--pretrain-epochs", "0"], "Expected --pretrain-epochs to be a positive"),
        (["--experiment", "finetune-full", "--generator", "g.keras", "--cache", "c"], "only without --generator"),
        (["--experiment", "finetune-full", "--data", "."], "Expected --generator with --data ."),
        (
            ["--experiment", "finetune-lora", "--batch-size", "0"],
            "Expected batch_size (--batch-size) to be a positive integer",
        ),
    ],
)
def test_bad_options_fail_in_one_line_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run and cache folders are under runs/
    (tmp_path / "g.keras").write_bytes(b"")
    assert main(["train", *argv]) == 1
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def datasets(module_tmp):
    """--data values: 12 synthetic pairs at SIZE, a folder in no known layout, and a CSV pairing a SAR
    image with a 12-band optical GeoTIFF."""
    import rasterio

    from keras_sar2opt.data.synthetic import write_synthetic

    root = module_tmp("datasets")
    write_synthetic(root / "pairs", "qxslab", 12, "qxslab", size=SIZE, seed=0, progress=False)
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no images here\n")
    stack = root / "s2_stack.tif"
    with rasterio.open(stack, "w", driver="GTiff", height=SIZE, width=SIZE, count=12, dtype="uint16") as dataset:
        dataset.write(np.full((12, SIZE, SIZE), 1000, np.uint16))
    sar = next((root / "pairs").rglob("sar_*/*.png"))
    (root / "stack.csv").write_text(f"sar,optical\n{sar},{stack}\n")
    return root


PIX2PIX_BLOCKS = ", ".join([f"enc{k}" for k in range(1, 9)] + [f"dec{k}" for k in range(1, 9)] + ["head"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "pairs", "--epochs", "0"], "Expected epochs (--epochs) to be a positive integer, received 0"),
        (["--data", "pairs", "--rank", "0"], "Expected rank (--rank) to be a positive integer, received 0"),
        (["--data", "pairs", "--alpha", "0"], "Expected alpha (--alpha) to be a positive number, received 0.0"),
        (
            ["--data", "pairs", "--lora-dropout", "1.5"],
            "Expected dropout (--lora-dropout) to be in [0, 1), received 1.5",
        ),
        (
            ["--data", "pairs", "--targets", "enc1,enc9"],
            "Expected targets (--targets) to name convolutions or block "
            f"prefixes of model 'pix2pix_generator' ({PIX2PIX_BLOCKS}), received 'enc9'",
        ),
        (
            ["--data", "pairs", "--also-train", "dec9"],
            "Expected also_train (--also-train) to name layers or block "
            f"prefixes of model 'pix2pix_generator' ({PIX2PIX_BLOCKS}), received 'dec9'",
        ),
        (
            ["--data", "pairs", "--also-train", "enc8,head"],
            "Expected also_train (--also-train) to exclude the LoRA targets (--targets), received enc8 in both",
        ),
        (
            ["--data", "pairs", "--image-size", "128"],
            "Expected image_size (--image-size) for pix2pix_generator to be a "
            "multiple of 256 (at least 256), received 128",
        ),
        (
            ["--data", "pairs", "--l1-weight", "-1"],
            "Expected l1_weight (--l1-weight) to be a non-negative number, received -1.0",
        ),
        (["--data", "notes"], "Expected a known dataset layout"),
        (["--data", "stack.csv"], "received 12: choose 1 or 3 with --optical-bands"),
        (["--data", "pairs"], "Expected at least 32 training pairs (the batch size)"),
        (["--targets", "enc9"], "Expected targets (--targets) to name convolutions"),  # before a pre-training
    ],
)
def test_finetuning_checks_options_and_data_before_the_generator_loads(
    argv, message, datasets, tmp_path, monkeypatch, cli_error
):
    def refuse(*args, **kwargs):
        raise AssertionError("the generator was loaded or pre-trained before the options were checked")

    monkeypatch.setattr(finetune, "load_network", refuse)
    monkeypatch.setattr(finetune, "pretrain_generator", refuse)
    monkeypatch.chdir(tmp_path)  # the default run and cache folders are under runs/
    (tmp_path / "G.pth").write_bytes(b"not a checkpoint")  # reading it would fail with another message
    generator = ["--generator", "G.pth"] if "--data" in argv else []
    argv = [str(datasets / arg) if arg in ("pairs", "notes", "stack.csv") else arg for arg in argv]
    line = cli_error(["train", "--experiment", "finetune-lora", *generator, *argv])
    assert line.startswith("sar2opt train: error: ") and message in line
    assert not (tmp_path / "runs").exists()


def test_finetuning_scans_its_data_once_and_reruns_a_finished_run(datasets, tmp_path, monkeypatch):
    import keras_sar2opt.data

    scans = []
    find_pairs = keras_sar2opt.data.find_pairs
    monkeypatch.setattr(
        keras_sar2opt.data, "find_pairs", lambda *args, **kwargs: scans.append(args) or find_pairs(*args, **kwargs)
    )
    generator = tmp_path / "unet.keras"
    unet_generator(SIZE).save(generator)
    out = tmp_path / "run"
    argv = [
        "train",
        "--experiment",
        "finetune-full",
        "--generator",
        str(generator),
        "--data",
        str(datasets / "pairs"),
        "--image-size",
        str(SIZE),
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
        "--sample-every",
        "1",
        "--verbose",
        "0",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert len(scans) == 1 and (out / "held_out.json").is_file()
    split = (out / "split.json").read_text()
    assert main(argv) == 0  # a finished run, rerun: nothing to train
    assert len(scans) == 2 and (out / "split.json").read_text() == split


def test_empty_layer_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--experiment", "finetune-lora", "--targets", ","])
    assert exit_info.value.code == 2 and "expected comma-separated layer names" in capsys.readouterr().err


def test_a_finetuning_experiment_needs_its_generator(tmp_path):
    with pytest.raises(Sar2OptError, match="pre-trained generator of 'finetune-full'"):
        train_experiment(get_experiment("finetune-full"), out=tmp_path / "run")
    with pytest.raises(Sar2OptError, match="Expected a fine-tuning experiment"):
        finetune.finetune(get_experiment("pix2pix"), out=tmp_path / "run")


def test_an_entry_script_refuses_another_experiment(capsys):
    from keras_sar2opt.cli import train_main

    assert train_main("finetune-full", ["--experiment", "wgan"]) == 2
    assert "Expected no --experiment: this script trains finetune-full" in capsys.readouterr().err


def test_held_out_l1_is_measured_once_per_pair_of_weights(tmp_path, monkeypatch):
    measured = []
    start, tuned = unet_generator(image_size=SIZE), unet_generator(image_size=SIZE)
    monkeypatch.setattr(
        finetune,
        "held_out_l1",
        lambda generator, **_: measured.append("start" if generator is start else "tuned") or 0.25,
    )
    measure = {"pairs": ["a", "b"]}
    first = finetune.measure_held_out(tmp_path, start, tuned, tmp_path / "start.keras", measure)
    assert measured == ["start", "tuned"] and (first["pairs"], first["l1_before"], first["l1_after"]) == (2, 0.25, 0.25)
    rerun = finetune.measure_held_out(tmp_path, start, tuned, tmp_path / "start.keras", measure)  # a rerun
    assert rerun == first and measured == ["start", "tuned"]
    tuned.layers[1].kernel.assign(tuned.layers[1].kernel + 1.0)  # trained further
    finetune.measure_held_out(tmp_path, start, tuned, tmp_path / "start.keras", measure)
    assert measured == ["start", "tuned"] * 2
