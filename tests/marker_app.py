"""An application that records which processes imported it (in $FASTSERVE_IMPORT_LOG)."""

import os

with open(os.environ["FASTSERVE_IMPORT_LOG"], "a") as log:
    log.write(f"{os.getpid()}\n")

from tests.cli_apps import app  # noqa: E402,F401
