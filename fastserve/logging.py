"""Log formatters and log configuration, compatible with configs written for uvicorn.

Log configs made for uvicorn name the loggers ``uvicorn``, ``uvicorn.error`` and
``uvicorn.access`` and the formatters ``uvicorn.logging.DefaultFormatter`` and
``uvicorn.logging.AccessFormatter``. Both keep working: the formatter paths are
rewritten to the classes here, and handlers configured on a ``uvicorn.*``
logger also serve the matching ``fastserve.*`` logger.
"""

from __future__ import annotations

import configparser
import copy
import io
import json
import logging
import logging.config
import os
import sys
from http import HTTPStatus
from typing import Any, Literal

TRACE_LOG_LEVEL = 5
logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE_LOG_LEVEL,
}

LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "fastserve.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
        "access": {
            "()": "fastserve.logging.AccessFormatter",
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
        },
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "fastserve": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "fastserve.error": {"level": "INFO"},
        "fastserve.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

_UVICORN_PREFIX = "uvicorn.logging."
_OWN_PREFIX = "fastserve.logging."
_LOGGER_PAIRS = (("uvicorn", "fastserve"), ("uvicorn.error", "fastserve.error"), ("uvicorn.access", "fastserve.access"))


class DefaultFormatter(logging.Formatter):
    """Adds ``%(levelprefix)s``: the level name padded to line up, coloured on a terminal."""

    level_colours = {
        TRACE_LOG_LEVEL: "\033[34m",
        logging.DEBUG: "\033[36m",
        logging.INFO: "\033[32m",
        logging.WARNING: "\033[33m",
        logging.ERROR: "\033[31m",
        logging.CRITICAL: "\033[91m",
    }

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        if use_colors is None:
            use_colors = sys.stderr.isatty()
        self.use_colors = use_colors
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def levelprefix(self, record: logging.LogRecord) -> str:
        name = record.levelname
        padding = " " * (8 - len(name))
        if self.use_colors:
            name = f"{self.level_colours.get(record.levelno, '')}{name}\033[0m"
        return f"{name}:{padding}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.__dict__["levelprefix"] = self.levelprefix(record)
        return super().formatMessage(record)


class AccessFormatter(DefaultFormatter):
    """Access lines: ``%(client_addr)s``, ``%(request_line)s`` and ``%(status_code)s`` ("200 OK").

    Every access record of the server carries uvicorn's arguments
    (client_addr, method, full_path, http_version, status_code); a line rendered
    whole (--access-log-format, --access-log-json) brings the fields as
    attributes instead. Any other record is rendered too, with "-" for what it
    lacks: a log line must never fail.
    """

    status_colours = {1: "\033[37m", 2: "\033[32m", 3: "\033[33m", 4: "\033[31m", 5: "\033[91m"}

    def status_text(self, status_code: Any) -> str:
        if not isinstance(status_code, int):
            return str(status_code)
        text = _status_texts.get(status_code)
        if text is None:
            text = _status_text(status_code)
        if self.use_colors:
            return f"{self.status_colours.get(status_code // 100, '')}{text}\033[0m"
        return text

    def formatMessage(self, record: logging.LogRecord) -> str:
        # A copy: other handlers (without colours, say) format the same record.
        record = copy.copy(record)
        fields = record.__dict__
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client_addr, method, full_path, http_version, status_code = args
            request_line = "-" if method == "-" else f"{method} {full_path} HTTP/{http_version}"
        else:
            client_addr = fields.get("client_addr", "-")
            request_line = fields.get("request_line", "-")
            status_code = fields.get("status_code", "-")
        if self.use_colors and request_line != "-":
            request_line = f"\033[1m{request_line}\033[0m"
        fields.update(client_addr=client_addr, request_line=request_line, status_code=self.status_text(status_code))
        return super().formatMessage(record)


def _status_text(status_code: int) -> str:
    try:
        return f"{status_code} {HTTPStatus(status_code).phrase}"
    except ValueError:
        return str(status_code)


_status_texts = {status.value: _status_text(status.value) for status in HTTPStatus}


def _rewrite_uvicorn_paths(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_UVICORN_PREFIX):
        return _OWN_PREFIX + value[len(_UVICORN_PREFIX) :]
    if isinstance(value, dict):
        return {key: _rewrite_uvicorn_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite_uvicorn_paths(item) for item in value]
    return value


def _load_config_file(path: str) -> dict[str, Any] | configparser.RawConfigParser:
    if path.endswith(".json"):
        with open(path) as file:
            return json.load(file)
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"--log-config {path}: reading YAML needs PyYAML (pip install pyyaml)") from None
        with open(path) as file:
            return yaml.safe_load(file)
    with open(path) as file:
        text = file.read().replace(_UVICORN_PREFIX, _OWN_PREFIX)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_file(io.StringIO(text))
    return parser


def _adopt_uvicorn_loggers() -> None:
    """Let handlers set up for ``uvicorn.*`` loggers receive fastserve's records too."""
    for uvicorn_name, own_name in _LOGGER_PAIRS:
        theirs = logging.getLogger(uvicorn_name)
        if not theirs.handlers and theirs.level == logging.NOTSET:
            continue
        ours = logging.getLogger(own_name)
        ours.handlers = list(theirs.handlers)
        if theirs.level != logging.NOTSET:
            ours.setLevel(theirs.level)
        ours.propagate = theirs.propagate


def configure_logging(
    log_config: dict[str, Any] | str | None,
    log_level: str | int | None,
    access_log: bool,
    use_colors: bool | None,
    plain_access_lines: bool = False,
) -> None:
    """``plain_access_lines``: access lines are rendered whole (--access-log-format, --access-log-json)."""
    if log_config is not None:
        if isinstance(log_config, str):
            if not os.path.exists(log_config):
                raise ValueError(f"--log-config {log_config}: no such file")
            loaded = _load_config_file(log_config)
        else:
            loaded = copy.deepcopy(log_config)
            if plain_access_lines and log_config == LOGGING_CONFIG:
                loaded["formatters"]["access"]["fmt"] = "%(message)s"
        if isinstance(loaded, configparser.RawConfigParser):
            logging.config.fileConfig(loaded, disable_existing_loggers=False)
        else:
            loaded = _rewrite_uvicorn_paths(loaded)
            if use_colors is not None:
                for formatter in loaded.get("formatters", {}).values():
                    if formatter.get("()") in (_OWN_PREFIX + "DefaultFormatter", _OWN_PREFIX + "AccessFormatter"):
                        formatter["use_colors"] = use_colors
            logging.config.dictConfig(loaded)
        _adopt_uvicorn_loggers()
    if log_level is not None:
        level = LOG_LEVELS[log_level] if isinstance(log_level, str) else log_level
        for name in ("fastserve", "fastserve.error", "fastserve.access"):
            logging.getLogger(name).setLevel(level)
    if not access_log:
        access = logging.getLogger("fastserve.access")
        access.handlers = []
        access.propagate = False
