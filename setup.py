"""Builds the Cython hot path; without Cython or a C compiler, installs pure Python.

``fastserve/protocols/http1.py`` is compiled into ``fastserve._speedups.http1``,
``fastserve/protocols/cycle.py`` (the app call every protocol shares) into ``fastserve._speedups.cycle``,
``fastserve/protocols/websocket_frames.py`` and ``websocket.py`` into
``fastserve._speedups.websocket_frames`` and ``.websocket``, ``fastserve/protocols/http2.py``
(the HTTP/2 stream layer) into ``fastserve._speedups.http2``, ``fastserve/state.py`` into
``fastserve._speedups.state``, with the C types declared in
``fastserve/_speedups/*.pxd``. ``fastserve/_speedups/nghttp2.pyx``, the HTTP/2
engine on libnghttp2, is built where pkg-config finds libnghttp2's headers
(Debian: libnghttp2-dev); elsewhere HTTP/2 runs on h2. Set
``FASTSERVE_NO_EXTENSIONS=1`` to skip the build, ``FASTSERVE_REQUIRE_EXTENSIONS=1``
to make a build that cannot compile all of it (no compiler, no libnghttp2) fail
instead of falling back.
"""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    ("fastserve._speedups.state", "fastserve/state.py"),
    ("fastserve._speedups.cycle", "fastserve/protocols/cycle.py"),
    ("fastserve._speedups.http1_head", "fastserve/protocols/http1_head.py"),
    ("fastserve._speedups.http1_cycle", "fastserve/protocols/http1_cycle.py"),
    ("fastserve._speedups.http1_replay", "fastserve/protocols/http1_replay.py"),
    ("fastserve._speedups.http1", "fastserve/protocols/http1.py"),
    ("fastserve._speedups.websocket_frames", "fastserve/protocols/websocket_frames.py"),
    ("fastserve._speedups.websocket", "fastserve/protocols/websocket.py"),
    ("fastserve._speedups.http2_stream", "fastserve/protocols/http2_stream.py"),
    ("fastserve._speedups.http2", "fastserve/protocols/http2.py"),
]


REQUIRED = bool(os.environ.get("FASTSERVE_REQUIRE_EXTENSIONS"))
JOBS = os.cpu_count() or 1


def fall_back(message):
    """Say what is not built; with FASTSERVE_REQUIRE_EXTENSIONS=1, fail the build instead."""
    if REQUIRED:
        sys.exit(f"fastserve: {message}, and FASTSERVE_REQUIRE_EXTENSIONS is set: stopping")
    print(f"fastserve: {message}; using the pure-Python fallback", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """Compiles on every core; a failed compile leaves the pure-Python path instead of failing the install.

    An editable install reuses what the previous editable install compiled
    when it is newer than its sources (the README's two commands compile once).
    """

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = JOBS

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers
            fall_back(f"C extensions not built ({exc})")

    def build_extension(self, ext):
        if getattr(self, "editable_mode", False) and self.reuse_inplace(ext):
            return
        try:
            super().build_extension(ext)
        except Exception as exc:
            fall_back(f"{ext.name} not built ({exc})")

    def reuse_inplace(self, ext):
        """Copy the module compiled in place by an earlier editable install, if it is up to date."""
        compiled = self.get_ext_filename(ext.name)
        if not os.path.exists(compiled):
            return False
        built_at = os.path.getmtime(compiled)
        if any(os.path.getmtime(source) > built_at for source in [*ext.sources, *ext.depends]):
            return False
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(compiled, target)
        print(f"fastserve: {ext.name} is up to date ({compiled})", file=sys.stderr)
        return True


NGHTTP2 = ("fastserve._speedups.nghttp2", "fastserve/_speedups/nghttp2.pyx")


def nghttp2_flags():
    """Compiler and linker flags for libnghttp2 from pkg-config, or None without its headers."""
    if shutil.which("pkg-config") is None:
        fall_back("pkg-config not found, so libnghttp2 cannot be (Debian/Ubuntu: apt-get install pkg-config)")
        return None
    found = subprocess.run(["pkg-config", "--cflags", "--libs", "libnghttp2"], capture_output=True, text=True)
    if found.returncode != 0:
        fall_back("libnghttp2 not found by pkg-config (Debian/Ubuntu: apt-get install pkg-config libnghttp2-dev)")
        return None
    flags = found.stdout.split()
    return {
        "include_dirs": [flag[2:] for flag in flags if flag.startswith("-I")],
        "library_dirs": [flag[2:] for flag in flags if flag.startswith("-L")],
        "libraries": [flag[2:] for flag in flags if flag.startswith("-l")],
    }


def generated_c(source):
    return source.rsplit(".", 1)[0] + ".c"


def c_is_current(source):
    """Whether Cython's C for ``source`` is newer than it and every .pxd of ours.

    Cython would regenerate it whenever its own includes look newer, which they
    always do in pip's fresh build environment: then an editable install could
    never reuse what the last one compiled.
    """
    c_source = generated_c(source)
    if not os.path.exists(c_source):
        return False
    ours = [source, *glob.glob("fastserve/_speedups/*.pxd")]
    return os.path.getmtime(c_source) >= max(os.path.getmtime(path) for path in ours)


def extensions():
    if os.environ.get("FASTSERVE_NO_EXTENSIONS"):
        return []
    from setuptools import Extension

    wanted = list(COMPILED)
    flags = nghttp2_flags()
    if flags is not None:
        wanted.append(NGHTTP2)
    options = {NGHTTP2[0]: flags or {}}
    # The C Cython generated (an sdist carries it) builds with a C compiler alone.
    modules = [Extension(name, [generated_c(source)], **options.get(name, {})) for name, source in wanted]
    stale = [name for name, source in wanted if not c_is_current(source)]
    if not stale:
        return modules
    try:
        from Cython.Build import cythonize
    except ImportError:
        fall_back("Cython not available")
        return []
    sources = dict(wanted)
    fresh = cythonize(
        [Extension(name, [sources[name]], **options.get(name, {})) for name in stale],
        nthreads=JOBS,
        # (Stale by c_is_current: Cython's own check misses a change to an augmenting .pxd alone.)
        force=True,
        language_level=3,
        compiler_directives={"annotation_typing": False, "boundscheck": False, "wraparound": False},
    )
    fresh_by_name = {module.name: module for module in fresh}
    return [fresh_by_name.get(module.name, module) for module in modules]


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
