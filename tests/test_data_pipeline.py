"""The tf.data pipeline: shapes and range, joint augmentation, determinism per seed, cache, options."""

import cv2
import numpy as np
import pytest

from keras_sar2opt.data import Pair, find_pairs, make_dataset
from keras_sar2opt.data.loading import load_pair
from keras_sar2opt.data.pipeline import training_batches
from keras_sar2opt.data.scaling import OpticalScaling, SarScaling
from keras_sar2opt.data.synthetic import write_synthetic
from keras_sar2opt.errors import Sar2OptError


@pytest.fixture(scope="module")
def pairs(module_tmp):
    out = module_tmp("data") / "qx"
    root = write_synthetic(out, "qxslab", 12, "qxslab", size=32, seed=0, progress=False)
    return find_pairs(root).pairs


def batches(dataset):
    return [(sar.numpy(), optical.numpy()) for sar, optical in dataset]


def test_shapes_range_and_resize(pairs):
    evaluation = batches(make_dataset(pairs, 32, 5, training=False))
    assert [b[0].shape for b in evaluation] == [(5, 32, 32, 3), (5, 32, 32, 3), (2, 32, 32, 3)]
    sar, optical = evaluation[0]
    assert sar.dtype == np.float32 and sar.min() >= -1 and sar.max() <= 1 and optical.min() >= -1
    assert np.all(sar[..., 0] == sar[..., 2])  # one SAR channel repeated
    expected_sar, expected_optical = load_pair(pairs[0], 32)
    np.testing.assert_array_equal(sar[0], expected_sar)
    np.testing.assert_allclose(optical[0], cv2.imread(str(pairs[0].optical))[..., ::-1] / 127.5 - 1, atol=1e-6)
    training = batches(make_dataset(pairs, 16, 5, training=True))
    assert [b[1].shape for b in training] == [(5, 16, 16, 3), (5, 16, 16, 3)]  # last partial batch dropped
    one_channel = make_dataset(pairs, 16, 4, training=False, sar_channels=1)
    assert one_channel.element_spec[0].shape.as_list() == [None, 16, 16, 1]


def test_augmentation_moves_both_images_together(tmp_path):
    sar, optical = np.zeros((16, 16), np.uint8), np.zeros((16, 16, 3), np.uint8)
    sar[2, 5], optical[2, 5] = 255, (255, 0, 0)
    cv2.imwrite(str(tmp_path / "sar.png"), sar)
    cv2.imwrite(str(tmp_path / "optical.png"), optical)
    pair = Pair("marked", tmp_path / "sar.png", tmp_path / "optical.png")
    ((sar_batch, optical_batch),) = batches(make_dataset([pair] * 32, 16, 32, training=True, seed=1))
    positions = set()
    for sar_image, optical_image in zip(sar_batch, optical_batch):
        mark = np.unravel_index(np.argmax(sar_image[..., 0]), (16, 16))
        assert mark == np.unravel_index(np.argmax(optical_image.max(-1)), (16, 16))
        assert (sar_image[..., 0] > 0).sum() == 1 and (optical_image.max(-1) > 0).sum() == 1
        positions.add(mark)
    dihedral = {(r, c) for a, b in ((2, 5), (5, 2)) for r in (a, 15 - a) for c in (b, 15 - b)}
    assert positions <= dihedral and len(positions) >= 6  # the 8 flips/rotations of (2, 5)
    plain = batches(make_dataset([pair] * 4, 16, 4, training=True, augment=False))
    assert all(np.argmax(s[..., 0]) == 2 * 16 + 5 for s in plain[0][0])


def test_deterministic_per_seed_and_reshuffled_per_epoch(pairs):
    first = make_dataset(pairs, 16, 4, training=True, seed=3)
    second = make_dataset(pairs, 16, 4, training=True, seed=3)
    epochs = [batches(first), batches(first)]
    again = [batches(second), batches(second)]
    for epoch, repeat in zip(epochs, again):
        for (s1, o1), (s2, o2) in zip(epoch, repeat):
            np.testing.assert_array_equal(s1, s2)
            np.testing.assert_array_equal(o1, o2)
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])  # a new order and new flips each epoch
    other = batches(make_dataset(pairs, 16, 4, training=True, seed=4))
    assert not np.array_equal(other[0][0], epochs[0][0][0])


def test_every_stream_runs_without_the_autotuning_thread(pairs):
    # Deleting an iterator waited for that thread's sleep: up to 25 s at the end of a fit() (reports/cpu-profile.md).
    streams = [
        make_dataset(pairs, 16, 4, training=True),
        make_dataset(pairs, 16, 4, training=False, cache=True),
        training_batches(pairs, 16, 4),
    ]
    assert [stream.options().autotune.enabled for stream in streams] == [False, False, False]
    assert len(batches(streams[1])) == 3


def test_cache_in_memory_and_on_disk_give_the_same_pairs(pairs, tmp_path):
    def sorted_rows(data):
        sar = np.concatenate([b[0] for b in data]).reshape(len(pairs), -1)
        return sar[np.lexsort(sar.T[::-1])]

    reference = sorted_rows(batches(make_dataset(pairs, 16, 4, training=False)))
    memory = make_dataset(pairs, 16, 4, training=True, augment=False, drop_remainder=False, cache=True)
    assert np.array_equal(sorted_rows(batches(memory)), reference)
    assert np.array_equal(sorted_rows(batches(memory)), reference)  # second epoch from the cache
    disk = make_dataset(pairs, 16, 4, training=False, cache=tmp_path / "cache")
    assert np.array_equal(sorted_rows(batches(disk)), reference)
    assert list(tmp_path.glob("cache*"))


def test_preprocessing_and_sar_options_apply_to_sar_only(pairs):
    plain = batches(make_dataset(pairs[:4], 32, 4, training=False))[0]
    steps = [("median", {"window": 7}), ("gamma", {"gamma": 7, "convention": "power"})]
    processed = batches(make_dataset(pairs[:4], 32, 4, training=False, preprocessing=steps))[0]
    np.testing.assert_array_equal(processed[1], plain[1])
    assert processed[0].mean() < plain[0].mean() - 0.3  # gamma 7 "power" darkens
    stretched = batches(make_dataset(pairs[:4], 32, 4, training=False, sar_options=SarScaling(percentiles=[2, 98])))[0]
    assert stretched[0].min() == -1 and stretched[0].max() == 1


def test_bad_options_fail_before_tf_data(pairs):
    with pytest.raises(Sar2OptError, match="received 'bilateral'"):
        make_dataset(pairs, 32, 4, training=True, preprocessing=["bilateral"])
    with pytest.raises(Sar2OptError, match="Expected a SarScaling or None, received"):
        make_dataset(pairs, 32, 4, training=True, sar_options={"percentiles": [2, 98]})
    with pytest.raises(Sar2OptError, match="at least one pair"):
        make_dataset([], 32, 4, training=True)
    with pytest.raises(Sar2OptError, match="image size of at least 8, received 0"):
        make_dataset(pairs, 0, 4, training=True)
    with pytest.raises(Sar2OptError, match="one full batch of 16 pairs, received 12 pairs"):
        make_dataset(pairs, 32, 16, training=True)
    with pytest.raises(Sar2OptError, match="one full batch of 2 pairs, received 1 pair$"):
        training_batches(pairs[:1], 32, 2)
    assert len(batches(make_dataset(pairs, 32, 16, training=False))) == 1


@pytest.fixture
def reflectance_pairs(tmp_path):
    """Two pairs of 8-bit SAR and 16-bit optical reflectance x10000 (Sentinel-2 L2A), values 0..2000."""
    rng = np.random.default_rng(0)
    pairs = []
    for index in range(2):
        sar, optical = tmp_path / f"s1_{index}.png", tmp_path / f"s2_{index}.png"
        cv2.imwrite(str(sar), rng.integers(0, 256, (16, 16), np.uint8))
        cv2.imwrite(str(optical), rng.integers(0, 2001, (16, 16, 3)).astype(np.uint16))
        pairs.append(Pair(str(index), sar, optical))
    return pairs


def test_optical_range_scales_16_bit_reflectance_in_both_pipelines(reflectance_pairs, caplog):
    from keras_sar2opt.data.loading import warn_if_optical_is_dark
    from keras_sar2opt.data.pydataset import PairBatches

    stored = cv2.imread(str(reflectance_pairs[0].optical), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.float32)
    by_depth = batches(make_dataset(reflectance_pairs, 16, 2, training=False))[0][1]
    assert by_depth.max() < -0.9  # 2000 of 65535: nearly black
    ranged = batches(
        make_dataset(reflectance_pairs, 16, 2, training=False, optical_options=OpticalScaling(range=[0, 2000]))
    )[0][1]
    np.testing.assert_allclose(ranged[0], stored / 1000.0 - 1.0, atol=1e-5)
    sequence = PairBatches(
        reflectance_pairs, 16, 2, training=False, optical_options=OpticalScaling(range=[0, 2000]), workers=1
    )
    np.testing.assert_array_equal(sequence[0][1], ranged)
    with pytest.raises(
        Sar2OptError, match=r"optical range \(--optical-range\) as \[low, high\] finite with low < high, received \[5\]"
    ):
        make_dataset(reflectance_pairs, 16, 2, training=False, optical_options=OpticalScaling(range=[5]))

    with caplog.at_level("WARNING"):
        warn_if_optical_is_dark(reflectance_pairs, None)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert str(reflectance_pairs[0].optical) in message
    assert f"use values up to {np.percentile(stored, 99):.0f} of their type's 65535" in message
    assert f"pass --optical-range 0 {np.percentile(stored, 99):.0f} (or" in message
    caplog.clear()
    with caplog.at_level("WARNING"):
        warn_if_optical_is_dark(reflectance_pairs, OpticalScaling(range=[0, 2000]))  # scaled as asked
        warn_if_optical_is_dark([Pair("8-bit", reflectance_pairs[0].sar, reflectance_pairs[0].sar)], None)
        empty = reflectance_pairs[0].optical.with_name("empty.png")
        cv2.imwrite(str(empty), np.zeros((16, 16, 3), np.uint16))
        warn_if_optical_is_dark([Pair("empty", reflectance_pairs[0].sar, empty)], None)  # no range to suggest
    assert not caplog.records


def test_optical_bands_pick_rgb_from_a_multiband_geotiff(reflectance_pairs, tmp_path, caplog):
    import rasterio

    from keras_sar2opt.data.loading import warn_if_optical_is_dark

    stack = tmp_path / "s2_stack.tif"
    with rasterio.open(stack, "w", driver="GTiff", height=16, width=16, count=5, dtype="uint16") as dataset:
        for band in range(1, 6):
            dataset.write(np.full((16, 16), band * 100, np.uint16), band)
    pair = Pair("stack", reflectance_pairs[0].sar, stack)
    with caplog.at_level("WARNING"):
        warn_if_optical_is_dark([pair], OpticalScaling(bands=[3, 2, 1]))  # judged on the bands used: up to 300, not 500
    assert [record.getMessage().split(": ")[0] for record in caplog.records] == [
        f"Optical images such as {stack} use values up to 300 of their type's 65535"
    ]
    _, optical = load_pair(pair, 16, optical_options=OpticalScaling(bands=[3, 2, 1], range=[0, 500]))
    np.testing.assert_allclose(optical[0, 0], np.array([300, 200, 100]) / 250.0 - 1.0, atol=1e-6)
    with pytest.raises(
        Sar2OptError, match=f"Expected 1 to 4 optical bands in {stack}, received 5: choose 1 or 3 with --optical-bands"
    ):
        load_pair(pair, 16)  # five bands and no choice among them
    with pytest.raises(Sar2OptError, match=f"Expected optical band 6 in {stack}, received 5 bands"):
        load_pair(pair, 16, optical_options=OpticalScaling(bands=[6]))
    # Pairs are checked for the bands asked for before any training.
    (tmp_path / "pairs.csv").write_text(f"sar,optical\n{pair.sar},{stack}\n")
    with pytest.raises(Sar2OptError, match=f"Expected 1 to 4 optical bands in {stack}, received 5"):
        find_pairs(tmp_path / "pairs.csv")
    assert find_pairs(tmp_path / "pairs.csv", optical_bands=[3, 2, 1]).pairs[0].optical == stack
    with pytest.raises(Sar2OptError, match=f"Expected optical band 6 in {stack}, received 5 bands"):
        find_pairs(tmp_path / "pairs.csv", optical_bands=[6])


def test_sar_band_picks_vh_of_a_dual_pol_geotiff(reflectance_pairs, tmp_path):
    import rasterio

    rng = np.random.default_rng(1)
    vv = rng.uniform(-20.0, -5.0, (16, 16)).astype(np.float32)
    polarisations = {"vv": vv, "vh": vv - 8.0 + rng.normal(0.0, 1.0, vv.shape).astype(np.float32)}
    for name, bands in (
        ("dual", (vv, polarisations["vh"])),
        *((name, (band,)) for name, band in polarisations.items()),
    ):
        with rasterio.open(
            tmp_path / f"{name}.tif", "w", driver="GTiff", height=16, width=16, count=len(bands), dtype="float32"
        ) as dataset:
            for index, band in enumerate(bands, 1):
                dataset.write(band, index)
    optical = reflectance_pairs[0].optical
    dual = Pair("dual", tmp_path / "dual.tif", optical)
    for options, alone in ((SarScaling(), "vv"), (SarScaling(band=1), "vv"), (SarScaling(band=2), "vh")):
        sar, _ = load_pair(dual, 16, sar_options=options)
        expected, _ = load_pair(Pair(alone, tmp_path / f"{alone}.tif", optical), 16)
        np.testing.assert_array_equal(sar, expected)
    (tmp_path / "pairs.csv").write_text(f"sar,optical\n{dual.sar},{optical}\n")
    assert find_pairs(tmp_path / "pairs.csv", sar_band=2).pairs[0].sar == dual.sar
    with pytest.raises(Sar2OptError, match=f"Expected SAR band 3 in {dual.sar}, received 2 bands"):
        find_pairs(tmp_path / "pairs.csv", sar_band=3)
