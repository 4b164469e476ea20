"""Touching digits: where a blob of ink that is two or more digits is cut.

A blob clearly wider than tall is cut at the thinnest columns near where its digits should part
(`split_blobs`); a field short of digits for its template cuts narrower blobs (`split_to`). Each cut
blob is also offered whole (`cut_alternatives`), for the model to judge.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.segmentation.blobs import Blob

__all__ = ["SPLIT_PART_HEIGHT", "split_touching", "pieces", "split_blobs", "split_to", "cut_alternatives"]


# Touching digits each run most of the blob's height; a cut that leaves a piece much shorter went
# through one wide digit instead (a 4's bar, whose open top half stands on its own).
SPLIT_PART_HEIGHT = 0.7


def split_touching(comp: Blob, labels: np.ndarray, digit_w: float, digit_h: float, wider_than: float = 1.3,
                   reach: float = 0.25) -> list[Blob]:
    """Cuts a blob of touching digits at the thinnest columns near the expected cuts.

    `wider_than` is how many times its height a blob must be wide to be cut; a
    field that is short of digits for its template takes a narrower blob. A cut
    is sought within `reach` of a digit's width either side of where it is expected.
    """
    # Only blobs clearly wider than they are tall: two touching digits are 1.3x as wide as tall or
    # more; one wide 0, 2, 3 or 5 is up to about 1.2x (a cut at 1.05x split those: two corpora's
    # length errors 26 -> 12 and 16 -> 8 with 1.3x).
    if comp.w < 1.6 * digit_w or comp.w < wider_than * max(comp.h, 0.8 * digit_h):
        return [comp]
    n = max(2, int(round(comp.w / max(digit_w, 0.6 * comp.h))))
    x, y, w, h = comp.x, comp.y, comp.w, comp.h
    mask = np.isin(labels[y:y + h, x:x + w], comp.ids)
    profile = mask.sum(axis=0).astype(np.float32)
    # A column that meets ink twice, far apart, runs through a loop (a 0's top and bottom): never a cut.
    rows = np.arange(h)[:, None]
    starts = np.count_nonzero(np.diff(mask.astype(np.int8), axis=0, prepend=0) == 1, axis=0)
    spans = np.where(mask, rows, -1).max(axis=0) - np.where(mask, rows, h).min(axis=0)
    loop = (starts >= 2) & (spans > 0.6 * h)
    profile[loop] += h
    cuts = [0]
    for k in range(1, n):
        centre = int(k * w / n)
        lo, hi = max(cuts[-1] + 2, centre - int(reach * w / n)), min(w - 2, centre + int(reach * w / n))
        cuts.append(lo + int(np.argmin(profile[lo:hi])) if hi > lo else centre)
    cuts.append(w)
    if loop[[min(c, w - 1) for c in cuts[1:-1]]].any():
        return [comp]  # nowhere to cut but through a loop: one wide 0, not two digits
    parts = pieces(comp, mask, cuts)
    if any(p.h < SPLIT_PART_HEIGHT * h for p in parts):
        return [comp]
    return parts


def pieces(comp: Blob, mask: np.ndarray, cuts: list[int]) -> list[Blob]:
    """Returns the pieces of `comp` between consecutive `cuts` (columns of its box, 0 and its width included)."""
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        sub = mask[:, a:b]
        ys = np.nonzero(sub.any(axis=1))[0]
        if ys.size == 0 or b - a < 2:
            continue
        parts.append(Blob(comp.ids, comp.x + a, comp.y + int(ys[0]), b - a, int(ys[-1] - ys[0] + 1),
                          int(sub.sum()), comp.x + (a + b) / 2, comp.y + comp.h / 2, cut=(comp.x + a, comp.x + b)))
    return parts


def split_blobs(groups: list[Blob], labels: np.ndarray) -> list[Blob]:
    """Cuts the blobs that are touching digits (see `split_touching`), at the scale of the field's own digits."""
    # A field's own digits set the scale: writers differ in how wide they write.
    digit_h = float(np.median([g.h for g in groups]))
    single = [g.w for g in groups if g.w < 1.1 * digit_h]
    if len(single) * 2 < len(groups) and len(groups) >= 3:
        # Most pieces are wide: a writer who slants hard or writes wide, not a field of touching pairs.
        single = [g.w for g in groups]
    digit_w = max(float(np.median(single or [0.7 * digit_h])), 0.45 * digit_h)
    return [part for g in groups for part in split_touching(g, labels, digit_w, digit_h)]


def split_to(groups: list[Blob], fewest: int, labels: np.ndarray) -> list[Blob]:
    """Cuts the widest blob that will cut, while the field has fewer pieces than it must hold.

    Two narrow digits that touch (a 2 leaning into a 5) make a blob barely wider
    than tall, which `split_blobs` leaves whole; the template's length says it is two.
    """
    groups = list(groups)
    while 0 < len(groups) < fewest:
        digit_h = float(np.median([g.h for g in groups]))
        digit_w = max(float(np.median([g.w for g in groups])) if len(groups) > 2 else 0.0, 0.45 * digit_h)
        for i in sorted(range(len(groups)), key=lambda k: -groups[k].w / groups[k].h):  # the widest that will cut
            parts = split_touching(groups[i], labels, min(digit_w, 0.6 * digit_h), digit_h, wider_than=0.95)
            if len(parts) >= 2:
                groups[i:i + 1] = parts
                break
        else:
            i = _standout(groups)
            parts = [] if i is None else split_touching(groups[i], labels, 0.5 * groups[i].w, digit_h,
                                                        wider_than=0.6, reach=0.6)
            if len(parts) < 2:
                break
            groups[i:i + 1] = parts
    return groups


def _standout(groups: list[Blob]) -> int | None:
    """The blob much wider for its height than the field's others: a narrow 1 touching its neighbour."""
    ratios = [g.w / g.h for g in groups]
    i = int(np.argmax(ratios))
    others = ratios[:i] + ratios[i + 1:]
    return i if others and ratios[i] >= 1.15 * float(np.median(others)) else None


def cut_alternatives(groups: list[Blob]) -> list[tuple[int, int, list[Blob]]]:
    """Returns each run of `groups` (in reading order) that `split_touching` cut from one blob, whole:
    (first, count, [blob]).

    A cut is a guess from shape alone: one wide 2 or 5 looks like two touching digits. (Offering the blobs
    left whole cut as well was measured too: on real-ink dev forms it mended one length in 135 offers.)
    """
    out, i = [], 0
    while i < len(groups):
        j = i
        while j + 1 < len(groups) and _same_cut_blob(groups[j], groups[j + 1]):
            j += 1
        if j > i:
            run = groups[i:j + 1]
            x0, y0 = min(g.x for g in run), min(g.y for g in run)
            x1, y1 = max(g.x + g.w for g in run), max(g.y + g.h for g in run)
            out.append((i, j - i + 1, [dataclasses.replace(run[0], x=x0, y=y0, w=x1 - x0, h=y1 - y0, cut=None)]))
        i = j + 1
    return out


def _same_cut_blob(a: Blob, b: Blob) -> bool:
    """Whether a and b are neighbouring pieces of one blob that `split_touching` cut."""
    return a.cut is not None and b.cut is not None and a.ids == b.ids and a.cut[1] == b.cut[0]
