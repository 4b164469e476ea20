"""Hostile files (issue 16): seconds and memory to turn each into its rejects row.

Each file is read in a fresh process by the read stage's own code (`open_scan`,
`read_pages`): the time from opening it to its refusal, and the process's peak
resident memory, Python and the read stage's imports included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from corpus.hostile import HOSTILE_FILES, make_hostile_files

__all__ = ["bench_hostile"]

_PROBE = """
import json, sys, time
from pipeline.reading.read import Page, input_root, open_scan, read_pages

def peak_kb():
    # VmHWM belongs to this process's memory map; ru_maxrss would carry the parent's peak over the exec.
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

base = peak_kb()
started = time.perf_counter()
outcome = "read"
try:
    with open_scan(sys.argv[1], input_root(sys.argv[2])) as fh:
        items = list(read_pages(sys.argv[1], fh))
    outcome = "refused" if any(not isinstance(i, Page) for i in items) else "read"
except Exception as exc:
    outcome = "refused: " + str(exc)[:120]
seconds = time.perf_counter() - started
peak = peak_kb()
print(json.dumps({"seconds": seconds, "mb": peak / 1024, "mb_for_the_file": (peak - base) / 1024,
                  "outcome": outcome}))
"""


def bench_hostile(work_dir: str, log=print) -> dict:
    folder = os.path.join(work_dir, "hostile")
    make_hostile_files(folder)
    per_file = {}
    for name in sorted(HOSTILE_FILES):
        done = subprocess.run([sys.executable, "-c", _PROBE, os.path.join(folder, name), os.path.join(folder, "*")],
                              capture_output=True, text=True, timeout=120)
        per_file[name] = json.loads(done.stdout.strip().splitlines()[-1])
        log(f"  {name:18s} {per_file[name]['seconds'] * 1000:6.0f} ms  {per_file[name]['mb']:5.0f} MB peak, "
            f"{per_file[name]['mb_for_the_file']:4.0f} MB for the file  "
            f"{per_file[name]['outcome'][:70]}")
    return {"files": per_file,
            "hostile_max_seconds": round(max(f["seconds"] for f in per_file.values()), 3),
            "hostile_max_mb": round(max(f["mb"] for f in per_file.values()), 1),
            "hostile_max_mb_for_the_file": round(max(f["mb_for_the_file"] for f in per_file.values()), 1),
            "hostile_all_refused": all(f["outcome"].startswith("refused") for f in per_file.values())}
