"""Data augmentation on single images ``(H, W, C)`` (NumPy), from NumPy's global generator."""

from __future__ import annotations

import numpy as np

from .. import random as _random


class Transform:
    """A callable that maps one image to another."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class RandomFlipHorizontal(Transform):
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return img[:, ::-1, :] if _random.rand() < self.p else img


class RandomCrop(Transform):
    """Shift the image by up to ``padding`` pixels each way, filling with zeros."""

    def __init__(self, padding: int = 3) -> None:
        self.padding = padding

    def __call__(self, img: np.ndarray) -> np.ndarray:
        p = self.padding
        dx, dy = _random.randint(low=-p, high=p + 1, size=2)
        h, w = img.shape[:2]
        padded = np.pad(img, ((p, p), (p, p), (0, 0)))
        return padded[p + dx : p + dx + h, p + dy : p + dy + w, :]
