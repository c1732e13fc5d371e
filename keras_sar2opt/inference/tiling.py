"""Tiled translation without seams: overlapping tiles blended with raised-cosine ramps, one row-strip at a time."""

import math

import numpy as np
from tqdm.auto import tqdm

from keras_sar2opt.errors import Sar2OptError
from keras_sar2opt.model_files import tile_size


def tile_starts(length, tile, overlap):
    """Start offsets of tiles covering `length` with at least `overlap` shared pixels; the last ends at `length`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(count)]


def blend_weights(tile, overlap, ramp_in, ramp_out):
    """1-D tile weights: 1 inside, raised-cosine ramps over `overlap` pixels on sides with a neighbour.

    Facing ramps sum to one (sin^2 + cos^2) where tiles overlap by exactly `overlap`.
    """
    weights = np.ones(tile, np.float32)
    if overlap:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap).astype(np.float32) ** 2
        if ramp_in:
            weights[:overlap] = np.minimum(weights[:overlap], ramp)
        if ramp_out:
            weights[-overlap:] = np.minimum(weights[-overlap:], ramp[::-1])
    return weights


def tile_overlap(tile, overlap=None):
    """The overlap of neighbouring `tile`-pixel tiles: `overlap`, checked, or tile/4 when None."""
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise Sar2OptError(f"Expected a tile overlap in [0, {tile - 1}] for {tile}-pixel tiles, received {overlap}")
    return overlap


def translate_strips(model, source, sink, *, overlap=None, batch_size=4, preview=None, progress=True, desc=None):
    """Translate `source` into `sink`, one row-strip of overlapping tiles at a time.

    `source.read(y0, y1)` returns rows y0..y1 as float32 [0, 1] with the model's input channels;
    `sink.write(y0, rows)` receives finished output rows in [0, 1]. Only one strip of input and a
    tile-high accumulator (with its weights) are held in memory.
    """
    tile = tile_size(model)
    overlap = tile_overlap(tile, overlap)
    if batch_size < 1:
        raise Sar2OptError(f"Expected a positive batch size, received {batch_size}")
    height, width = source.height, source.width
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    row_weights = [blend_weights(tile, overlap, i > 0, i < len(ys) - 1) for i in range(len(ys))]
    col_weights = [blend_weights(tile, overlap, j > 0, j < len(xs) - 1) for j in range(len(xs))]
    padded_width = max(width, tile)
    channels = model.outputs[0].shape[-1]
    total = np.zeros((tile, padded_width, channels), np.float32)
    weight = np.zeros((tile, padded_width, 1), np.float32)
    # A bar per image only where the image is more than one row of tiles: small images pass too quickly.
    bar = tqdm(total=len(ys) * len(xs), desc=desc, unit="tile", disable=not progress or len(ys) < 2, leave=False)
    with bar:
        for i, y in enumerate(ys):
            strip = source.read(y, min(y + tile, height))
            padding = ((0, tile - strip.shape[0]), (0, padded_width - width), (0, 0))
            tiles = np.pad(strip, padding, mode="reflect") * 2.0 - 1.0
            for b in range(0, len(xs), batch_size):
                batch = xs[b : b + batch_size]
                outputs = model.predict_on_batch(np.stack([tiles[:, x : x + tile] for x in batch]))
                for j, (x, output) in enumerate(zip(batch, np.asarray(outputs)), start=b):
                    w = (row_weights[i][:, None] * col_weights[j][None, :])[..., None]
                    total[:, x : x + tile] += (output + 1.0) * 0.5 * w
                    weight[:, x : x + tile] += w
                bar.update(len(batch))
            done = (ys[i + 1] if i + 1 < len(ys) else height) - y
            rows = total[:done, :width] / weight[:done, :width]
            sink.write(y, rows)
            if preview is not None:
                preview.add(y, strip[:done], rows)
            total[: tile - done], weight[: tile - done] = total[done:], weight[done:]
            total[tile - done :], weight[tile - done :] = 0.0, 0.0


def translate_array(model, image, *, overlap=None, batch_size=4, progress=False):
    """Translate an in-memory float [0, 1] HxWxC image of any size; returns float32 [0, 1]."""
    source = ArraySource(np.asarray(image, np.float32))
    sink = _ArraySink(source.height, source.width, model.outputs[0].shape[-1])
    translate_strips(model, source, sink, overlap=overlap, batch_size=batch_size, progress=progress)
    return sink.image


class ArraySource:
    """An in-memory [0, 1] image."""

    def __init__(self, image):
        self.image = image
        self.height, self.width = image.shape[:2]

    def read(self, y0, y1):
        return self.image[y0:y1]


class _ArraySink:
    def __init__(self, height, width, channels):
        self.image = np.zeros((height, width, channels), np.float32)

    def write(self, y0, rows):
        self.image[y0 : y0 + rows.shape[0]] = rows
