"""Sample grids of SAR | generated | target rows (report Figures 1, 2, 7, 9)."""

import numpy as np

from keras_sar2opt.data.io import write_png

GAP = 2  # white pixels between tiles


def sample_grid(sar, generated, target):
    """One row per example, columns SAR | generated | target; inputs (B, H, W, C) in [-1, 1].

    Returns a float32 (B*H + gaps, 3*W + gaps, 3) image in [0, 1]; 1-channel images become grey.
    """
    columns = [np.asarray(images, np.float32) for images in (sar, generated, target)]
    columns = [np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c[..., :3] for c in columns]
    batch, height, width, _ = columns[0].shape
    grid = np.ones((batch * (height + GAP) - GAP, 3 * (width + GAP) - GAP, 3), np.float32)
    for row in range(batch):
        for column, images in enumerate(columns):
            top, left = row * (height + GAP), column * (width + GAP)
            grid[top : top + height, left : left + width] = (np.clip(images[row], -1.0, 1.0) + 1.0) / 2.0
    return grid


def write_sample_grid(path, sar, generated, target):
    """Write sample_grid(sar, generated, target) as an 8-bit PNG; returns the path."""
    return write_png(path, sample_grid(sar, generated, target))
