"""The own-forms part of `formdigits bench`: templates proposed from blanks, registration by print.

Three figures, each on forms without corner marks:
    proposal       fields `template propose` finds with the right kind and cells, and false fields, on
                   the blank forms of the named layouts, three built-in layouts drawn without their
                   marks, and generated layouts of seeds never looked at while writing the proposer
    registration   filled scans (rotation to 5 degrees, scale 5%, 150-300 dpi, one in ten upside down,
                   stamps, scribbles) registered to the right template, field-box error in cells,
                   milliseconds per page on 200 dpi pages
    end to end     the pipeline over the same scans with the true templates and with proposed ones
                   (renamed only): field exact match of each; then the same layouts filled afresh (synthetic
                   ink, seed 900103) and, given MNIST, in real ink (MNIST test glyphs, seeds 900102 and
                   900104), read with proposed templates: each ink's figures are the worse of its two seeds.
                   Each broken down by cell size, with the share of written fields flagged
    scan kinds     the first real-ink seed's scans made bitonal, and the same fills printed in dropout colours
                   and scanned in colour (templates proposed from the colour blanks), each beside grey
    tight forms    eight tight generated forms of designs never looked at, in real ink, proposed templates
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time

import numpy as np

from bench.corpora import make_corpus
from bench.pipeline import run_pipeline
from corpus import builtin_templates
from corpus.evaluate import evaluate, load_results, load_truth
from corpus.forms import Ink
from corpus.layouts import NAMED_LAYOUTS, named_layout, truth_template, write_blank_pdf
from corpus.proposals import rename_like, score_proposal
from corpus.scanner import bitonal_copies
from pipeline.reading.read import read_pages
from pipeline.registration.register import register_scan
from pipeline.segmentation.segment import box_as_scanned
from pipeline.templates.model import load_templates, render_blank, save_templates
from pipeline.templates.propose import propose_template, read_blank
from pipeline.types import SegmentError

__all__ = ["OWN_FORMS_SEED", "HELD_OUT_LAYOUT_SEEDS", "TIGHT_LAYOUT_SEEDS", "bench_own_forms"]

OWN_FORMS_SEED = 900101                 # the filled scans; never used while developing
REAL_INK_SEED = 900102                  # the same layouts in MNIST test ink; never used while developing
# Reading figures are the worse of two fresh seeds per ink (the first of each is the scans above).
SYNTHETIC_INK_SEEDS = (OWN_FORMS_SEED, 900103)
REAL_INK_SEEDS = (REAL_INK_SEED, 900104)
CELL_BANDS = ((16.0, "cells <= 16 pt"), (22.0, "cells 16-22 pt"), (float("inf"), "cells > 22 pt"))
HELD_OUT_LAYOUT_SEEDS = range(7000, 7030)  # generated forms; never looked at while writing the proposer
# Tight generated forms (corpus.tight_layouts): the proposer was developed on seeds 9000-9069; these are held out.
TIGHT_LAYOUT_SEEDS = range(9200, 9250)
TIGHT_SCAN_SEEDS = range(9250, 9258)     # tight forms filled and scanned for the end-to-end run; never looked at
SCAN_LAYOUTS = tuple(NAMED_LAYOUTS) + ("random:7001", "random:7002", "random:7003")


def _blank_pdf(template, path: str) -> None:
    if template.has_marks:  # a built-in form, drawn without its corner marks
        from PIL import Image

        Image.fromarray(render_blank(dataclasses.replace(template, has_marks=False), 200, 140)).save(
            path, format="PDF", resolution=200.0)
    else:
        write_blank_pdf(named_layout(template.name), path)


def _proposal_part(layout_seeds, log, tight_seeds=()) -> dict:
    truths = [truth_template(named_layout(n)) for n in NAMED_LAYOUTS]
    truths += [t for t in builtin_templates() if t.name != "digit_lines"]  # digit_lines prints no guides
    truths += [truth_template(named_layout(f"form_{s}")) for s in layout_seeds]
    result = _proposal_scores(truths, "", log)
    if tight_seeds:
        tight = _proposal_scores([truth_template(named_layout(f"tight_{s}")) for s in tight_seeds], "tight ", log)
        result.update({f"tight_{k}": v for k, v in tight.items()})
    return result


def _proposal_scores(truths, what: str, log) -> dict:
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for truth in truths:
            pdf = os.path.join(tmp, "blank.pdf")
            _blank_pdf(truth, pdf)
            scores.append(score_proposal(propose_template(read_blank(pdf), truth.name), truth))
    fields = sum(s["true_fields"] for s in scores)
    right = sum(s["right"] for s in scores)
    worst_false = max(s["false_fields"] for s in scores)
    log(f"  {what}proposal: {right}/{fields} fields right on {len(scores)} blank forms, at most {worst_false} false "
        f"field(s) on a page")
    return {"forms": len(scores), "fields": fields, "right_share": round(right / fields, 4),
            "max_false_fields_per_page": worst_false,
            "false_fields": sum(s["false_fields"] for s in scores),
            "imperfect": [s for s in scores if s["right"] < s["true_fields"] or s["false_fields"]]}


def _registration_part(corpus: str, templates: list, log) -> dict:
    truth = {}
    with open(os.path.join(corpus, "truth.jsonl")) as fh:
        for row in map(json.loads, fh):
            truth.setdefault((row["source"], row["page"]), []).append(row)
    right, errors, ms_200, ms_all, pages = 0, [], [], [], 0
    for name in sorted(os.listdir(corpus)):
        if not name.startswith("scan_"):
            continue
        with open(os.path.join(corpus, name), "rb") as fh:
            for page in read_pages(name, fh.read()):
                rows = truth[(name, page.page)]
                pages += 1
                started = time.perf_counter()
                try:
                    upright, reg = register_scan(page.image, templates)
                except SegmentError:
                    continue
                took = (time.perf_counter() - started) * 1000
                (ms_200 if rows[0]["dpi"] == 200 else ms_all).append(took)
                if reg.template.name != rows[0]["template"] or reg.upside_down != rows[0]["upside_down"]:
                    continue
                right += 1
                errors += _box_errors(reg, upright.shape, rows)
    ms_all += ms_200
    log(f"  registration: {right}/{pages} pages right; field error {np.mean(errors):.3f} cells; "
        f"{np.median(ms_200):.1f} ms median per 200 dpi page ({len(templates)} templates)")
    return {"pages": pages, "right_share": round(right / pages, 4), "mean_box_error_cells": round(float(np.mean(errors)), 4),
            "max_box_error_cells": round(float(np.max(errors)), 3), "templates": len(templates),
            "ms_per_page_200dpi_median": round(float(np.median(ms_200)), 1),
            "ms_per_page_200dpi_p95": round(float(np.percentile(ms_200, 95)), 1),
            "ms_per_page_all_median": round(float(np.median(ms_all)), 1)}


def _box_errors(reg, shape, rows) -> list[float]:
    """Distance between each field's registered centre and its true one, in the field's cells (or heights)."""
    out = []
    for row in rows:
        field = reg.template.field(row["field"])
        x, y, w, h = box_as_scanned(field.box, reg.homography, shape, reg.rotation)
        tx, ty, tw, th = row["box"]
        cell_pt = field.box[2] / field.cells if field.kind == "comb" else field.box[3]
        out.append(float(np.hypot(x + w / 2 - tx - tw / 2, y + h / 2 - ty - th / 2) / (cell_pt * row["dpi"] / 72)))
    return out


def cell_band(field) -> str:
    """A field's size class: a comb's cell (width, or height when less), else the box's height, in points."""
    x, y, w, h = field.box
    size = min(w / field.cells, h) if field.kind == "comb" and field.cells else h
    return next(label for limit, label in CELL_BANDS if size <= limit)


def _end_to_end(corpus: str, templates_dir: str, output: str, target: str, pages: int, log) -> dict:
    """The pipeline over a corpus with the given templates; scored, by cell size too."""
    run_pipeline(os.path.join(corpus, "scan_*"), templates_dir, output, target, os.cpu_count() or 1, pages, log)
    truths = load_templates(os.path.join(corpus, "templates"))
    band = {(t.name, f.name): cell_band(f) for t in truths.values() for f in t.fields}
    report = evaluate(load_results(output), load_truth(os.path.join(corpus, "truth.jsonl")),
                      group_by=lambda row: band.get((row["template"], row["field"]), "?"))
    keys = ("field_exact_match", "digit_accuracy", "rejects", "unflagged_field_accuracy", "errors_flagged_share",
            "written_fields_flagged", "per_group")
    return {k: report[k] for k in keys}


def worst_of(readings: list[dict]) -> dict:
    """The worse of each figure over several `_end_to_end` readings (seeds), by cell size too: the lowest share
    right or flagged when wrong, the highest share of written fields flagged and the most rejects; `fields`, a
    count, is summed."""
    highest = {"written_fields_flagged", "rejects"}
    keys = {k for r in readings for k, v in r.items() if isinstance(v, (int, float))}
    worst = {k: (sum if k == "fields" else max if k in highest else min)(r[k] for r in readings
                                                                       if r.get(k) is not None) for k in keys}
    groups = {g for r in readings for g in r.get("per_group", {})}
    worst["per_group"] = {g: worst_of([r["per_group"][g] for r in readings if g in r.get("per_group", {})])
                          for g in sorted(groups)}
    if not worst["per_group"]:
        del worst["per_group"]
    return worst


def _reading_of_seeds(seeds, ink: Ink | None, pages: int, work_dir: str, target: str, log, read=None) -> dict:
    """Mark-less forms filled in `ink` (None: synthetic writers) for each seed, read with templates proposed from
    their blanks: the worse of each figure (`worst_of`), and each seed's reading under `by_seed`. `read` holds
    the readings of seeds already read."""
    by_seed = dict(read or {})
    for seed in (s for s in seeds if s not in by_seed):
        tag = f"{'real' if ink else 'synthetic'}-{seed}"
        corpus = make_corpus(os.path.join(work_dir, f"own-forms-{tag}-{pages}"), pages, seed, layouts=SCAN_LAYOUTS,
                             ink=ink)
        by_seed[seed] = _end_to_end(corpus, _proposed_for(corpus, os.path.join(corpus, "proposed")),
                                    os.path.join(work_dir, f"own-forms-out-{tag}"), target, pages, log)
        _log_reading(f"{'real' if ink else 'synthetic'} ink, seed {seed}", by_seed[seed], log)
    return {**worst_of(list(by_seed.values())), "seeds": list(seeds), "by_seed": by_seed}


def _bitonal_part(real: str, templates_dir: str, grey_output: str, work_dir: str, target: str, log) -> dict:
    """The real-ink corpus's single-page scans made bitonal (1-bit Group 4), read with the same templates;
    field exact beside the grey reading of the same pages."""
    truth = load_truth(os.path.join(real, "truth.jsonl"))
    folder = os.path.join(work_dir, "own-forms-bitonal")
    rows = bitonal_copies(real, folder, truth)
    output = os.path.join(work_dir, "own-forms-out-bitonal")
    run_pipeline(os.path.join(folder, "scan_*"), templates_dir, output, target, os.cpu_count() or 1,
                 len({r["source"] for r in rows}), log)
    sources = {r["source"].rsplit(".", 1)[0] for r in rows}
    same_pages = [r for r in truth if r["source"].rsplit(".", 1)[0] in sources]
    bw = evaluate(load_results(output), rows)["field_exact_match"]
    grey = evaluate(load_results(grey_output), same_pages)["field_exact_match"]
    log(f"  bitonal: fields {bw:.2%} on {len(sources)} pages, grey {grey:.2%} on the same pages")
    return {"pages": len(sources), "bitonal_field_exact": bw, "grey_field_exact": grey,
            "bitonal_vs_grey_points": round(100 * (bw - grey), 2)}


def _log_reading(what: str, result: dict, log) -> None:
    bands = ", ".join(f"{name} {g['field_exact_match']:.2%}" for name, g in result["per_group"].items())
    log(f"  {what}: fields {result['field_exact_match']:.2%}, digits {result['digit_accuracy']:.2%}; {bands}; "
        f"written fields flagged {result['written_fields_flagged']:.1%}")


def _tight_part(pages: int, ink: Ink, work_dir: str, target: str, log) -> dict:
    """Tight forms of designs never looked at (`TIGHT_SCAN_SEEDS`), filled in MNIST test ink, read with templates
    proposed from their blanks: forms of other designs than the seven the pipeline was developed against."""
    corpus = make_corpus(os.path.join(work_dir, f"own-forms-tight-{REAL_INK_SEED}-{pages}"), pages, REAL_INK_SEED,
                         layouts=tuple(f"tight:{s}" for s in TIGHT_SCAN_SEEDS), ink=ink)
    result = _end_to_end(corpus, _proposed_for(corpus, os.path.join(corpus, "proposed")),
                         os.path.join(work_dir, "own-forms-out-tight"), target, pages, log)
    _log_reading("tight forms of new designs, real ink", result, log)
    return {"pages": pages, "layouts": len(TIGHT_SCAN_SEEDS), **result}


def _colour_part(pages: int, ink: Ink, grey_output: str, work_dir: str, target: str, log) -> dict:
    """The real-ink corpus again, the same fills on the same forms, now printed in their dropout colours and
    scanned in colour; read with templates proposed from the colour blanks. Field exact beside the grey run."""
    colour = make_corpus(os.path.join(work_dir, f"own-forms-colour-{REAL_INK_SEED}-{pages}"), pages, REAL_INK_SEED,
                         layouts=SCAN_LAYOUTS, scans=("colour",), ink=ink)
    result = _end_to_end(colour, _proposed_for(colour, os.path.join(colour, "proposed")),
                         os.path.join(work_dir, "own-forms-out-colour"), target, pages, log)
    grey = evaluate(load_results(grey_output), load_truth(os.path.join(colour, "truth.jsonl")))["field_exact_match"]
    log(f"  colour dropout: fields {result['field_exact_match']:.2%} (grey {grey:.2%} on the same fills), "
        f"{result['rejects']} rejects")
    return {"pages": pages, "colour_field_exact": result["field_exact_match"], "grey_field_exact": grey,
            "colour_vs_grey_points": round(100 * (result["field_exact_match"] - grey), 2),
            "rejects": result["rejects"], "per_group": result["per_group"]}


def _proposed_for(corpus: str, directory: str) -> str:
    truths = load_templates(os.path.join(corpus, "templates"))
    proposed = [rename_like(propose_template(read_blank(os.path.join(corpus, "blanks", f"{n}.pdf")), n), t)
                for n, t in truths.items()]
    save_templates(proposed, directory)
    return directory


def bench_own_forms(work_dir: str, target: str, quick: bool, log=print, mnist_path: str | None = None) -> dict:
    """Proposal, registration and end-to-end figures for forms without corner marks (see the module)."""
    pages = 24 if quick else 200
    seeds = list(HELD_OUT_LAYOUT_SEEDS)[:4 if quick else None]
    tight = list(TIGHT_LAYOUT_SEEDS)[:6 if quick else None]
    results = {"proposal": _proposal_part(seeds, log, tight)}
    corpus = make_corpus(os.path.join(work_dir, f"own-forms-{OWN_FORMS_SEED}-{pages}"), pages, OWN_FORMS_SEED,
                         layouts=SCAN_LAYOUTS)
    proposed_dir = _proposed_for(corpus, os.path.join(work_dir, f"own-forms-proposed-{pages}"))
    results["registration"] = _registration_part(corpus, list(load_templates(proposed_dir).values()), log)
    runs = {"true_templates": os.path.join(corpus, "templates"), "proposed_templates": proposed_dir}
    exact = {}
    for label, templates_dir in runs.items():
        exact[label] = _end_to_end(corpus, templates_dir, os.path.join(work_dir, f"own-forms-out-{label}"), target,
                                   pages, log)
        _log_reading(label.replace("_", " "), exact[label], log)
    exact["synthetic_ink_proposed_templates"] = _reading_of_seeds(
        SYNTHETIC_INK_SEEDS, None, pages, work_dir, target, log, read={OWN_FORMS_SEED: exact["proposed_templates"]})
    ink = Ink(kind="mnist", mnist_path=mnist_path, mnist_split="test") if mnist_path else None
    if ink:
        exact["real_ink_proposed_templates"] = _reading_of_seeds(REAL_INK_SEEDS, ink, pages, work_dir, target, log)
        _log_reading("real ink, worse of the two seeds", exact["real_ink_proposed_templates"], log)
    results["end_to_end"] = exact
    if ink:
        real = os.path.join(work_dir, f"own-forms-real-{REAL_INK_SEED}-{pages}")
        grey_output = os.path.join(work_dir, f"own-forms-out-real-{REAL_INK_SEED}")
        results["bitonal"] = _bitonal_part(real, os.path.join(real, "proposed"), grey_output, work_dir, target, log)
        results["colour"] = _colour_part(pages, ink, grey_output, work_dir, target, log)
        results["tight"] = _tight_part(pages // 2, ink, work_dir, target, log)
    results["proposed_vs_true_field_exact_points"] = round(
        100 * (exact["proposed_templates"]["field_exact_match"] - exact["true_templates"]["field_exact_match"]), 2)
    results["pages"] = pages
    json.dumps(results)  # plain data only
    return results
