"""Review: the fields that need a person, their corrections, and what a run produced.

    queue.py    the review queue and the corrections table, over a results directory
    app.py      `formdigits review`: the queue as a keyboard-first web page (Flask, served by waitress)
    report.py   `formdigits report`: one self-contained HTML page for a run
    export.py   `formdigits export`: every field's final value, corrections applied
    overlay.py  a page with each field it read boxed, beside its rows (`make demo`'s picture)
"""
