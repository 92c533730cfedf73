"""Compiled hot paths. Each module here is built by setup.py from a Python twin.

``http1`` is compiled from ``fastserve/protocols/http1.py`` with the types in
``http1.pxd``; when it is missing (no compiler, ``FASTSERVE_NO_EXTENSIONS=1``)
fastserve runs the same source as plain Python.
"""
