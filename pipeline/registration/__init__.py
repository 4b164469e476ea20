"""Registration: which template a page is, which way up, and where its fields lie on it.

    register.py  corner marks (the fast path; three marks do), else the form's own print; then `confirm`
                 that the page is that form; `register_scan` for pages as read, colour included
    confirm.py   whether the page carries the template's print where the fit puts it
    snap.py      the fit moved onto the form's printed box walls and rules (the last few points)
    features.py  keypoints of the page matched to each template's blank page (forms without marks)
"""
