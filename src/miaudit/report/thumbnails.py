"""Tiny PNG thumbnails of image records for the report (each scaled to its own min / max)."""
from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib import image as mpimg


def is_image_batch(records: np.ndarray | None) -> bool:
    """True for images [N, C, H, W] with 1 (grey) or 3 (RGB) channels."""
    return records is not None and records.ndim == 4 and records.shape[1] in (1, 3)


def thumbnail_png(image: np.ndarray) -> bytes:
    """One image [C, H, W] (any scale, e.g. standardized) as PNG bytes at its own resolution.

    Values are mapped linearly from the image's own min..max to black..white; a constant image is grey.
    """
    x = np.asarray(image, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else np.full_like(x, 0.5)
    buffer = io.BytesIO()
    if x.shape[0] == 1:
        mpimg.imsave(buffer, x[0], cmap="gray", vmin=0.0, vmax=1.0, format="png")
    else:
        mpimg.imsave(buffer, np.moveaxis(x, 0, -1), format="png")
    return buffer.getvalue()


def thumbnails(records: np.ndarray | None, positions: list[int]) -> dict[int, str] | None:
    """{position: base64 PNG} for the records at ``positions``; None when records are not images."""
    if not is_image_batch(records):
        return None
    return {p: base64.b64encode(thumbnail_png(records[p])).decode("ascii") for p in positions}
