"""Autobahn|Testsuite (WebSocket conformance) against fastserve, on each WebSocket engine.

Starts ``fastserve bench.apps:websocket_echo`` with the engine asked for, runs
the suite's fuzzing client against it, and prints OK / NON-STRICT / FAILED
(and the other verdicts) with the cases that were not OK. A full run of the
517 cases takes 10-15 minutes per engine here, so this is not in CI; the
suite's fragment, close and UTF-8 cases are held by raw-frame tests in
``tests/test_websocket_frames.py`` and ``tests/test_websocket.py``.

The suite runs only on Python 2.7; ``../shared/tools/README.md`` has the recipe
that installs it (``wstest`` in a 2.7 virtualenv)::

    python bench/autobahn.py --wstest /tmp/venv27/bin/wstest                 # both engines
    python bench/autobahn.py --wstest /tmp/venv27/bin/wstest --ws wsproto --cases '9.*' '7.1.5'

Exits 1 when a case FAILED, or when NON-STRICT cases exceed ``--max-non-strict``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import free_port, wait_listening

ROOT = Path(__file__).resolve().parent.parent


def run_engine(wstest: str, engine: str, cases: list[str], workdir: Path) -> dict[str, str]:
    """Runs the suite against one engine; returns {case: verdict}."""
    port = free_port()
    agent = f"fastserve-{engine}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastserve",
            "bench.apps:websocket_echo",
            "--port",
            str(port),
            "--ws",
            engine,
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
    )
    try:
        wait_listening(port, server)
        spec = {
            "options": {},
            "outdir": str(workdir / "reports"),
            "servers": [{"agent": agent, "url": f"ws://127.0.0.1:{port}"}],
            "cases": cases,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        spec_path = workdir / f"{engine}.json"
        spec_path.write_text(json.dumps(spec))
        subprocess.run(
            [wstest, "-m", "fuzzingclient", "-s", str(spec_path)], cwd=workdir, check=True, stdout=subprocess.DEVNULL
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    index = json.loads((workdir / "reports" / "index.json").read_text())
    return {case: result["behavior"] for case, result in index[agent].items()}


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wstest", default="/tmp/venv27/bin/wstest", help="the suite's wstest command")
    parser.add_argument(
        "--ws", choices=["auto", "wsproto"], action="append", help="engine to test (repeatable; default: both)"
    )
    parser.add_argument("--cases", nargs="+", default=["*"], help="case patterns (default: all)")
    parser.add_argument("--max-non-strict", type=int, default=8)
    args = parser.parse_args(argv)
    if not os.path.exists(args.wstest):
        print(f"wstest not found at {args.wstest}: see ../shared/tools/README.md", file=sys.stderr)
        return 2
    failed = False
    for engine in args.ws or ["auto", "wsproto"]:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            verdicts = run_engine(args.wstest, engine, args.cases, Path(tmp))
            took = time.monotonic() - started
        counts = collections.Counter(verdicts.values())
        summary = " / ".join(f"{counts[v]} {v}" for v in ("OK", "NON-STRICT", "FAILED"))
        others = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()) if v not in ("OK", "NON-STRICT", "FAILED"))
        print(
            f"{engine}: {len(verdicts)} cases in {took:.0f} s: {summary}" + (f" ({others})" if others else ""),
            flush=True,
        )
        for case in sorted(verdicts, key=case_key):
            if verdicts[case] != "OK":
                print(f"  {case}: {verdicts[case]}", flush=True)
        if counts["FAILED"] or counts["NON-STRICT"] > args.max_non_strict:
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
