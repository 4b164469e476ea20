"""`formdigits query`: read-only SQL over a results directory, in three formats."""

import json
import subprocess
import sys

from beam_helpers import one_line


def test_query_is_read_only_and_formats(batch_output):
    rc, lines = one_line(["query", "--db", str(batch_output), "DROP TABLE fields"])
    assert rc == 2 and "read-only" in lines[0]
    res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(batch_output), "--format", "json",
                          "SELECT field, value FROM fields ORDER BY source_uri, page, field LIMIT 3"],
                         capture_output=True, text=True, timeout=60)
    rows = json.loads(res.stdout)
    assert len(rows) == 3 and set(rows[0]) == {"field", "value"}
    res = subprocess.run([sys.executable, "-m", "formdigits", "query", "--db", str(batch_output),
                          "SELECT count(*) AS n FROM digits"], capture_output=True, text=True, timeout=60)
    assert res.stdout.splitlines()[0].strip() == "n" and res.stdout.strip().endswith("(1 row)")
