"""Writing sample grids as PNG files (Pillow)."""

import math
import os

import numpy as np


def image_grid(images, num_levels=256, columns=None, padding=1):
    """Tiles integer images `[N, H, W, C]` into one uint8 array.

    Values in `[0, num_levels - 1]` are scaled to `[0, 255]`.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "`images` must have shape [N, H, W, C] with C in {1, 3}. "
            f"Received: images.shape={images.shape}"
        )
    if not np.issubdtype(images.dtype, np.integer):
        raise ValueError(
            f"`images` must be integer images. Received: images.dtype={images.dtype}"
        )
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    scaled = np.round(images.astype("float64") * 255.0 / (num_levels - 1))
    scaled = np.clip(scaled, 0, 255).astype("uint8")
    grid = np.full(
        (rows * (h + padding) + padding, columns * (w + padding) + padding, c),
        255,
        dtype="uint8",
    )
    for k in range(n):
        r, col = divmod(k, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = scaled[k]
    return grid


def save_image_grid(
    images, path, num_levels=256, columns=None, scale=1, overwrite=True
):
    """Saves integer images `[N, H, W, C]` as one PNG grid.

    Args:
        images: integer array, values in `[0, num_levels - 1]`.
        path: output `.png` path (parent directories are created).
        num_levels: levels of the images (scaled to 0..255).
        columns: grid columns (default: about the square root of N).
        scale: integer upscaling factor (nearest neighbour).
        overwrite: if False and `path` exists, raise `FileExistsError`.

    Returns:
        The path written.
    """
    from PIL import Image

    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"Refusing to overwrite existing file: {path}")
    grid = image_grid(images, num_levels=num_levels, columns=columns)
    if scale != 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    mode_image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.png"
    mode_image.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
