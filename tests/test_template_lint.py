"""Template files are checked before any page is read with them: one line a problem, naming file and field."""

import json
import shutil

import pytest
from apache_beam.io.filesystem import FileMetadata, MatchResult
from apache_beam.io.localfilesystem import LocalFileSystem

from corpus import TEMPLATES_DIR
from pipeline.templates.lint import MAX_FIELDS, lint_path, lint_template
from support.beam import one_line


def _invoice() -> dict:
    with open(f"{TEMPLATES_DIR}/invoice.json") as fh:
        return json.load(fh)


def _with_field(**changes) -> dict:
    d = _invoice()
    d["fields"][0] = {**d["fields"][0], **changes}
    return d


def test_the_built_in_templates_have_no_problems():
    assert lint_path(TEMPLATES_DIR) == []


@pytest.mark.parametrize("change, expected", [
    (dict(box=[700, 100, 120, 20]), "lies off the 612 x 792 point page"),
    (dict(box=[100, 100, -50, 20]), "a field is at least 6 x 6"),
    (dict(box=[100, 100, 1, 1]), "1 x 1 points"),
    (dict(kind="circle"), "kind 'circle': one of comb, boxed, underline, free"),
    (dict(colour="red"), "unknown key 'colour'"),
    (dict(min_length=5, max_length=3), "length 5..3"),
    (dict(name="total amount"), "not a plain identifier"),
    (dict(pattern="(\\d"), "is not a regular expression"),
    (dict(check="mod97"), "check 'mod97': one of luhn"),
])
def test_each_field_problem_is_one_line_naming_the_field(change, expected):
    d = _with_field(**change)
    problems = lint_template(d)
    assert len(problems) == 1 and expected in problems[0], problems
    assert problems[0].startswith(f"field {d['fields'][0]['name']!r}: ")


def test_duplicate_names_overlaps_and_size_limits():
    d = _invoice()
    d["fields"].append(dict(d["fields"][0]))
    problems = lint_template(d)
    assert any("the name is used twice" in p for p in problems)
    assert any("overlap (100% of the smaller one)" in p for p in problems)
    d = _invoice()
    d["fields"] = [dict(d["fields"][0], name=f"f{i}") for i in range(5000)]
    assert lint_template(d) == [f"fields: 5000, more than {MAX_FIELDS}"]
    comb = _invoice()
    comb["fields"][0] = dict(comb["fields"][0], kind="comb", cells=3, min_length=4, max_length=4)
    assert any("a comb of 3 cells cannot hold 4 digits" in p for p in lint_template(comb))


def test_a_reference_page_must_be_a_readable_image_beside_the_template(tmp_path):
    d = _invoice()
    d.update(registration_marks=[], reference="../../etc/passwd")
    assert any("a file name beside the template, not a path" in p for p in lint_template(d, str(tmp_path)))
    d["reference"] = "blank.png"
    assert any("no such file beside the template" in p for p in lint_template(d, str(tmp_path)))
    (tmp_path / "blank.png").write_bytes(b"not a png")
    assert any("not a readable image" in p for p in lint_template(d, str(tmp_path)))
    d.pop("reference")
    assert any("needs a reference blank page" in p for p in lint_template(d, str(tmp_path)))


@pytest.mark.slow
def test_run_check_and_lint_refuse_a_broken_template_with_one_line_each(scans, tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(scans / "templates", templates)
    d = json.loads((templates / "invoice.json").read_text())
    d["fields"][0]["box"] = [700, 100, 120, 20]
    d["fields"][1]["name"] = d["fields"][2]["name"]
    (templates / "invoice.json").write_text(json.dumps(d))
    rc, lines = one_line(["run", "--input", str(scans / "scan_*"), "--templates", str(templates),
                          "--output", str(tmp_path / "out")])
    assert rc == 2 and len(lines) == 3, lines
    assert "invoice.json: field" in lines[0] and "lies off" in lines[0] and "used twice" in lines[1]
    assert "2 template problems" in lines[2] and not (tmp_path / "out").exists()
    rc, lines = one_line(["template", "check", str(templates / "invoice.json"), str(scans / "scan_00001.png")])
    assert rc == 2 and len(lines) == 2
    rc, lines = one_line(["template", "lint", str(templates)])
    assert rc == 1 and lines == ["formdigits template lint: 2 problems"]


class _BucketFileSystem(LocalFileSystem):
    """A stand-in for gs:// (no bucket can be reached here): `fdbucket://PATH` is the local PATH."""

    @classmethod
    def scheme(cls):
        return "fdbucket"

    def match(self, patterns, limits=None):
        results = super().match([p[len("fdbucket://"):] for p in patterns], limits)
        return [MatchResult("fdbucket://" + r.pattern, [FileMetadata("fdbucket://" + m.path, m.size_in_bytes,
                                                                     m.last_updated_in_seconds)
                                                        for m in r.metadata_list]) for r in results]

    def open(self, path, *args, **kwargs):
        return super().open(path[len("fdbucket://"):], *args, **kwargs)


def test_templates_in_a_bucket_are_linted_through_beams_file_systems(tmp_path):
    shutil.copytree(TEMPLATES_DIR, tmp_path / "t")
    assert lint_path(f"fdbucket://{tmp_path}/t") == []
    invoice = json.loads((tmp_path / "t" / "invoice.json").read_text())
    invoice["fields"][0]["box"] = [0, 0, 1, 1]
    invoice["reference"] = "missing.png"
    (tmp_path / "t" / "invoice.json").write_text(json.dumps(invoice))
    problems = lint_path(f"fdbucket://{tmp_path}/t")
    assert any(p.startswith(f"fdbucket://{tmp_path}/t/invoice.json: field ") for p in problems), problems
    assert lint_path("fdbucket:///no/such/folder") == ["fdbucket:///no/such/folder: no template .json files"]
