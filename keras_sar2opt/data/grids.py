"""Sample grids of SAR | generated | target rows under column labels (report Figures 1, 2, 7, 9)."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_sar2opt.data.io import write_png

GAP = 2  # white pixels between tiles
COLUMN_LABELS = ("SAR", "Generated", "Target")


def label_band(width, labels, gap=GAP):
    """A white band with each label in black centred over its column of `width` pixels, the columns
    `gap` pixels apart; float (h, w, 3) in [0, 1]."""
    size = max(8, min(24, width // 8))
    font = ImageFont.load_default(size)
    while size > 6 and max(font.getlength(label) for label in labels) > width - 2:  # narrow tiles: smaller text
        size -= 1
        font = ImageFont.load_default(size)
    height = size * 3 // 2
    band = Image.new("L", (len(labels) * (width + gap) - gap, height), 255)
    draw = ImageDraw.Draw(band)
    for column, label in enumerate(labels):
        draw.text((column * (width + gap) + width / 2, height / 2), label, fill=0, font=font, anchor="mm")
    return np.repeat(np.asarray(band, np.float32)[..., None] / 255.0, 3, axis=-1)


def sample_grid(sar, generated, target):
    """One row per example, columns SAR | generated | target under a band of their labels; inputs
    (B, H, W, C) in [-1, 1].

    Returns a float32 (label band + B*H + gaps, 3*W + gaps, 3) image in [0, 1]; 1-channel images
    become grey.
    """
    columns = [np.asarray(images, np.float32) for images in (sar, generated, target)]
    columns = [np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c[..., :3] for c in columns]
    batch, height, width, _ = columns[0].shape
    tiles = np.ones((batch * (height + GAP) - GAP, 3 * (width + GAP) - GAP, 3), np.float32)
    for row in range(batch):
        for column, images in enumerate(columns):
            top, left = row * (height + GAP), column * (width + GAP)
            tiles[top : top + height, left : left + width] = (np.clip(images[row], -1.0, 1.0) + 1.0) / 2.0
    return np.concatenate([label_band(width, COLUMN_LABELS), tiles])


def write_sample_grid(path, sar, generated, target):
    """Write sample_grid(sar, generated, target) as an 8-bit PNG; returns the path."""
    return write_png(path, sample_grid(sar, generated, target))
