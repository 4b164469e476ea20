"""`formdigits review`: the review queue as a small web app (Flask, served by waitress).

One page (`assets/review.html`, its script and style inline, nothing fetched
from elsewhere) and a JSON API over `pipeline.review.queue`:

    GET  /                 the page
    GET  /api/options      templates, fields and reasons to narrow the queue by
    GET  /api/next         the next pending item after ?after=CURSOR (JSON), with ?template=&field=&reason=
    GET  /api/item         one item by ?key=[source_uri, page, field] (going back)
    POST /api/review       {key, action, value, confirm, reviewer, filters}: saves, answers the next item

By default it binds loopback and answers only requests addressed to a
loopback name (a web page elsewhere cannot reach it through DNS tricks); a
POST must be JSON, which a page of another origin cannot send without the
browser asking first. On any other address `--token` is required and every
request must carry it (`X-Formdigits-Token`, or `?token=` for the page itself).
"""

from __future__ import annotations

import getpass
import hmac
import json
import os

from flask import Flask, Response, abort, current_app, jsonify, request

from pipeline.review import queue
from serving.server.engine import is_loopback  # one rule for both servers: 127.0.0.0/8, ::1, localhost

__all__ = ["create_app", "make_server"]

_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
MAX_BODY_BYTES = 8192


def _page() -> str:
    """The page with its script and style inline: one request, no file outside it."""
    def read(name):
        with open(os.path.join(_ASSETS, name), encoding="utf-8") as fh:
            return fh.read()
    return read("review.html").replace("/*STYLE*/", read("review.css")).replace("/*SCRIPT*/", read("review.js"))


def _json_arg(name: str):
    try:
        return json.loads(request.args[name]) if request.args.get(name) else None
    except json.JSONDecodeError:
        abort(400, f"{name} is not JSON")


def create_app(db_dir: str, *, token: str | None = None, reviewer: str | None = None) -> Flask:
    """Returns the review app over results directory `db_dir`.

    Args:
        token: when set, every request must carry it; when not, only loopback names are answered.
        reviewer: who the corrections are recorded as when the page does not say (default: the OS user).
    """
    queue.check_database(db_dir)
    app = Flask(__name__, static_folder=None)
    # An answer is a key, an action and a few digits: a few hundred bytes. Flask refuses more with 413.
    app.config.update(DB_DIR=db_dir, TOKEN=token, REVIEWER=reviewer or getpass.getuser(), PAGE=_page(),
                      MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.before_request(_guard)
    app.register_error_handler(queue.ReviewError, _review_error)
    app.register_error_handler(413, lambda _: (jsonify(error=f"request body over {MAX_BODY_BYTES} bytes"), 413))
    app.add_url_rule("/", view_func=_index)
    app.add_url_rule("/api/options", view_func=_options)
    app.add_url_rule("/api/next", view_func=_next)
    app.add_url_rule("/api/item", view_func=_item)
    app.add_url_rule("/api/review", view_func=_review, methods=["POST"])
    return app


def _guard():
    token = current_app.config["TOKEN"]
    if token:
        given = request.headers.get("X-Formdigits-Token") or request.args.get("token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return Response("a valid token is required: open the address formdigits review printed\n", 401,
                            mimetype="text/plain")
    elif not is_loopback((request.host or "").rsplit(":", 1)[0].strip("[]")):
        return Response("this review app answers loopback addresses only\n", 403, mimetype="text/plain")
    if request.method == "POST" and not request.is_json:
        return Response("POST a JSON body\n", 415, mimetype="text/plain")
    return None


def _review_error(exc: queue.ReviewError):
    if isinstance(exc, queue.NeedsConfirmation):
        return jsonify(error=str(exc), needs_confirmation=True, problems=exc.problems), 409
    return jsonify(error=str(exc)), 400


def _db() -> str:
    return current_app.config["DB_DIR"]


def _index():
    return Response(current_app.config["PAGE"], mimetype="text/html",
                    headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                             "style-src 'unsafe-inline'; script-src 'unsafe-inline'", "Cache-Control": "no-store"})


def _options():
    return jsonify(**queue.options(_db()), reviewer=current_app.config["REVIEWER"])


def _next():
    item, left = queue.next_and_remaining(_db(), queue.Filters.from_mapping(request.args), _json_arg("after"))
    return jsonify(item=item, remaining=left)


def _item():
    key = _json_arg("key")
    if not isinstance(key, list) or len(key) != 3:
        abort(400, "key is [source_uri, page, field]")
    return jsonify(item=queue.get_item(_db(), key))


def _review():
    body = request.get_json()
    key = body.get("key")
    if not isinstance(key, list) or len(key) != 3:
        abort(400, "key is [source_uri, page, field]")
    reviewer = str(body.get("reviewer") or current_app.config["REVIEWER"])[:100]
    filters = queue.Filters.from_mapping(body.get("filters") or {})
    # The next item comes with the answer: one round trip per keystroke of the reviewer's.
    saved = queue.record(_db(), key, body.get("action"), body.get("value"), reviewer,
                         confirmed=bool(body.get("confirm")), then=filters, after=body.get("after") or None)
    return jsonify(saved={**saved.row, "reviewed_at": saved.row["reviewed_at"].isoformat()},
                   item=saved.next_item, remaining=saved.remaining)


def make_server(app: Flask, host: str, port: int, threads: int = 4):
    """Returns a waitress server for the app (not started): `.effective_port`, `.run()`, `.close()`."""
    from waitress.server import create_server

    return create_server(app, host=host, port=port, threads=threads, ident="formdigits-review")
