"""Builds the Cython hot path; without Cython or a C compiler, installs pure Python.

``fastserve/protocols/http1.py`` is compiled into ``fastserve._speedups.http1``,
``fastserve/protocols/websocket_frames.py`` and ``websocket.py`` into
``fastserve._speedups.websocket_frames`` and ``.websocket``, ``fastserve/protocols/http2.py``
(the HTTP/2 stream layer) into ``fastserve._speedups.http2``, ``fastserve/state.py`` into
``fastserve._speedups.state``, with the C types declared in
``fastserve/_speedups/*.pxd``. ``fastserve/_speedups/nghttp2.pyx``, the HTTP/2
engine on libnghttp2, is built where pkg-config finds libnghttp2's headers
(Debian: libnghttp2-dev); elsewhere HTTP/2 runs on h2. Set
``FASTSERVE_NO_EXTENSIONS=1`` to skip the build.
"""

import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    ("fastserve._speedups.state", "fastserve/state.py"),
    ("fastserve._speedups.http1", "fastserve/protocols/http1.py"),
    ("fastserve._speedups.websocket_frames", "fastserve/protocols/websocket_frames.py"),
    ("fastserve._speedups.websocket", "fastserve/protocols/websocket.py"),
    ("fastserve._speedups.http2", "fastserve/protocols/http2.py"),
]


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python path instead of failing the install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers
            print(f"fastserve: C extensions not built ({exc}); using the pure-Python path", file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"fastserve: {ext.name} not built ({exc}); using the pure-Python path", file=sys.stderr)


NGHTTP2 = ("fastserve._speedups.nghttp2", "fastserve/_speedups/nghttp2.pyx")


def nghttp2_flags():
    """Compiler and linker flags for libnghttp2 from pkg-config, or None without its headers."""
    if shutil.which("pkg-config") is None:
        return None
    found = subprocess.run(["pkg-config", "--cflags", "--libs", "libnghttp2"], capture_output=True, text=True)
    if found.returncode != 0:
        print("fastserve: libnghttp2 not found by pkg-config; HTTP/2 will run on h2", file=sys.stderr)
        return None
    flags = found.stdout.split()
    return {
        "include_dirs": [flag[2:] for flag in flags if flag.startswith("-I")],
        "library_dirs": [flag[2:] for flag in flags if flag.startswith("-L")],
        "libraries": [flag[2:] for flag in flags if flag.startswith("-l")],
    }


def extensions():
    if os.environ.get("FASTSERVE_NO_EXTENSIONS"):
        return []
    from setuptools import Extension

    try:
        from Cython.Build import cythonize
    except ImportError:
        # An sdist carries the C that Cython generated: it builds with a C compiler alone.
        generated = [(name, source.rsplit(".", 1)[0] + ".c") for name, source in COMPILED]
        if all(os.path.exists(c_source) for _, c_source in generated):
            modules = [Extension(name, [c_source]) for name, c_source in generated]
            nghttp2_c = NGHTTP2[1][: -len(".pyx")] + ".c"
            flags = nghttp2_flags()
            if flags is not None and os.path.exists(nghttp2_c):
                modules.append(Extension(NGHTTP2[0], [nghttp2_c], **flags))
            return modules
        print("fastserve: Cython not available; using the pure-Python path", file=sys.stderr)
        return []
    modules = [Extension(name, [source]) for name, source in COMPILED]
    flags = nghttp2_flags()
    if flags is not None:
        modules.append(Extension(NGHTTP2[0], [NGHTTP2[1]], **flags))
    return cythonize(
        modules,
        language_level=3,
        compiler_directives={"annotation_typing": False, "boundscheck": False, "wraparound": False},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
