"""Kinds of real SAR file met in public datasets, rebuilt from data the tests make (benchmarks/validate_real.py
runs the package on the real ones)."""

import logging

import numpy as np
import rasterio
from rasterio.transform import from_origin

from keras_sar2opt.inference.paths import plan_outputs


def _write_db(path, rng):
    """A BigEarthNet-S1-like band file: 120x120 float32 backscatter in dB, UTM zone 33N, 10 m pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = rng.normal(-12.0, 3.0, (120, 120)).astype(np.float32)
    profile = {"driver": "GTiff", "height": 120, "width": 120, "count": 1, "dtype": "float32"}
    transform = from_origin(404400.0, 5342400.0, 10.0, 10.0)
    with rasterio.open(path, "w", crs="EPSG:32633", transform=transform, **profile) as dataset:
        dataset.write(db, 1)


def test_a_folder_of_one_file_per_polarisation_translates_the_vv_files(tmp_path, caplog):
    rng = np.random.default_rng(0)
    patches = tmp_path / "S1"
    for scene in ("S1A_33UUP_87_48", "S1A_29UPU_36_85"):
        for polarisation in ("VV", "VH"):
            _write_db(patches / scene / f"{scene}_{polarisation}.tif", rng)
    _write_db(patches / "lone" / "S1B_31TCJ_1_2_VH.tif", rng)  # no VV partner: translated as it is
    _write_db(patches / "single" / "scene.tif", rng)
    with caplog.at_level(logging.WARNING):
        plan = plan_outputs([patches], tmp_path / "out")
    assert sorted(src.name for src, _ in plan) == [
        "S1A_29UPU_36_85_VV.tif",
        "S1A_33UUP_87_48_VV.tif",
        "S1B_31TCJ_1_2_VH.tif",
        "scene.tif",
    ]
    assert f"{patches} stores 2 scenes as one file per polarisation" in caplog.text
    assert "give the _VH files by name to translate VH" in caplog.text
    # Named, a VH file is translated like any other.
    vh = patches / "S1A_33UUP_87_48" / "S1A_33UUP_87_48_VH.tif"
    assert plan_outputs([vh], tmp_path / "vh.tif") == [(vh, tmp_path / "vh.tif")]
