"""--bind addresses and the sockets made from them."""

from __future__ import annotations

import pytest

from fastserve.sockets import Address, BindError, bind_tcp, parse_bind


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8001", Address(host="127.0.0.1", port=8001)),
        ("[::1]:8001", Address(host="::1", port=8001)),
        (":8002", Address(host="0.0.0.0", port=8002)),
        ("localhost", Address(host="localhost", port=8000)),
        ("unix:/run/app.sock", Address(path="/run/app.sock")),
        ("fd://3", Address(fd=3)),
    ],
)
def test_bind_spellings(text, address):
    assert parse_bind(text) == address


@pytest.mark.parametrize("text", ["unix:", "fd://x", "[::1]", "[::1]8000", "host:http", "host:70000"])
def test_bad_bind_spellings(text):
    with pytest.raises(BindError):
        parse_bind(text)


def test_address_in_use_names_the_address():
    with bind_tcp("127.0.0.1", 0, 16) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(BindError, match=f"could not listen on 127.0.0.1:{port}: "):
            bind_tcp("127.0.0.1", port, 16)


def test_unknown_host():
    with pytest.raises(BindError, match="could not listen on no-such-host.invalid:80"):
        bind_tcp("no-such-host.invalid", 80, 16)
