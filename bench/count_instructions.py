"""Machine instructions one request of an endpoint executes, counted by valgrind's callgrind.

CPU time per request (`bench/profile_endpoint.py`) moves by tens of percent when other work shares
the machine; an instruction count does not move at all, so it shows a change of a few percent in
Python-level work that timings hide. It is not a time: OpenSSL's SHA-1, for one, executes more
instructions than CPython's own SHA-1 yet takes less time (hardware SHA instructions), so compare
counts only between versions of the same code path, and confirm with timings.

Runs `bench/profile_endpoint.py` (same arguments, same database) under callgrind twice, with one
timed request and with `--requests` more, and divides the difference (by cycles, with `--then`),
so Django's start-up and the warm-up requests cancel out; Python's string hashing is seeded alike in every run, so that
dictionaries and sets are laid out alike. Slow (valgrind runs Python some 50 times slower): a minute or
more per run. Needs valgrind (`apt-get install valgrind`), e.g.:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/experiments_api_bench \\
        .venv/bin/python bench/count_instructions.py POST '/flags/?v=2' --anonymous \\
        --project-name 'Bench 1000 flags' \\
        --body '{"api_key": "{token}", "distinct_id": "user-42", "person_properties": {"plan": "pro"}}'
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PROFILE_ENDPOINT = Path(__file__).resolve().parent / "profile_endpoint.py"


def instructions(arguments: list[str], count: int) -> int:
    """Instructions of one run of `profile_endpoint.py` with `count` timed requests."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(PROFILE_ENDPOINT),
            *arguments,
            "--no-profile",
            "--count",
            str(count),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    collected = re.search(r"Collected : (\d+)", result.stderr)
    if collected is None:
        raise SystemExit(f"callgrind reported no count:\n{result.stderr[-2000:]}")
    return int(collected.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20, help="timed requests in the counted run")
    args, endpoint_arguments = parser.parse_known_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("count_instructions.py needs valgrind (apt-get install valgrind).")
    baseline = instructions(endpoint_arguments, 1)
    counted = instructions(endpoint_arguments, 1 + args.requests)
    print(f"{(counted - baseline) / args.requests / 1e6:.3f} M instructions per request")


if __name__ == "__main__":
    main()
