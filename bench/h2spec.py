"""h2spec (HTTP/2 conformance) against fastserve: both HTTP/2 engines, over TLS and h2c.

Starts ``fastserve bench.apps:read_then_plaintext`` for each engine and transport
(with ``--timeout-keep-alive 30``, so that a case passes on the server's
answer and never on an idle close landing inside h2spec's timeout), runs
h2spec and reads its JUnit report. The app reads each request to its end
before it answers, as nghttpd does: an app that answers first makes the
server end the stream with RST_STREAM NO_ERROR (RFC 9113 8.1), after which the
RFC has it ignore what the client still sends on the stream, so that the
cases which send an invalid frame behind a request's HEADERS would race the
answer. Every case must pass, except h2c 3.5/2: an invalid
connection preface on a port that also serves HTTP/1.1 is answered as
HTTP/1.1, as hypercorn's and granian's ``--http auto`` do. ``.ci/run`` runs
this; where the h2spec binary is absent it says so in one line and exits 0.

    python bench/h2spec.py                      # h2spec from $H2SPEC or ../shared/tools/h2spec
    python bench/h2spec.py --engine nghttp2 --transport h2c
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from compare import free_port, wait_listening

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = [
    os.environ.get("H2SPEC", ""),
    str(ROOT.parent / "shared" / "tools" / "h2spec"),
    "/work/shared/tools/h2spec",
]
# The cases allowed to fail, by transport (see the module's docstring).
ALLOWED = {"tls": set(), "h2c": {"http2/3.5/2"}}


def find_h2spec() -> str | None:
    for candidate in CANDIDATES:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def certificate(folder: Path) -> list[str]:
    """--ssl-* options for a throwaway certificate for 127.0.0.1 (h2spec runs with -k)."""
    import trustme

    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = folder / "server.pem", folder / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return ["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)]


def failures(report: Path) -> tuple[int, list[tuple[str, str]]]:
    """(cases run, (id, title) of each that failed) from h2spec's JUnit report; ids as h2spec numbers
    them: ``http2/3.5/2`` is the second case of section 3.5 of the HTTP/2 suite."""
    run, failed = 0, []
    for suite in ElementTree.parse(report).getroot().iter("testsuite"):
        for number, case in enumerate(suite.iter("testcase"), start=1):
            if case.find("skipped") is not None:
                continue
            run += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append((f"{suite.get('package')}/{number}", case.get("classname", "")))
    return run, failed


def run_one(h2spec: str, engine: str, transport: str, folder: Path) -> tuple[int, list[str]]:
    port = free_port()
    options = certificate(folder) if transport == "tls" else []
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastserve",
            "bench.apps:read_then_plaintext",
            "--port",
            str(port),
            "--h2-engine",
            engine,
            "--timeout-keep-alive",
            "30",
            "--log-level",
            "critical",
            "--no-access-log",
            *options,
        ],
        cwd=ROOT,
    )
    try:
        wait_listening(port, server)
        report = folder / f"{engine}-{transport}.xml"
        command = [h2spec, "-h", "127.0.0.1", "-p", str(port), "-o", "5", "-j", str(report)]
        if transport == "tls":
            command += ["-t", "-k"]
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if server.returncode not in (0, -15):
        raise SystemExit(f"fastserve ({engine}, {transport}) exited with {server.returncode}")
    return failures(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["nghttp2", "h2"], action="append", help="default: both")
    parser.add_argument("--transport", choices=["tls", "h2c"], action="append", help="default: both")
    parser.add_argument("--reports", help="keep the JUnit reports in this folder")
    args = parser.parse_args(argv)
    h2spec = find_h2spec()
    if h2spec is None:
        print("h2spec: not on this machine (set H2SPEC to its path), HTTP/2 conformance not checked")
        return 0
    bad = False
    for engine in args.engine or ["nghttp2", "h2"]:
        for transport in args.transport or ["tls", "h2c"]:
            with tempfile.TemporaryDirectory() as tmp:
                started = time.monotonic()
                run, failed = run_one(h2spec, engine, transport, Path(args.reports or tmp))
            unexpected = [(case, title) for case, title in failed if case not in ALLOWED[transport]]
            allowed = len(failed) - len(unexpected)
            print(
                f"h2spec {engine} over {transport}: {run - len(failed)}/{run} passed in "
                f"{time.monotonic() - started:.0f} s" + (f" (the allowed {allowed} failing)" if allowed else "")
            )
            for case, title in failed:
                print(f"  {'allowed' if (case, title) not in unexpected else 'FAILED'}: {case} {title}")
            bad = bad or bool(unexpected)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
