"""1080p camera frames made from the sample photographs that scikit-image ships.

Each camera shows one photograph, scaled to 1080 rows and mirrored
side by side until it is 1920 columns wide. A bright bar moves down the
picture one step per frame, so consecutive frames differ and a frame that
arrives with the wrong contents fails its checksum.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

HEIGHT = 1080
WIDTH = 1920
CHANNELS = 3
FRAME_SHAPE = (HEIGHT, WIDTH, CHANNELS)
FRAME_BYTES = HEIGHT * WIDTH * CHANNELS

# Colour photographs bundled with scikit-image, so no download is needed.
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")

BAR_ROWS = 12


def photograph_name(camera: int) -> str:
    """Return the photograph that camera number ``camera`` shows."""
    return PHOTOGRAPHS[camera % len(PHOTOGRAPHS)]


def camera_picture(camera: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Return the 1080p RGB picture of camera number ``camera``."""
    import skimage.data
    import skimage.transform

    photo = getattr(skimage.data, photograph_name(camera))()[..., :CHANNELS]
    rows, columns = photo.shape[:2]
    scaled_width = max(1, round(columns * HEIGHT / rows))
    scaled = skimage.transform.resize(
        photo, (HEIGHT, scaled_width), order=1, preserve_range=True, anti_aliasing=False
    ).astype(np.uint8)

    # Mirror every other copy, so the seams line up, until the row is wide enough.
    tiles: list[np.ndarray[Any, np.dtype[np.uint8]]] = []
    width = 0
    while width < WIDTH:
        tiles.append(scaled if len(tiles) % 2 == 0 else scaled[:, ::-1])
        width += scaled_width
    return np.ascontiguousarray(np.concatenate(tiles, axis=1)[:, :WIDTH])


class Camera:
    """One camera's frame buffer: the picture with a bar drawn for the current frame.

    ``frame`` reuses one buffer, which is safe because ``Sender.send`` has
    finished with a payload when it returns.
    """

    def __init__(self, number: int) -> None:
        self.number = number
        self.name = f"cam-{number}"
        self._picture = camera_picture(number)
        self._buffer = self._picture.copy()
        self._bar: int | None = None

    def frame(self, index: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Return frame ``index``: the picture with the bar at its row for that index."""
        if self._bar is not None:
            rows = slice(self._bar, self._bar + BAR_ROWS)
            self._buffer[rows] = self._picture[rows]
        self._bar = (index * BAR_ROWS) % (HEIGHT - BAR_ROWS)
        rows = slice(self._bar, self._bar + BAR_ROWS)
        self._buffer[rows] = 255 - self._picture[rows] // 2
        return self._buffer


def checksum(frame: Any) -> int:
    """Return the CRC-32 of a frame's bytes."""
    return zlib.crc32(memoryview(frame).cast("B"))


def mean_brightness(frame: np.ndarray[Any, Any]) -> float:
    """Return the mean luma (ITU-R BT.601 weights, 0 to 255) over every fourth pixel each way."""
    sample = frame[::4, ::4].astype(np.float32)
    luma = sample[..., 0] * 0.299 + sample[..., 1] * 0.587 + sample[..., 2] * 0.114
    return float(luma.mean())
