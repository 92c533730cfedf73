"""Compiled hot paths. Most modules here are built by setup.py from a Python twin.

``http1`` is compiled from ``fastserve/protocols/http1.py`` with the types in
``http1.pxd``, ``http2`` (the HTTP/2 stream layer) from
``fastserve/protocols/http2.py`` with ``http2.pxd``, and ``state`` (the settings
and counters every connection reads) from ``fastserve/state.py`` with
``state.pxd``. They are used together or not at all: when they are missing (no
compiler, ``FASTSERVE_NO_EXTENSIONS=1``) fastserve runs the same sources as
plain Python.

``nghttp2`` has no twin: it binds libnghttp2 (``nghttp2.pyx``), and is built where
pkg-config finds libnghttp2's headers. Its readable counterpart is a different
engine with the same interface, ``fastserve.protocols.http2_h2`` on h2.
"""
