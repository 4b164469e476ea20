"""Ink blobs: the connected components of a field's ink, and the geometry the segmenter judges them by."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

__all__ = ["Blob", "components", "x_overlap", "one_column", "near", "union"]


@dataclasses.dataclass
class Blob:
    """Ink components taken as one digit (or, before grouping, one component): their labels and box."""

    ids: list[int]              # component labels in the field's label image
    x: int
    y: int
    w: int
    h: int
    area: int
    cx: float                   # centre of mass
    cy: float
    cut: tuple[int, int] | None = None   # a piece of a cut blob: its columns


def components(binary: np.ndarray, min_height: float) -> tuple[np.ndarray, list[Blob]]:
    """Returns the label image of `binary`'s 8-connected ink, and a Blob for each component at least `min_height`
    in w or h."""
    # Grana's algorithm: the same labels and stats as OpenCV's default, 30% sooner on field crops.
    n, labels, stats, centroids = cv2.connectedComponentsWithStatsWithAlgorithm(binary, 8, cv2.CV_32S, cv2.CCL_GRANA)
    comps = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if h < min_height and w < min_height:
            continue
        comps.append(Blob([i], x, y, w, h, area, centroids[i][0], centroids[i][1]))
    return labels, comps


def x_overlap(a: Blob, b: Blob) -> int:
    """Columns boxes a and b share (negative: the gap between them)."""
    return min(a.x + a.w, b.x + b.w) - max(a.x, b.x)


def one_column(a: Blob, b: Blob) -> bool:
    """Returns whether a and b share most of the narrower one's columns: pieces of one digit, one above the other."""
    return x_overlap(a, b) > 0.45 * min(a.w, b.w)


def near(a: Blob, b: Blob, reach: float) -> bool:
    """Returns whether boxes a and b overlap horizontally and lie within `reach` of each other vertically."""
    y_gap = max(a.y - (b.y + b.h), b.y - (a.y + a.h))
    return x_overlap(a, b) > 0 and y_gap <= reach


def union(a: Blob, b: Blob) -> Blob:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    x1, y1 = max(a.x + a.w, b.x + b.w), max(a.y + a.h, b.y + b.h)
    area = a.area + b.area
    return Blob(a.ids + b.ids, x0, y0, x1 - x0, y1 - y0, area,
                (a.cx * a.area + b.cx * b.area) / area, (a.cy * a.area + b.cy * b.area) / area)
