"""Digit allographs as pen strokes.

Each digit has several allographs: the different ways people actually write it
(a "1" with or without a flag and base, an open or closed "4", a "7" with or
without a crossbar, a looped or plain "2"...). An allograph is a list of
strokes; a stroke is a list of control points in a unit box (x to the right,
y downwards, both 0..1) that the renderer joins with a Catmull-Rom spline.
Strokes that meet at a sharp corner are written as two strokes sharing the
corner point, so the spline does not round it off.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALLOGRAPHS", "allograph_count", "catmull_rom"]

Stroke = list[tuple[float, float]]


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = -90.0, sweep: float = 380.0,
             n: int = 10) -> Stroke:
    """Control points along an elliptical arc (degrees, clockwise on screen)."""
    angles = np.deg2rad(np.linspace(start, start + sweep, n))
    return [(cx + rx * float(np.cos(a)), cy + ry * float(np.sin(a))) for a in angles]


ALLOGRAPHS: dict[int, list[list[Stroke]]] = {
    0: [
        [[(0.55, 0.02), (0.22, 0.12), (0.06, 0.5), (0.22, 0.9), (0.52, 0.99), (0.82, 0.86), (0.94, 0.48),
          (0.8, 0.1), (0.5, 0.02), (0.4, 0.08)]],
        [_ellipse(0.5, 0.5, 0.4, 0.49, start=-100, sweep=375)],
        [_ellipse(0.5, 0.5, 0.3, 0.49, start=-80, sweep=365)],
    ],
    1: [
        [[(0.5, 0.0), (0.52, 0.5), (0.5, 1.0)]],
        # Flags are short and steep: a long, flat one is how a 7 is written.
        [[(0.3, 0.24), (0.52, 0.0)], [(0.52, 0.0), (0.5, 1.0)]],
        [[(0.32, 0.22), (0.52, 0.0)], [(0.52, 0.0), (0.5, 1.0)], [(0.2, 1.0), (0.82, 1.0)]],
        [[(0.35, 0.12), (0.52, 0.0)], [(0.52, 0.0), (0.47, 1.0)]],
    ],
    2: [
        [[(0.1, 0.25), (0.32, 0.04), (0.62, 0.02), (0.86, 0.2), (0.8, 0.45), (0.5, 0.72), (0.08, 0.98)],
         [(0.08, 0.98), (0.95, 0.96)]],
        [[(0.12, 0.25), (0.32, 0.04), (0.66, 0.03), (0.86, 0.22), (0.74, 0.52), (0.36, 0.84), (0.14, 0.96),
          (0.22, 0.8), (0.44, 0.88), (0.95, 0.98)]],
        [[(0.1, 0.3), (0.4, 0.02), (0.8, 0.1), (0.82, 0.4), (0.1, 0.98)], [(0.1, 0.98), (0.9, 0.92)]],
    ],
    3: [
        [[(0.1, 0.16), (0.42, 0.0), (0.8, 0.08), (0.8, 0.34), (0.42, 0.48)],
         [(0.42, 0.48), (0.86, 0.6), (0.88, 0.86), (0.52, 1.0), (0.08, 0.88)]],
        [[(0.1, 0.03), (0.85, 0.03)], [(0.85, 0.03), (0.38, 0.42)],
         [(0.38, 0.42), (0.8, 0.5), (0.92, 0.76), (0.55, 1.0), (0.1, 0.9)]],
        [[(0.12, 0.2), (0.5, 0.0), (0.85, 0.2), (0.6, 0.45), (0.45, 0.5), (0.65, 0.52), (0.9, 0.75),
          (0.6, 1.0), (0.1, 0.85)]],
    ],
    4: [
        [[(0.62, 0.0), (0.05, 0.66)], [(0.05, 0.66), (0.95, 0.66)], [(0.72, 0.28), (0.7, 1.0)]],
        [[(0.7, 0.0), (0.05, 0.68)], [(0.05, 0.68), (0.95, 0.68)], [(0.7, 0.0), (0.7, 1.0)]],
        [[(0.16, 0.0), (0.1, 0.56)], [(0.1, 0.56), (0.92, 0.56)], [(0.74, 0.04), (0.72, 1.0)]],
    ],
    5: [
        [[(0.22, 0.04), (0.16, 0.46)],
         [(0.16, 0.46), (0.5, 0.38), (0.84, 0.55), (0.84, 0.83), (0.5, 1.0), (0.1, 0.9)],
         [(0.22, 0.04), (0.86, 0.03)]],
        [[(0.24, 0.06), (0.18, 0.44)],
         [(0.18, 0.44), (0.55, 0.4), (0.9, 0.62), (0.75, 0.95), (0.4, 0.98), (0.12, 0.82)],
         [(0.3, 0.02), (0.92, 0.0)]],
        [[(0.88, 0.02), (0.25, 0.04)], [(0.25, 0.04), (0.2, 0.42)],
         [(0.2, 0.42), (0.6, 0.42), (0.85, 0.7), (0.55, 0.98), (0.12, 0.9)]],
    ],
    6: [
        [[(0.8, 0.03), (0.45, 0.2), (0.15, 0.6), (0.2, 0.9), (0.5, 1.0), (0.82, 0.84), (0.78, 0.6),
          (0.5, 0.5), (0.2, 0.66)]],
        [[(0.66, 0.0), (0.32, 0.38), (0.15, 0.76), (0.4, 1.0), (0.76, 0.86), (0.72, 0.6), (0.36, 0.6),
          (0.18, 0.76)]],
        [[(0.75, 0.05), (0.35, 0.25), (0.12, 0.65), (0.35, 0.98), (0.7, 0.92), (0.85, 0.7), (0.6, 0.45),
          (0.3, 0.5), (0.14, 0.7)]],
    ],
    7: [
        [[(0.05, 0.05), (0.95, 0.05)], [(0.95, 0.05), (0.4, 1.0)]],
        [[(0.05, 0.05), (0.95, 0.05)], [(0.95, 0.05), (0.4, 1.0)], [(0.3, 0.55), (0.86, 0.5)]],
        [[(0.05, 0.2), (0.12, 0.04), (0.95, 0.05)], [(0.95, 0.05), (0.68, 0.45), (0.5, 1.0)]],
        [[(0.08, 0.02), (0.92, 0.06)], [(0.92, 0.06), (0.6, 0.5), (0.58, 1.0)]],
    ],
    8: [
        [[(0.8, 0.12), (0.5, 0.0), (0.2, 0.12), (0.25, 0.35), (0.5, 0.5), (0.8, 0.68), (0.78, 0.92),
          (0.5, 1.0), (0.2, 0.92), (0.2, 0.68), (0.5, 0.5), (0.75, 0.32), (0.8, 0.12)]],
        [_ellipse(0.5, 0.24, 0.24, 0.24, start=90, sweep=370, n=9),
         _ellipse(0.5, 0.74, 0.32, 0.26, start=-90, sweep=370, n=9)],
        [[(0.75, 0.1), (0.45, 0.0), (0.2, 0.15), (0.4, 0.42), (0.82, 0.7), (0.6, 0.98), (0.2, 0.9),
          (0.25, 0.62), (0.6, 0.4), (0.8, 0.2), (0.7, 0.05)]],
    ],
    9: [
        [[(0.86, 0.2), (0.55, 0.02), (0.2, 0.12), (0.15, 0.36), (0.45, 0.5), (0.86, 0.34), (0.86, 0.16)],
         [(0.86, 0.16), (0.8, 1.0)]],
        [[(0.86, 0.2), (0.55, 0.02), (0.2, 0.12), (0.15, 0.36), (0.45, 0.5), (0.86, 0.34), (0.86, 0.16)],
         [(0.86, 0.16), (0.82, 0.6), (0.62, 0.95), (0.3, 0.98)]],
        [[(0.84, 0.22), (0.5, 0.02), (0.18, 0.2), (0.3, 0.45), (0.7, 0.42), (0.86, 0.2)],
         [(0.86, 0.2), (0.55, 1.0)]],
    ],
}


def allograph_count(digit: int) -> int:
    return len(ALLOGRAPHS[digit])


def catmull_rom(points: np.ndarray, samples_per_segment: int = 8) -> np.ndarray:
    """Samples a centripetal-free (uniform) Catmull-Rom spline through `points`.

    Args:
        points: [K, 2] control points, K >= 2.
        samples_per_segment: points generated between two control points.

    Returns:
        [M, 2] float array of points along the curve, ends included.
    """
    pts = np.asarray(points, np.float64)
    if len(pts) == 2:
        t = np.linspace(0.0, 1.0, samples_per_segment + 1)[:, None]
        return pts[0] * (1 - t) + pts[1] * t
    padded = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)
    t2, t3 = t * t, t * t * t
    # Uniform Catmull-Rom basis, all segments at once.
    p0, p1, p2, p3 = padded[:-3], padded[1:-2], padded[2:-1], padded[3:]
    b0 = (-t3 + 2 * t2 - t) / 2
    b1 = (3 * t3 - 5 * t2 + 2) / 2
    b2 = (-3 * t3 + 4 * t2 + t) / 2
    b3 = (t3 - t2) / 2
    curve = (p0[:, None] * b0[None, :, None] + p1[:, None] * b1[None, :, None]
             + p2[:, None] * b2[None, :, None] + p3[:, None] * b3[None, :, None])
    return np.vstack([curve.reshape(-1, 2), pts[-1:]])
