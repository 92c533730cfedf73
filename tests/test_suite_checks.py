"""The suite's own guards fail a test when they should: a server thread that dies, a log line that breaks.

Each inner test is run by pytester with this suite's conftest, as any test here is.
"""

from __future__ import annotations

import logging

import pytest

from tests import log_check
from tests.apps import hello
from tests.conftest import run_server
from tests.processes import ROOT

pytest_plugins = ["pytester"]


def test_a_server_thread_that_dies_fails_the_test():
    async def broken_shutdown() -> None:
        raise RuntimeError("injected server-thread crash")

    with pytest.raises(AssertionError, match="the server failed while the test ran") as caught:
        with run_server(hello) as server:
            server.server.shutdown = broken_shutdown  # (Server.serve calls it when the test stops the server)
    assert "injected server-thread crash" in repr(caught.value.__cause__)


INNER = """
import logging, subprocess, sys
import pytest
import httpx
from tests.conftest import run_server
from tests.processes import ROOT
from tests.apps import hello

async def app_that_fails(scope, receive, send):
    raise RuntimeError("app bug")

def test_unexpected_app_traceback():
    with run_server(app_that_fails) as server:
        httpx.get(server.url())

@pytest.mark.tracebacks("Exception in ASGI application")
def test_expected_app_traceback():
    with run_server(app_that_fails) as server:
        assert httpx.get(server.url()).status_code == 500

def test_record_the_default_formatter_cannot_render():
    logging.getLogger("fastserve.access").info('%s - "%s" %d', "127.0.0.1:1", 200)

def test_handler_error():
    logging.getLogger("fastserve.error").warning("%d", "not a number")

def test_process_output():
    from tests.processes import Process
    process = Process("-c", "import sys; print('--- Logging error ---', file=sys.stderr)", command=[sys.executable])
    assert process.finish() == 0

def test_clean_server():
    with run_server(hello) as server:
        assert httpx.get(server.url()).status_code == 200
"""


def test_log_check_fails_what_a_user_would_see_broken(pytester: pytest.Pytester, monkeypatch) -> None:
    # In a process of its own: the records of the inner tests are theirs to judge, not this test's.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest("pytest_plugins = ['tests.conftest']")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-p", "no:randomly", timeout=60)
    result.assert_outcomes(passed=2, failed=4)
    output = result.stdout.str()
    assert "unexpected traceback in the log" in output
    # (A record that cannot be rendered fails even earlier, in the logging call: pytest's handler raises.)
    assert "printed a logging error" in output
    for name in (
        "test_unexpected_app_traceback",
        "test_record_the_default_formatter_cannot_render",
        "test_handler_error",
        "test_process_output",
    ):
        assert any(line.startswith("FAILED") and name in line for line in result.outlines), name


def test_log_check_renders_every_access_record_shape() -> None:
    """The records the protocols make, each rendered by the default formatters without a problem."""
    check = log_check.LogCheck(())
    access = logging.getLogger("fastserve.access")
    for message, args in (
        ('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "GET", "/", "1.1", 200)),
        ('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "WebSocket", "/ws", "1.1", 101)),
        ('%s - "%s%s%s" %d', ("127.0.0.1:5", "-", "", "", 400)),
        ("whole line", ()),
    ):
        check.record(access.makeRecord("fastserve.access", logging.INFO, __file__, 1, message, args, None))
    assert check.report() is None
    check.record(access.makeRecord("fastserve.access", logging.INFO, __file__, 1, "%s %d", ("a", "b"), None))
    assert "cannot be rendered" in (check.report() or "")
