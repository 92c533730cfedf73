"""--reload: the worker restarts when a watched file changes."""

from __future__ import annotations

import signal

import httpx
import pytest

from fastserve.reload import ReloadFilter
from tests.processes import Process
from tests.test_supervisor import ready_pids

pytestmark = pytest.mark.timeout(60)

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{message}"}})
"""


def test_reload_restarts_on_a_file_change(tmp_path):
    module = tmp_path / "reload_app.py"
    module.write_text(APP.format(message="one"))
    process = Process(
        "reload_app:app",
        "--reload",
        "--reload-dir",
        str(tmp_path),
        "--app-dir",
        str(tmp_path),
        "--reload-delay",
        "0.1",
        "--port",
        "0",
        "--lifespan",
        "off",
    )
    try:
        url = process.url()
        (first,) = ready_pids(process, 1)
        assert httpx.get(url).text == "one"
        module.write_text(APP.format(message="two"))
        process.wait_line(r"Changes detected in .*reload_app\.py; reloading")
        (second,) = ready_pids(process, 1)
        assert second != first
        assert httpx.get(url).text == "two"
        process.proc.send_signal(signal.SIGTERM)
        assert process.finish(20) == 0
    finally:
        process.finish(1)


def test_reload_filter_includes_and_excludes():
    default = ReloadFilter([], [])
    assert default(None, "/src/app/main.py")
    assert not default(None, "/src/app/notes.txt")
    assert not default(None, "/src/app/.main.py.swp")
    assert not default(None, "/src/app/__pycache__/main.py")
    assert not default(None, "/src/.venv/lib/site.py")
    templates = ReloadFilter(["*.py", "*.html"], ["legacy_*"])
    assert templates(None, "/src/templates/index.html")
    assert not templates(None, "/src/legacy_views.py")
