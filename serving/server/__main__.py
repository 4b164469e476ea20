"""`python -m serving.server --models-dir DIR [--port 0] [--batching-config FILE]`.

The embedded server that `ServerProcess` starts for a job or a benchmark: the
local engine over every model under DIR, on loopback. People start servers
with `formdigits serve`, which has every option.
"""

from __future__ import annotations

import argparse
import logging
import sys

from serving.server import engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.server")
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--batching-config", default=engine.DEFAULT_BATCHING_CONFIG)
    parser.add_argument("--parent-pid", type=int, help="stop when this process (the job) is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        entries = engine.resolve_entries(args.models_dir, None)
        return engine.run_local(entries, batching=engine.load_batching(args.batching_config), host="127.0.0.1",
                                port=args.port, tensor_content=False, parent_pid=args.parent_pid)
    except (engine.ConfigError, OSError) as exc:
        print(f"serving: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
