"""The review queue and the corrections table, over a results directory (`DIR/results.duckdb`).

The queue is every flagged field (`needs_review`) that no one has reviewed
yet, lowest confidence first (a field with no digit read, which has no
confidence, after all the others),
narrowed by template, field and reason. It is walked by a cursor, the sort key
of the item last shown, so skipping costs nothing and two reviewers never
need to agree on page numbers.

Reads take a read-only connection between two commits of a running job;
each review action is one transaction under the store's write lock, so a
pipeline writing into the same directory and a reviewer never clash. A
correction is a row in `corrections`, never an edit of `fields`: a re-run
rewrites `fields`, the person's word stays, and the view `fields_reviewed`
joins the two.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import os

from pipeline.output.store import DB_NAME, locked_reader, locked_writer
from pipeline.templates.model import Field, check_value

__all__ = ["ACTIONS", "REASONS", "QUEUE_ORDER", "Filters", "ReviewError", "NeedsConfirmation", "Saved",
           "check_database", "next_item", "next_and_remaining", "get_item", "remaining", "options", "record",
           "rule_problems", "rule_text"]

ACTIONS = ("accept", "correct", "unreadable")
MAX_DIGITS = 64  # the longest correction of a field without a rule (the longest built-in field holds 12)
# Reason filters: a label a person picks, and what `review_reason` says for it (pipeline.assembly.assemble).
REASONS = {
    "low confidence": "%low confidence%",
    "unreadable digit": "%unreadable%",
    "struck-through": "%struck-through%",
    "corrected to fit rule": "%corrected to fit%",
    "length": "%length %",
    "pattern": "%pattern mismatch%",
    "check digit": "%check digit failed%",
    "empty": "%empty%",
}
QUEUE_ORDER = "coalesce(f.confidence, 2.0), f.source_uri, f.page, f.field"  # over `f`: fields or fields_reviewed
_REVIEWED = """EXISTS (
    SELECT 1 FROM corrections c WHERE c.source_uri = f.source_uri AND c.page = f.page AND c.field = f.field)"""
_PENDING = f"f.needs_review AND NOT {_REVIEWED}"
STATUSES = {"pending": _PENDING, "reviewed": _REVIEWED}  # what the queue walks: to review, or to reopen


class ReviewError(ValueError):
    """A request the queue cannot carry out; the message says why."""


class NeedsConfirmation(ReviewError):
    """A correction that breaks its field's rule: saved only when the person confirms it."""

    def __init__(self, problems: list[str]):
        super().__init__("breaks the field's rule: " + "; ".join(problems))
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class Filters:
    template: str | None = None
    field: str | None = None
    reason: str | None = None   # a key of REASONS
    status: str = "pending"     # a key of STATUSES: reviewed fields can be found and reopened
    source: str | None = None   # part of the file's name or path

    @classmethod
    def from_mapping(cls, values) -> "Filters":
        """Builds the filters from a request's query arguments or JSON body; empty values mean no filter."""
        return cls(values.get("template") or None, values.get("field") or None, values.get("reason") or None,
                   values.get("status") or "pending", values.get("source") or None)

    def where(self) -> tuple[str, list]:
        """Returns SQL conditions on `fields f` (after the queue's own: pending or reviewed) and their parameters."""
        if self.status not in STATUSES:
            raise ReviewError(f"unknown status {self.status!r}; one of: {', '.join(STATUSES)}")
        sql, params = [], []
        if self.template:
            sql.append("f.template = ?")
            params.append(self.template)
        if self.field:
            sql.append("f.field = ?")
            params.append(self.field)
        if self.source:
            sql.append("contains(f.source_uri, ?)")  # a bound value: a name with % or _ is matched as typed
            params.append(self.source)
        if self.reason:
            if self.reason not in REASONS:
                raise ReviewError(f"unknown reason {self.reason!r}; one of: {', '.join(REASONS)}")
            sql.append("f.review_reason ILIKE ?")
            params.append(REASONS[self.reason])
        return "".join(f" AND {s}" for s in sql), params


def check_database(db_dir: str) -> None:
    """Fails with a clear message when DIR holds no results; adds the review tables to an older database."""
    if not os.path.isfile(os.path.join(db_dir, DB_NAME)):
        raise ReviewError(f"no results database at {os.path.join(db_dir, DB_NAME)}; "
                          f"run formdigits run --output {db_dir} first")
    with locked_writer(db_dir):
        pass  # ensure_tables: corrections and fields_reviewed exist from here on


def next_item(db_dir: str, filters: Filters = Filters(), after: list | None = None) -> dict | None:
    """Returns the first pending item after cursor `after` (an item's "cursor"), or from the start; None at the end."""
    with locked_reader(db_dir) as con:
        return _next(con, filters, after)


def next_and_remaining(db_dir: str, filters: Filters = Filters(), after: list | None = None) -> tuple[dict | None, int]:
    """Returns `next_item` and `remaining` over one connection: what the page asks for after a skip."""
    with locked_reader(db_dir) as con:
        return _next(con, filters, after), _remaining(con, filters)


def get_item(db_dir: str, key: list) -> dict | None:
    """Returns one field by key (source_uri, page, field), pending or not: what going back shows."""
    with locked_reader(db_dir) as con:
        return _item(con, tuple(key))


def remaining(db_dir: str, filters: Filters = Filters()) -> int:
    with locked_reader(db_dir) as con:
        return _remaining(con, filters)


def _next(con, filters: Filters, after: list | None) -> dict | None:
    where, params = filters.where()
    if after is not None:
        where += f" AND ({QUEUE_ORDER}) > (?, ?, ?, ?)"
        params += list(after)
    key = con.execute(f"SELECT f.source_uri, f.page, f.field FROM fields f WHERE {STATUSES[filters.status]}{where} "
                      f"ORDER BY {QUEUE_ORDER} LIMIT 1", params).fetchone()
    return _item(con, key) if key else None


def _remaining(con, filters: Filters) -> int:
    where, params = filters.where()
    return con.execute(f"SELECT count(*) FROM fields f WHERE {STATUSES[filters.status]}{where}",
                       params).fetchone()[0]


def _item(con, key: tuple) -> dict | None:
    """Everything a reviewer sees of one field: reading, digits, picture, rule, and any earlier review."""
    row = con.execute("""
        SELECT source_uri, page, field, template, value, confidence, digit_count, needs_review, review_reason
        FROM fields WHERE source_uri = ? AND page = ? AND field = ?""", list(key)).fetchone()
    if row is None:
        return None
    names = ("source_uri", "page", "field", "template", "value", "confidence", "digit_count", "needs_review",
             "review_reason")
    item = dict(zip(names, row))
    item["key"] = list(key)
    item["cursor"] = [2.0 if item["confidence"] is None else item["confidence"], *key]
    item["digits"] = [dict(zip(("position", "digit", "confidence", "second_digit", "second_confidence"), d))
                      for d in con.execute("""
        SELECT position, digit, confidence, second_digit, second_confidence FROM digits
        WHERE source_uri = ? AND page = ? AND field = ? ORDER BY position""", list(key)).fetchall()]
    crop = con.execute("""SELECT image, image_uri, width, height, digit_boxes, field_rule FROM crops
                          WHERE source_uri = ? AND page = ? AND field = ?""", list(key)).fetchone()
    item["crop"], item["rule"] = _crop(crop), json.loads(crop[5]) if crop and crop[5] else None
    item["rule_text"] = rule_text(item["rule"])
    last = con.execute("""SELECT action, value_corrected, reviewer, reviewed_at FROM corrections
                          WHERE source_uri = ? AND page = ? AND field = ? ORDER BY reviewed_at DESC LIMIT 1""",
                       list(key)).fetchone()
    item["review"] = (dict(zip(("action", "value", "reviewer", "at"), (*last[:3], last[3].isoformat())))
                      if last else None)
    return item


def _crop(row) -> dict | None:
    if row is None:
        return None
    image, uri, width, height, boxes, _ = row
    src = f"data:image/png;base64,{base64.b64encode(image).decode()}" if image is not None else uri
    return {"src": src, "width": width, "height": height, "boxes": json.loads(boxes)}


def options(db_dir: str) -> dict:
    """Returns what the queue can be narrowed to: templates and fields with flagged or reviewed items, the reasons."""
    with locked_reader(db_dir) as con:
        pairs = con.execute(f"""SELECT coalesce(f.template, ''), f.field, count(*) FROM fields f
                                WHERE f.needs_review OR {_REVIEWED} GROUP BY ALL ORDER BY ALL""").fetchall()
    templates: dict[str, dict[str, int]] = {}
    for template, field, n in pairs:
        templates.setdefault(template, {})[field] = n
    return {"templates": templates, "reasons": list(REASONS), "statuses": list(STATUSES)}


def rule_problems(rule: dict | None, value: str) -> list[str]:
    """Returns why `value` breaks the field's rule (empty when it fits, or the field has no rule)."""
    if not rule:
        return []
    spec = Field("", "free", (0.0, 0.0, 0.0, 0.0), rule["min_length"], rule["max_length"],
                 pattern=rule.get("pattern"), check=rule.get("check"))
    return check_value(spec, value)


def rule_text(rule: dict | None) -> str:
    """Returns the rule in words: "10 digits, pattern \\d{10}, luhn check digit"."""
    if not rule:
        return "no rule (no template)"
    lo, hi = rule["min_length"], rule["max_length"]
    parts = [f"{lo} digits" if lo == hi else f"{lo}-{hi} digits"]
    if rule.get("pattern"):
        parts.append(f"pattern {rule['pattern']}")
    if rule.get("check"):
        parts.append(f"{rule['check']} check digit")
    if rule.get("decimals"):
        parts.append(f"{rule['decimals']} decimals printed")
    return ", ".join(parts)


@dataclasses.dataclass
class Saved:
    """What a review action wrote, and (when asked for) the queue's next item and count after it."""

    row: dict
    next_item: dict | None = None
    remaining: int | None = None


def record(db_dir: str, key: list, action: str, value: str | None, reviewer: str, confirmed: bool = False,
           then: Filters | None = None, after: list | None = None) -> Saved:
    """Saves one review action as a `corrections` row, in one transaction.

    Args:
        key: (source_uri, page, field) of a field in `fields`.
        action: accept (the reading stands), correct (to `value`) or unreadable.
        value: the right digits, for `correct`.
        reviewer: who.
        confirmed: save a correction even though it breaks the field's rule.
        then: also answer the next pending item after cursor `after` under these filters, and the count
            left, over the same connection (one connection a keystroke: opening one is most of the cost).

    Raises:
        ReviewError: an unknown field or action, or a value that is not digits.
        NeedsConfirmation: a correction that breaks the field's rule, not `confirmed`.
    """
    if action not in ACTIONS:
        raise ReviewError(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")
    value = (value or "").strip()
    if action == "correct" and not value.isdigit():
        raise ReviewError("a correction is the field's digits, 0-9 only")
    source_uri, page, field = key
    with locked_writer(db_dir, ensure=False) as con:
        found = con.execute("""SELECT f.value, c.field_rule FROM fields f LEFT JOIN crops c USING (source_uri, page, field)
                               WHERE source_uri = ? AND page = ? AND field = ?""", [source_uri, page, field]).fetchone()
        if found is None:
            raise ReviewError(f"no field {field!r} on page {page} of {source_uri}")
        read, rule = found
        rule = json.loads(rule) if rule else None
        longest = rule["max_length"] if rule else MAX_DIGITS
        if action == "correct" and len(value) > longest:
            raise ReviewError(f"{len(value)} digits: the field {field} holds at most {longest}")
        problems = rule_problems(rule, value) if action == "correct" else []
        if problems and not confirmed:
            raise NeedsConfirmation(problems)
        corrected = {"accept": read, "correct": value, "unreadable": None}[action]
        row = {"source_uri": source_uri, "page": int(page), "field": field, "value_read": read,
               "value_corrected": corrected, "action": action, "reviewer": reviewer,
               "reviewed_at": datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)}
        con.execute("BEGIN TRANSACTION")
        con.execute(f"INSERT INTO corrections ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()))
        con.execute("COMMIT")
        if then is None:
            return Saved(row)
        return Saved(row, _next(con, then, after), _remaining(con, then))
