"""Scoring `formdigits template propose` against a form's true template.

A proposed field matches a true one when their boxes overlap by half (IoU);
it is right when the kind agrees and, for a comb, the number of cells.
Renaming matched fields to the true names is the one hand edit the end-to-end
figures allow (a user renames fields in the JSON; they do not move them).
"""

from __future__ import annotations

import dataclasses

from pipeline.templates.model import Template

__all__ = ["iou", "match_fields", "score_proposal", "rename_like"]


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    inter = max(0.0, w) * max(0.0, h)
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


def match_fields(proposed: Template, truth: Template, threshold: float = 0.5) -> dict[str, str]:
    """Proposed field name -> true field name, each used once, best overlaps first."""
    pairs = sorted(((iou(p.box, t.box), p.name, t.name) for p in proposed.fields for t in truth.fields),
                   reverse=True)
    out, used = {}, set()
    for overlap, p, t in pairs:
        if overlap < threshold:
            break
        if p not in out and t not in used:
            out[p] = t
            used.add(t)
    return out


def score_proposal(proposed: Template, truth: Template) -> dict:
    """Digit fields found with the right kind and cells, missed, and proposed where there is none."""
    matched = match_fields(proposed, truth)
    right = 0
    for p_name, t_name in matched.items():
        p, t = proposed.field(p_name), truth.field(t_name)
        right += p.kind == t.kind and (t.kind != "comb" or p.cells == t.cells)
    return {"layout": truth.name, "true_fields": len(truth.fields), "proposed": len(proposed.fields),
            "right": right, "missed": len(truth.fields) - len(matched),
            "false_fields": len(proposed.fields) - len(matched)}


def rename_like(proposed: Template, truth: Template) -> Template:
    """The proposed template with its matched fields renamed as the true template names them."""
    matched = match_fields(proposed, truth)
    fields = tuple(dataclasses.replace(f, name=matched.get(f.name, f.name)) for f in proposed.fields)
    return dataclasses.replace(proposed, name=truth.name, fields=fields,
                               reference=f"{truth.name}.png")
