"""The httptools path and the h11 path behave as one (tests/fuzz/differential.py).

Each fixed case below is a disagreement the fuzzer once found, kept so that it
stays fixed; then a short fuzzing run. The long run is a command:
``python -m tests.fuzz.differential --count 1000000 --jobs 2``.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.fuzz.differential import compare, describe, fuzz

CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"
FOUND = {
    "chunk size over 64 bits after data": (
        b"QUERY / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"3\r\nabc\r\n10000000000000000\r\nab\r\n0\r\n\r\n",
        [],
    ),
    "chunk size over 64 bits before its line ends": (
        b"GET / HTTP/1.1\r\nHost: \r\n" + CHUNKED + b"3\r\nabc\r\n10000000000000000\r\nabc\r\n0\r\n\r\n",
        [82],
    ),
    "more than 20 digits of chunk size": (
        b"POST / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"000000000000000000003\r\nabc\r\n0\r\n\r\n",
        [],
    ),
    "a bad byte in a chunk extension before its line ends": (
        b"DELETE / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"1\r\n0\r\n00000000002;a\xe6b\r\nab\r\n0\r\n\r\n",
        [82],
    ),
    "empty chunk extension names": (
        b"POST / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"3;;ext=1x\r\nabc\r\n2;a=;b\r\nde\r\n1;a;\r\nf\r\n0\r\n\r\n",
        [],
    ),
    "whitespace in chunk extensions": (
        b"PATCH / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b'2 ;q="v"\r\nab\r\n1;x\t\r\nc\r\n0\r\n\r\n',
        [],
    ),
    "bare CR in the last chunk line": (
        b"GET / HTTP/1.1\r\nHost: \r\n" + CHUNKED + b"1\r\na\r\n0\r:\nX-T: 1\r\n\r\n",
        [63],
    ),
    "bare LF in the trailer section": (
        b"QUERY / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"2\r\nab\r\n0\r\nX-T: \n\r\n\r\n",
        [],
    ),
    "framing fields in the trailer section": (
        b"PATCH / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"1\r\nc\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
        [],
    ),
    "a request line in the trailer section": (
        b"POST / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"2\r\nab\r\n1\r\nc\r\n0\r\nTX /? HTTP/1.0\r\nHost: \r\n\r\n",
        [14, 26, 90],
    ),
    "a trailer line without a colon, up to its CR": (
        b"DELETE / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"3\r\nabc\r\n0\r\nX-\r\n\r\n",
        [63, 75],
    ),
    "Content-Length in the trailer section, before its line ends": (
        b"PATCH / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"1\r\nc\r\n0\r\nContent-Length: 3\r\n\r\n",
        [81],
    ),
    "a trailer line with an empty name, before its line ends": (
        b"GET http://h/x?y HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1;x\r\na\r\n2;a=b\r\nbc\r\n0\r\nX-T: 1\r\n:X-U: 2\r\n\r\n",
        [72, 98],
    ),
    "trailer fields never reach the scope": (
        b"QUERY / HTTP/1.1\r\nHost: x\r\n" + CHUNKED + b"1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
        [],
    ),
    "a tab after the transfer coding": (
        b"PATCH / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\t\r\n\r\n1;x\r\na\r\n0\r\n\r\n",
        [],
    ),
    "Transfer-Encoding value as sent": (
        b"DELETE / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n2;x\r\nab\r\n0\r\n\r\n",
        [],
    ),
    "HTTP/2.0 refused before Host is counted": (b"PUT / HTTP/2.0\r\nHost: a\r\nHost: b\r\n\r\n", []),
    "HTTP/1.2 refused at the request line": (b"POST / HTTP/1.2\r\nHost: x\nA: b\r\n\r\n", []),
    "HTTP/1.2 then a bad byte": (b"PUT /a HTTP/1.2\xea\nHost: x\r\n\r\n", []),
    "unsupported coding on HTTP/2.0": (
        b"OPTIONS http://h/x HTTP/2.0\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        [],
    ),
    "an expectation, then a bad Content-Length": (
        b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 2, 2\r\n\r\nab",
        [],
    ),
    "an expectation, then a bad field name, in one read": (
        b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nTransfer-En\xf2oding: chunked\r\n\r\n",
        [],
    ),
    "an expectation, then a bad field name, in two reads": (
        b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nTransfer-En\xf2oding: chunked\r\n\r\n",
        [51],
    ),
    "PRI before an expectation": (b"PRI /? HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", []),
    "PRI with a bad version": (b"PRI /p HTTP/1.2\r\nHost: x\r\n\r\n", []),
    "no version, and an expectation": (b"HEAD /x\r\nExpect: magic\r\n\r\n", []),
    "HTTP/2.0, and an expectation": (b"GET / HTTP/2.0\r\nHost: x\r\nExpect: magic\r\n\r\n", []),
    "authority-form without CONNECT": (b"OPTIONS h:80 HTTP/1.1\r\nHost: x\r\n\r\n", []),
    "a fragment in a CONNECT authority": (b"CONNECT a#frag HTTP/1.1\r\nHost: x\r\n\r\n", []),
    "an asterisk starts a CONNECT authority": (b"CONNECT *a#frag HTTP/1.1\r\nHost: x\r\n\r\n", []),
    "a fragment in an absolute-form host": (b"GET http://h#x HTTP/1.1\r\nHost: x\r\n\r\n", []),
    "asterisk-form with more after it": (b"PATCH *;ext=1 HTTP/1.1\r\nHost: x\r\n\r\n", []),
    "CONNECT has no body": (
        b"CONNECT * HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        [],
    ),
    "an upgrade request has no body": (
        b"QUERY * HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 4\r\n\r\nabcd",
        [],
    ),
    "two spaces in the request line": (b"QUERY  / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", []),
    "extension method after a request line with two spaces": (
        b"HEAD  /a HTTP/1.1\r\nHost: x\r\n\r\nBREW / HTTP/1.1\r\nHost: x\r\n\r\n",
        [],
    ),
    "extension method after a chunk size of more than 20 digits": (
        b"POST / HTTP/1.1\r\nHost: x\r\n"
        + CHUNKED
        + b"000000000000000000003\r\nabc\r\n0\r\n\r\nBREW / HTTP/1.1\r\nHost: x\r\n\r\n",
        [],
    ),
    "extension method, then HTTP/2.0": (
        b"POSTAL * HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/2.0\r\nHost: [::1]\r\n\r\n",
        [],
    ),
}


@pytest.fixture(autouse=True)
def quiet_refusals():
    logger = logging.getLogger("fastserve.error")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize("name", list(FOUND))
def test_found_disagreement_stays_fixed(name):
    data, cuts = FOUND[name]
    outcomes = asyncio.run(compare(data, cuts))
    assert outcomes is None, describe(data, cuts, outcomes)


def test_trailer_fields_are_dropped_on_both_parsers():
    from tests.fuzz.differential import run_one

    data, cuts = FOUND["trailer fields never reach the scope"]
    outcome = asyncio.run(run_one("httptools", data, cuts))
    assert outcome["seen"][0]["headers"] == [(b"host", b"x"), (b"transfer-encoding", b"chunked")]
    assert outcome["seen"][0]["body"] == b"a"


def test_short_fuzzing_run_finds_no_disagreement():
    ran, failures = fuzz(seed=20261202, count=5000)
    assert not failures, failures[0]
    assert ran == 5000
