"""Test media for Chromium's fake capture devices, made at test time (no ffmpeg).

Chromium's fake camera plays a YUV4MPEG2 file (``--use-file-for-fake-video-capture=FILE.y4m``), its
fake microphone a WAV file (``--use-file-for-fake-audio-capture=FILE.wav``); both loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 studio-range planes (Y 16-235) of an RGB image with even sides: Y, U, V (4:2:0)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    height, width = y.shape

    def half(plane: np.ndarray) -> np.ndarray:  # 2x2 averages: the chroma planes of 4:2:0
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    def byte(plane: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(plane), 0, 255).astype(np.uint8)

    return byte(y), byte(half(u)), byte(half(v))


def write_y4m(image: Path, out: Path, *, frames: int = 10, fps: int = 10) -> Path:
    """A Y4M video showing ``image`` (padded to even sides with its corner colour) for ``frames`` frames."""
    picture = Image.open(image).convert("RGB")
    width, height = picture.size
    even = Image.new("RGB", (width + width % 2, height + height % 2), picture.getpixel((0, 0)))
    even.paste(picture, (0, 0))
    planes = rgb_to_yuv420(np.asarray(even))
    frame = b"FRAME\n" + b"".join(plane.tobytes() for plane in planes)
    header = f"YUV4MPEG2 W{even.width} H{even.height} F{fps}:1 Ip A1:1 C420\n".encode()
    out.write_bytes(header + frame * frames)
    return out
