"""Translation of SAR images, folders and whole GeoTIFF scenes with a generator (report §3.4–§3.5).

An input larger than the generator's size is cut into overlapping tiles; tile outputs are blended
with separable raised-cosine ramps over the overlaps and normalised by the accumulated weights, so
no seams appear. Scenes are processed one row-strip of tiles at a time, read and written in windows
(GeoTIFF in, GeoTIFF out with the same CRS and transform), so memory stays bounded by the width.
"""

from keras_sar2opt.inference.paths import plan_outputs, translate_file, translate_paths
from keras_sar2opt.inference.scenes import OutputEncoding, scene_halo, strip_sar_options
from keras_sar2opt.inference.tiling import blend_weights, tile_overlap, tile_starts, translate_array, translate_strips

__all__ = [
    "OutputEncoding",
    "blend_weights",
    "plan_outputs",
    "scene_halo",
    "strip_sar_options",
    "tile_overlap",
    "tile_starts",
    "translate_array",
    "translate_file",
    "translate_paths",
    "translate_strips",
]
