"""Registration by the form's own print: keypoints of the page matched to each template's blank page.

Forms people bring have no corner marks. Their printed text, lines and logos
are the landmarks instead: ORB keypoints, spread over a grid, of the scan are
matched to those of the template's reference page; an affine fit by RANSAC
scores each template (most inliers wins), and the winner's homography is then
refitted (MAGSAC++) on every keypoint pair the affine fit puts close together.
ORB is rotation invariant, so the same fit says whether the page was scanned
upside down or sideways.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from pipeline.templates.model import Template, reference_image, render_blank

__all__ = ["WORK_LONG_SIDE", "MIN_INLIERS", "FEW_INLIERS", "CANDIDATES", "FeatureMatch", "match_templates", "rotation_of"]

WORK_LONG_SIDE = 1000   # pixels: pages and references are matched at this size (~90 dpi for letter)
PAGE_FEATURES = 1500    # a filled page: handwriting takes many of the strongest corners
REFERENCE_FEATURES = 800
RATIO = 0.8             # Lowe's ratio test
GRID = (10, 8)          # rows, columns: keypoints are kept per cell of this grid
REFINE_RADIUS = 4.0     # work pixels (~3 points)
# A first fit on a form whose print sits in its top half can be points off at its bottom, beyond REFINE_RADIUS:
# the second fit offered pulls from these radii in turn (~9, 6, 3 points).
WIDE_RADII = (12.0, 8.0, 4.0)
MIN_INLIERS = 20        # fewer than this: the page is not that form (unrelated pages reach ~10)
FEW_INLIERS = 10        # a candidate from this many up, when its print confirms it (`register`)
CANDIDATES = 3          # templates refined per page, most inliers first


@dataclasses.dataclass(frozen=True)
class _Reference:
    points: np.ndarray        # float32 [N, 2]: keypoint positions in template points
    descriptors: np.ndarray   # uint8 [N, 32]


@dataclasses.dataclass
class FeatureMatch:
    """How well one template fits a page: template points -> page pixels (of the page as given)."""

    template: Template
    homography: np.ndarray | None   # the first (affine) fit
    inliers: int
    refit: Callable[[tuple[float, ...]], np.ndarray] | None = dataclasses.field(default=None, repr=False)

    def fits(self) -> Iterator[np.ndarray]:
        """Yields the fit refined on keypoint pairs close together, then the one refined from WIDE_RADII (each
        computed only when asked for: most pages take the first)."""
        if self.refit is None:
            if self.homography is not None:
                yield self.homography
            return
        yield self.refit((REFINE_RADIUS,))
        yield self.refit(WIDE_RADII)


def _orb(features: int) -> cv2.ORB:
    # A low FAST threshold: printed lines on a pale scan are faint; edgeThreshold small so marks near the
    # page's border count.
    return cv2.ORB_create(nfeatures=features, scaleFactor=1.2, nlevels=6, edgeThreshold=15,
                          fastThreshold=10, patchSize=31)


def _detect(image: np.ndarray, features: int) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB keypoints spread over the page (positions, descriptors).

    ORB keeps the strongest corners, and those crowd into a bold title or a logo, or into
    the handwriting of a filled page; a fit on them alone tilts far from them. The page is
    cut into a grid and each cell keeps its own strongest few.
    """
    keypoints = _orb(features * 4).detect(image, None)
    if not keypoints:
        return np.zeros((0, 2), np.float32), None
    xy = np.float32([k.pt for k in keypoints])
    response = np.float32([k.response for k in keypoints])
    h, w = image.shape
    cell = (np.minimum(xy[:, 1] * GRID[0] // h, GRID[0] - 1) * GRID[1]
            + np.minimum(xy[:, 0] * GRID[1] // w, GRID[1] - 1)).astype(np.int64)
    order = np.lexsort((-response, cell))
    first = np.searchsorted(cell[order], cell[order], side="left")
    rank = np.arange(len(order)) - first
    quota = max(1, features // len(np.unique(cell)))  # blank cells give their share to the others
    keep = [keypoints[i] for i in order[rank < quota]]
    keep, descriptors = _orb(features).compute(image, keep)
    return np.float32([k.pt for k in keep]).reshape(-1, 2), descriptors


def _work_size(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image scaled so its long side is WORK_LONG_SIDE, and that scale."""
    f = WORK_LONG_SIDE / max(image.shape)
    return cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), f


@functools.lru_cache(maxsize=64)
def _reference(template: Template) -> _Reference:
    """Keypoints of the template's blank page, computed once per worker."""
    if template.reference_png:
        image, px_per_pt = reference_image(template), template.reference_dpi / 72.0
    else:  # a built-in layout: its drawing is its blank page
        image, px_per_pt = render_blank(template, 150, line_grey=110), 150 / 72.0
    small, f = _work_size(image)
    points, descriptors = _detect(small, REFERENCE_FEATURES)
    if descriptors is None:
        return _Reference(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    return _Reference(points / (f * px_per_pt), descriptors)


def _fit(ref: _Reference, page_points: np.ndarray, page_desc: np.ndarray) -> tuple[np.ndarray | None, int]:
    """An affine fit (robust, and steady far from where the matches are) and its inlier count."""
    if len(ref.descriptors) < 2 or len(page_desc) < 2:
        return None, 0
    # The two nearest reference descriptors of each page descriptor, as arrays: what BFMatcher.knnMatch
    # computes, without a Python object per pair.
    distance, nearest = cv2.batchDistance(page_desc, ref.descriptors, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)
    good = np.flatnonzero(distance[:, 0] < RATIO * distance[:, 1])
    if len(good) < 8:
        return None, len(good)
    src = ref.points[nearest[good, 0]]
    dst = page_points[good]
    affine, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0, maxIters=2000,
                                        confidence=0.999, refineIters=10)
    if affine is None:
        return None, 0
    return np.vstack([affine, [0, 0, 1]]), int(mask.sum())


def _pairs_within(a: np.ndarray, b: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of every pair with |a[i] - b[j]| < radius, ordered by i then j.

    Only the pairs within `radius` in x are measured (b sorted by x), not all len(a) * len(b).
    """
    order = np.argsort(b[:, 0], kind="stable")
    xs = b[order, 0]
    lo = np.searchsorted(xs, a[:, 0] - radius, "left")
    count = np.searchsorted(xs, a[:, 0] + radius, "right") - lo
    i = np.repeat(np.arange(len(a)), count)
    j = order[np.repeat(lo, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)]
    d = a[i] - b[j]
    near = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] < radius * radius
    i, j = i[near], j[near]
    by_i_then_j = np.lexsort((j, i))
    return i[by_i_then_j], j[by_i_then_j]


def _refine(homography: np.ndarray, ref: _Reference, page_points: np.ndarray, page_desc: np.ndarray,
            radii: tuple[float, ...]) -> np.ndarray:
    """A full homography fitted on every keypoint pair that the fit so far puts within each radius in turn.

    The ratio test keeps only distinctive pairs, which cluster in the printed text; the repeated
    corners of boxes and combs, spread over the whole form, are what pin down its far corners and
    the scanner's slight perspective.
    """
    for radius in radii:
        projected = cv2.perspectiveTransform(ref.points[None], homography).reshape(-1, 2)
        ri, pi = _pairs_within(projected, page_points, radius)
        if len(ri) < MIN_INLIERS:
            return homography
        alike = np.unpackbits(ref.descriptors[ri] ^ page_desc[pi], axis=1).sum(1) < 64
        refined, mask = cv2.findHomography(ref.points[ri[alike]], page_points[pi[alike]], cv2.USAC_MAGSAC, 2.0,
                                           maxIters=1000, confidence=0.999)
        if refined is None or mask.sum() < MIN_INLIERS:
            return homography
        homography = refined
    return homography


def match_templates(page: np.ndarray, templates: list[Template]) -> list[FeatureMatch]:
    """Returns every template's fit to the page, most inliers first, each to be refined when tried (`fits`).

    The most inliers is not always the right form: two designs can share a title block. `register`
    takes the first of the CANDIDATES whose print the page confirms.
    """
    small, f = _work_size(page)
    points, descriptors = _detect(small, PAGE_FEATURES)
    if descriptors is None:
        return [FeatureMatch(t, None, 0) for t in templates]
    fits = [(t, *_fit(_reference(t), points, descriptors)) for t in templates]
    fits.sort(key=lambda fit: -fit[2])
    to_page = np.diag([1 / f, 1 / f, 1.0])  # work pixels -> page pixels

    def refitter(template, homography):
        return lambda radii: to_page @ _refine(homography, _reference(template), points, descriptors, radii)

    return [FeatureMatch(template, None if homography is None else to_page @ homography, inliers,
                         refitter(template, homography) if homography is not None and inliers >= FEW_INLIERS else None)
            for template, homography, inliers in fits]


def rotation_of(homography: np.ndarray, template: Template) -> int:
    """Returns which way the form lies on the page: degrees the scan is turned clockwise (0, 90, 180, 270)."""
    w, h = template.size_pt
    centre = np.float32([[[w / 2, h / 2]], [[w / 2, h / 2 - 100]]])
    p = cv2.perspectiveTransform(centre, homography).reshape(2, 2)
    up = p[1] - p[0]  # the form's "up" on the page; (0, -1) when upright
    angle = np.degrees(np.arctan2(up[0], -up[1]))
    return int(round(angle / 90.0)) % 4 * 90
