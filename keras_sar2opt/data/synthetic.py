"""The built-in synthetic benchmark (data/README.md): land-cover scenes, their optical image and a speckled SAR image.

A scene is a map of objects (field parcels, a forest, water, streets, buildings), each with a
land-cover class. The optical image colours the classes with texture; the SAR image gives each
class a backscatter, adds the building geometry of a sensor looking from the left (layover,
a bright double-bounce line at the wall facing the sensor, shadow behind) and thermal noise,
multiplies by Gamma speckle of L looks correlated over the sensor's point spread, and encodes 8
bits linearly in dB or amplitude. The presets are calibrated on real pairs (docs/synthetic.md);
it is simulated data for demos and tests, not real imagery.
"""

import functools
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from scipy.special import gammaincinv, ndtr
from tqdm import tqdm

from keras_sar2opt.data.layouts import sar2optical_pair
from keras_sar2opt.data.scaling import linear_to_db
from keras_sar2opt.data.splits import split_pairs
from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.files import check_writable, write_text

WATER, VEGETATION, FIELDS, BARE_SOIL, ROADS, BUILDINGS = range(6)
CLASS_NAMES = ("water", "vegetation", "fields", "bare_soil", "roads", "buildings")

# Backscatter of each class before calibration (dB), C-band-like: specular water darkest,
# smooth asphalt dark, bare soil and crops in between, volume scattering of vegetation and
# roofs brighter. Objects of a class spread around it by OBJECT_SPREAD_DB.
BACKSCATTER_DB = np.array([-23.0, -9.0, -13.0, -16.0, -20.0, -7.0], np.float32)
OBJECT_SPREAD_DB = np.array([1.5, 0.0, 2.0, 1.5, 1.0, 2.0], np.float32)
SAR_TEXTURE_DB = np.array([0.0, 1.5, 0.0, 0.0, 0.0, 0.0], np.float32)  # canopy; other objects are homogeneous
DOUBLE_BOUNCE_DB = 6.0  # wall-ground corner facing the sensor
WALL_DB = -8.0  # wall return added to the ground in front of a building (layover)
SHADOW_DB = -30.0  # no return behind a building: the noise floor

BASE_COLOURS = np.array(
    [  # RGB in [0, 1], by class
        [0.10, 0.17, 0.22],
        [0.12, 0.25, 0.10],
        [0.38, 0.44, 0.20],
        [0.52, 0.44, 0.34],
        [0.40, 0.40, 0.41],
        [0.62, 0.60, 0.58],
    ],
    np.float32,
)
CROP_COLOURS = np.array([[0.30, 0.44, 0.15], [0.55, 0.52, 0.30], [0.43, 0.35, 0.24], [0.24, 0.36, 0.13]], np.float32)
ROOF_COLOURS = np.array([[0.70, 0.68, 0.65], [0.55, 0.26, 0.20], [0.45, 0.45, 0.48], [0.85, 0.84, 0.80]], np.float32)
# Speckle quantiles are tabulated at these standard normal values (a step of 0.0007) and looked up by the nearest.
GAUSSIAN_GRID = np.linspace(-6.0, 6.0, 2**14 + 1, dtype=np.float32)
OPTICAL_TEXTURE = np.array([0.03, 0.18, 0.06, 0.08, 0.04, 0.05], np.float32)  # relative, per class


@dataclass(frozen=True)
class SensorPreset:
    """What distinguishes one simulated sensor (and its optical partner) from another."""

    name: str
    looks: int  # equivalent number of looks of the Gamma speckle (intensity CV = 1/sqrt(looks))
    speckle_correlation: float  # pixels: Gaussian sigma of the point spread correlating speckle (0: none)
    texture_scale: float  # correlation length of texture, pixels (smaller = finer)
    parcel_size: float  # mean side of a field parcel, pixels
    block_size: int  # urban block (one building and its street), pixels
    building_height: tuple  # building heights, pixels of ground range
    incidence_deg: float  # shadow length = height * tan(incidence); layover = height / tan(incidence)
    noise_floor_db: float  # noise-equivalent sigma0: thermal noise added to every backscatter
    sar_scale: str  # "db": 8 bits linear in dB; "amplitude": linear in amplitude (square root of intensity)
    db_range: tuple  # backscatter (dB) mapped to 0 and 255
    haze: tuple  # RGB path radiance added to the optical image, [0, 1]
    optical_texture: float  # scales OPTICAL_TEXTURE
    layout: str  # layout of the real dataset the preset imitates
    description: str
    calibration_db: float = 0.0  # offset added to every backscatter
    sar_contrast: float = 1.0  # scales OBJECT_SPREAD_DB and SAR_TEXTURE_DB: how much objects of a class differ
    optical_gain: float = 1.0  # reflectance to [0, 1] display values
    saturation: float = 1.0  # colours pulled towards their grey (< 1) or pushed away from it (> 1)


# Calibrated by benchmarks/calibrate_synthetic.py (docs/synthetic.md): the real figures are means over
# 8-bit images, two measurements each (30 SEN1-2 Kaggle pairs, 7 QXSLAB-SAROPT pairs; other pairs of
# the same sets); the synthetic ones are over 200 pairs. Constants aim between the two measurements.
PRESETS = {
    "sentinel": SensorPreset(
        "sentinel",
        looks=2,  # with the correlation below: ENL90 47 (real 47-53); 4 looks gave 83
        speckle_correlation=1.0,  # lag-1 correlation 0.81 (real 0.89): S1 GRD's 20 m cell on 10 m pixels
        texture_scale=4.0,
        parcel_size=40.0,
        block_size=8,
        building_height=(1.0, 3.0),
        incidence_deg=38.0,
        calibration_db=0.3,  # SAR mean 137 (real 135)
        noise_floor_db=-22.0,  # S1 IW's NESZ; SAR p5 58 (real 56)
        sar_scale="db",
        db_range=(-30.0, 0.0),  # 8.5 levels/dB: SAR std 47 (real 48-50); [-25, 0] gave mean 107, std 57
        optical_gain=1.1,  # optical std 43 (real 45-46)
        haze=(0.0, 0.0, 0.1),  # blue path radiance: RGB means 90, 100, 94 (real 86-90, 97-101, 90-95)
        optical_texture=1.3,
        layout="sen12",
        description="Sentinel-1-like (SEN1-2): 10 m, 2 looks, dB in [-30, 0]",
    ),
    "qxslab": SensorPreset(
        "qxslab",
        looks=1,  # single look, the most speckled: ENL90 7.9 (real 7.5-7.7)
        speckle_correlation=1.35,  # lag-1 correlation 0.85 (real 0.78)
        texture_scale=4.0,
        parcel_size=60.0,
        block_size=18,  # with parcels of 60 px: optical texture 8.6 px (real 7.2), SAR 4.0 px (real 5.5)
        building_height=(4.0, 12.0),
        incidence_deg=30.0,
        sar_contrast=3.0,  # metre-scale objects differ more: SAR std 44 (real 42-45)
        noise_floor_db=-9.0,  # relative to db_range: SAR p5 14 (real 20)
        sar_scale="amplitude",
        db_range=(-40.0, 4.0),  # amplitude 0 to 1.58 over 0..255: SAR mean 67 (real 62-72)
        saturation=0.45,  # greyer colours: optical std 40 (real 39-40)
        haze=(0.08, 0.03, 0.06),  # RGB means 101, 92, 86 (real 95-105, 91-94, 88-89)
        optical_texture=3.5,
        layout="qxslab",
        description="GaoFen-3-like (QXSLAB-SAROPT): 1 m, single look, 8 bits linear in amplitude",
    ),
}


def get_preset(name):
    """The `SensorPreset` called `name`, or a `Sar2OptError` listing the presets."""
    if name not in PRESETS:
        raise Sar2OptError(f"Expected a synthetic preset among {', '.join(PRESETS)}, received {name!r}")
    return PRESETS[name]


class Scene(NamedTuple):
    """Per-pixel object ids, classes and building heights (pixels), and each object's class."""

    objects: np.ndarray  # int32 HxW
    classes: np.ndarray  # uint8 HxW
    heights: np.ndarray  # float32 HxW, 0 off buildings
    object_class: np.ndarray  # uint8 per object


def _scene(objects, object_class, object_height):
    return Scene(objects, np.take(object_class, objects), np.take(object_height, objects), object_class)


def uniform_scene(size, land_cover):
    """A size x size scene that is one homogeneous object of class `land_cover`."""
    return _scene(np.zeros((size, size), np.int32), np.array([land_cover], np.uint8), np.zeros(1, np.float32))


def _smooth_noise(rng, size, scale):
    """Zero-mean noise with correlation length ~scale pixels: a coarse normal grid upsampled
    bicubically to 8 samples per cell, then bilinearly (fast, and as smooth at that point)."""
    cells = max(2, math.ceil(size / scale) + 1)
    middle = min(size, 8 * cells)
    field = cv2.resize(
        rng.standard_normal((cells, cells), dtype=np.float32), (middle, middle), interpolation=cv2.INTER_CUBIC
    )
    return field if middle == size else cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR)


def _cuts(rng, size, mean):
    """Sorted cut positions splitting [0, size) into intervals of about `mean` pixels."""
    steps = rng.uniform(0.5, 1.5, int(size / mean) + 2) * mean
    return np.cumsum(steps) - rng.uniform(0, mean)


def _per_block(values, block, size):
    """Expand per-block values (n x n) to a size x size pixel map."""
    return np.repeat(np.repeat(values, block, axis=0), block, axis=1)[:size, :size]


def generate_scene(size, preset, rng):
    """A random land-cover scene: parcels of fields, soil and vegetation, a forest, an urban grid
    of buildings and streets, main roads, and water (lakes, sometimes a river)."""
    rows = np.arange(size)
    # Field parcels: bands of rows, each band cut into columns of its own.
    row_cuts = _cuts(rng, size, preset.parcel_size)
    band = np.searchsorted(row_cuts, rows, side="right")
    columns = np.stack(
        [np.searchsorted(_cuts(rng, size, preset.parcel_size), rows, side="right") for _ in range(len(row_cuts) + 1)]
    ).astype(np.int32)
    n_columns = int(columns.max()) + 1
    objects = np.take(columns, band, axis=0) + (band * n_columns).astype(np.int32)[:, None]
    n_parcels = (len(row_cuts) + 1) * n_columns
    forest, streets, water, first_building = n_parcels, n_parcels + 1, n_parcels + 2, n_parcels + 3
    np.copyto(objects, forest, where=_smooth_noise(rng, size, preset.parcel_size * 1.5) > 1.0)

    # Urban blocks: streets, and in most blocks a building of random extent.
    block = preset.block_size
    n_blocks = math.ceil(size / block)
    urban = (
        cv2.resize(rng.standard_normal((3, 3), dtype=np.float32), (n_blocks, n_blocks), interpolation=cv2.INTER_CUBIC)
        > 0.7
    )
    built = urban & (rng.random((n_blocks, n_blocks)) < 0.85)
    local = np.arange(block)
    gap = max(1, block // 5)
    start = rng.integers(gap, gap + block // 4 + 1, (2, n_blocks, n_blocks, 1))
    stop = block - rng.integers(0, block // 4 + 1, (2, n_blocks, n_blocks, 1))
    inside_rows, inside_columns = (start <= local) & (local < stop)
    footprint = inside_rows[:, :, :, None] & inside_columns[:, :, None, :] & built[:, :, None, None]
    footprint = footprint.transpose(0, 2, 1, 3).reshape(n_blocks * block, n_blocks * block)[:size, :size]
    np.copyto(objects, streets, where=_per_block(urban, block, size))
    block_ids = first_building + np.arange(n_blocks * n_blocks, dtype=np.int32).reshape(n_blocks, n_blocks)
    np.copyto(objects, _per_block(block_ids, block, size), where=footprint)

    roads = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(0, 3)):
        centre, angle = rng.uniform(0, size, 2), rng.uniform(0, np.pi)
        reach = 2 * size * np.array([np.cos(angle), np.sin(angle)])
        cv2.line(
            roads, tuple(int(v) for v in centre - reach), tuple(int(v) for v in centre + reach), 1, max(1, block // 4)
        )
    np.copyto(objects, streets, where=roads > 0)
    lakes = _smooth_noise(rng, size, preset.parcel_size * 2.5) > 1.1
    if rng.random() < 0.3:  # a meandering river
        x = np.linspace(-8, size + 8, 32)
        waves = np.sin(x / size * rng.uniform(3, 8) + rng.uniform(0, 6))
        y = (rng.uniform(0.2, 0.8) + rng.uniform(0.05, 0.2) * waves) * size
        river = np.zeros((size, size), np.uint8)
        width = int(rng.uniform(0.03, 0.08) * size)
        cv2.polylines(river, [np.stack([x, y], 1).astype(np.int32)], False, 1, width)
        lakes |= (river.T if rng.random() < 0.5 else river) > 0
    np.copyto(objects, water, where=lakes)

    object_class = np.concatenate(
        [
            rng.choice(np.array([VEGETATION, FIELDS, BARE_SOIL], np.uint8), n_parcels, p=[0.2, 0.6, 0.2]),
            np.array([VEGETATION, ROADS, WATER], np.uint8),
            np.full(n_blocks * n_blocks, BUILDINGS, np.uint8),
        ]
    )
    object_height = np.zeros(len(object_class), np.float32)
    object_height[first_building:] = rng.uniform(*preset.building_height, n_blocks * n_blocks)
    return _scene(objects, object_class, object_height)


def render_optical(scene, preset, rng):
    """The optical image of a scene, uint8 RGB: class colours varied per object, textured, with
    sun shadows to the lower right of buildings."""
    n_objects = len(scene.object_class)
    colours = BASE_COLOURS[scene.object_class] * rng.uniform(0.85, 1.15, (n_objects, 1)).astype(np.float32)
    crops, roofs = scene.object_class == FIELDS, scene.object_class == BUILDINGS
    colours[crops] = CROP_COLOURS[rng.integers(0, len(CROP_COLOURS), crops.sum())]
    colours[roofs] = ROOF_COLOURS[rng.integers(0, len(ROOF_COLOURS), roofs.sum())]
    grey = colours.mean(axis=1, keepdims=True)
    colours = (grey + np.float32(preset.saturation) * (colours - grey)) * np.float32(preset.optical_gain)
    classes = scene.classes
    strength = OPTICAL_TEXTURE * np.float32(preset.optical_texture)
    texture = 1.0 + np.take(strength, classes) * _smooth_noise(rng, classes.shape[0], preset.texture_scale)
    np.maximum(texture, 0.0, out=texture)
    shift = max(1, int(round(float(np.mean(preset.building_height)) / 2)))
    building = classes == BUILDINGS
    shade = np.zeros_like(building)
    shade[shift:, shift:] = building[:-shift, :-shift]
    np.multiply(texture, 0.55, out=texture, where=shade & ~building)
    image = np.take(colours, scene.objects, axis=0)
    image *= texture[..., None]
    image += np.asarray(preset.haze, np.float32)
    return cv2.convertScaleAbs(image, alpha=255.0)  # rounds and saturates; values are >= 0


def backscatter_db(scene, preset, rng):
    """Calibrated backscatter of a scene in dB before speckle (sensor on the left, looking right)."""
    classes, heights = scene.classes, scene.heights
    size = classes.shape[1]
    contrast = np.float32(preset.sar_contrast)
    spread = rng.standard_normal(len(scene.object_class)).astype(np.float32) * OBJECT_SPREAD_DB[scene.object_class]
    spread *= contrast
    sigma_db = np.take(BACKSCATTER_DB[scene.object_class] + spread, scene.objects)
    sigma_db += np.take(SAR_TEXTURE_DB * contrast, classes) * _smooth_noise(rng, size, preset.texture_scale)
    building = classes == BUILDINGS
    if building.any():
        column = np.arange(size, dtype=np.float32)[None, :]
        tangent = math.tan(math.radians(preset.incidence_deg))
        # Shadow: ground up to height * tan(incidence) beyond a building, away from the sensor.
        shadow_reach = np.maximum.accumulate(np.where(building, column + heights * tangent, -1.0), axis=1)
        # Layover: the wall is imaged height / tan(incidence) towards the sensor, over the ground.
        layover_reach = np.minimum.accumulate(np.where(building, column - heights / tangent, size)[:, ::-1], axis=1)[
            :, ::-1
        ]
        ground = ~building
        np.copyto(sigma_db, SHADOW_DB, where=ground & (column <= shadow_reach))
        front = ground & (column >= layover_reach)
        sigma_db[front] = linear_to_db(10.0 ** (sigma_db[front] / 10.0) + 10.0 ** (WALL_DB / 10.0))
        corner = building.copy()
        corner[:, 1:] &= ~building[:, :-1]  # first building pixel seen from the sensor
        np.copyto(sigma_db, DOUBLE_BOUNCE_DB, where=corner)
    return sigma_db + np.float32(preset.calibration_db)


@functools.lru_cache(maxsize=8)
def _gamma_quantiles(looks):
    """Gamma(looks, 1/looks) quantiles at the standard normal values GAUSSIAN_GRID."""
    return (gammaincinv(looks, ndtr(GAUSSIAN_GRID)) / looks).astype(np.float32)


def speckle_field(shape, looks, correlation, rng):
    """Fully developed speckle: Gamma(looks, 1/looks) in every pixel (mean 1, CV 1/sqrt(looks)),
    correlated over `correlation` pixels (the Gaussian sigma of the sensor's point spread; 0:
    independent pixels). A Gaussian field of that correlation, mapped through the normal CDF and
    the Gamma quantile function, keeps the Gamma distribution exactly in each pixel."""
    field = rng.standard_normal(shape, dtype=np.float32)
    if correlation > 0:
        kernel = cv2.getGaussianKernel(2 * math.ceil(3 * correlation) + 1, correlation)
        field = cv2.sepFilter2D(field, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)
        field *= np.float32(1.0 / np.sum(kernel**2))  # unit variance again (the 2-D kernel's squared norm)
    scale = (len(GAUSSIAN_GRID) - 1) / (GAUSSIAN_GRID[-1] - GAUSSIAN_GRID[0])
    field = cv2.min(
        cv2.max(field * np.float32(scale) + np.float32(0.5 - GAUSSIAN_GRID[0] * scale), 0.0), len(GAUSSIAN_GRID) - 1
    )
    return _gamma_quantiles(looks).take(field.astype(np.int32))


def simulate_sar(scene, preset, rng):
    """Speckled SAR intensity of a scene (linear, float32), before 8-bit encoding."""
    intensity = cv2.exp(backscatter_db(scene, preset, rng) * np.float32(math.log(10.0) / 10.0))
    intensity += np.float32(10.0 ** (preset.noise_floor_db / 10.0))
    return intensity * speckle_field(intensity.shape, preset.looks, preset.speckle_correlation, rng)


def quantise(intensity, preset):
    """Linear intensity -> 8 bits, mapping the preset's db_range to 0..255 linearly in dB or in amplitude."""
    low, high = preset.db_range
    if preset.sar_scale == "db":
        db = np.maximum(linear_to_db(intensity), np.float32(low))
        return cv2.convertScaleAbs(db, alpha=255.0 / (high - low), beta=-255.0 * low / (high - low))
    low, high = 10.0 ** (low / 20.0), 10.0 ** (high / 20.0)
    return cv2.convertScaleAbs(cv2.sqrt(intensity), alpha=255.0 / (high - low), beta=-255.0 * low / (high - low))


class SyntheticPair(NamedTuple):
    sar: np.ndarray  # uint8 HxW, dB-scaled
    optical: np.ndarray  # uint8 HxWx3 RGB
    scene: Scene


def generate_pair(preset, size=256, seed=0, index=0):
    """Pair `index` of the benchmark drawn with `seed`: the same (preset, size, seed, index)
    always gives the same pair, however many pairs are drawn."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    rng = np.random.default_rng([seed, index])
    scene = generate_scene(size, preset, rng)
    optical = render_optical(scene, preset, rng)
    return SyntheticPair(quantise(simulate_sar(scene, preset, rng), preset), optical, scene)


# Where pair i goes in each layout, with the real datasets' file naming.
SYNTHETIC_LAYOUTS = ("qxslab", "sen12", "sar2optical")
_SEN12_ROIS = ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter")
_PATCHES_PER_SCENE = 20
_KAGGLE_CATEGORIES = {FIELDS: "agri", BARE_SOIL: "barrenland", VEGETATION: "grassland"}
# PNGs are stored without compression or filtering: speckled SAR does not compress (64 against
# 61 KB at 256x256) and encoding becomes ~10x faster; optical tiles take ~190 KB instead of ~100 KB.
_PNG_STORED = [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def _sen12_name(index):
    scene_index = index // _PATCHES_PER_SCENE
    return _SEN12_ROIS[scene_index % 4], scene_index // 4 + 1, index % _PATCHES_PER_SCENE + 1


def _kaggle_category(classes):
    share = np.bincount(classes.ravel(), minlength=len(CLASS_NAMES)) / classes.size
    if share[BUILDINGS] + share[ROADS] >= 0.2:
        return "urban"
    return _KAGGLE_CATEGORIES[max(_KAGGLE_CATEGORIES, key=lambda c: share[c])]


def _relative_paths(layout, index, size, pair):
    """(SAR path, optical path) of pair `index`, relative to the output folder."""
    if layout == "qxslab":
        folder = Path("QXSLAB_SAROPT")
        return tuple(folder / f"{kind}_{size}_oc_0.2" / f"{index + 1}.png" for kind in ("sar", "opt"))
    roi, scene, patch = _sen12_name(index)
    if layout == "sen12":
        return tuple(Path(roi) / f"s{s}_{scene}" / f"{roi}_s{s}_{scene}_p{patch}.png" for s in (1, 2))
    category = _kaggle_category(pair.scene.classes)
    return tuple(Path("v_2") / category / f"s{s}" / f"{roi}_s{s}_{scene}_p{patch}.png" for s in (1, 2))


def _write(path, image):
    check_writable(path.parent, create=True)
    if not cv2.imwrite(str(path), image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR), _PNG_STORED):
        raise Sar2OptError(f"Expected a writable output path, received {path}")


def write_synthetic(out, preset, pairs, layout, size=256, seed=0, progress=True):
    """Write `pairs` synthetic pairs into the empty or new folder `out` in a real dataset layout.

    layout "qxslab": QXSLAB_SAROPT/sar_<size>_oc_0.2/<n>.png and opt_<size>_oc_0.2/<n>.png;
    "sen12": ROIs<id>_<season>/s1_<k>/ROIs<id>_<season>_s1_<k>_p<n>.png and s2_<k>/...;
    "sar2optical": v_2/<category>/s1|s2/<SEN1-2 names> with a seeded 80/10/10 split.json.
    SAR is 1-channel 8-bit dB, optical 8-bit RGB. `synthetic.json` records the settings and
    marks the folder as simulated. Pairs are drawn in parallel threads; the files do not depend
    on it. Returns `out`, which `find_pairs` accepts.
    """
    preset = get_preset(preset)
    if layout not in SYNTHETIC_LAYOUTS:
        choices = ", ".join(SYNTHETIC_LAYOUTS)
        raise Sar2OptError(f"Expected a synthetic layout among {choices}, received {layout!r}")
    if int(pairs) != pairs or pairs < 1:
        raise Sar2OptError(f"Expected a positive number of pairs, received {pairs!r}")
    if int(size) != size or size < 16:
        raise Sar2OptError(f"Expected an image size of at least 16 pixels, received {size!r}")
    out = check_writable(out)
    if out.exists() and any(out.iterdir()):
        raise Sar2OptError(f"Expected an empty or new output folder, received {out}, which is not empty")
    pairs, size = int(pairs), int(size)

    def write_pair(index):
        pair = generate_pair(preset, size, seed, index)
        sar_path, optical_path = _relative_paths(layout, index, size, pair)
        _write(out / sar_path, pair.sar)
        _write(out / optical_path, pair.optical)
        return sar_path

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        written = tqdm(
            pool.map(write_pair, range(pairs)),
            total=pairs,
            desc=f"Synthetic {preset.name} pairs",
            unit="pair",
            disable=not progress,
        )
        sar_paths = list(written)
    if layout == "sar2optical":
        base = out / "v_2"
        split = split_pairs([sar2optical_pair(base, p.relative_to("v_2"), out) for p in sar_paths], seed=seed)
        data = {name: [p.sar.relative_to(base).as_posix() for p in part] for name, part in split.items()}
        write_text(out / "split.json", json.dumps({"data": data}, indent=2) + "\n")
    info = {
        "synthetic": True,
        "note": "Simulated scenes (keras_sar2opt synthetic benchmark), not real satellite data.",
        "layout": layout,
        "pairs": pairs,
        "size": size,
        "seed": seed,
        "preset": asdict(preset),
    }
    write_text(out / "synthetic.json", json.dumps(info, indent=2) + "\n")
    return out
