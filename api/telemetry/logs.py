"""Logging for ``newsgraph serve``: the access log as JSON lines, the rest as text."""

from __future__ import annotations

from typing import Any


def log_config(level: str) -> dict[str, Any]:
    """Uvicorn's logging configuration, with newsgraph's loggers added: the
    access log as bare JSON lines on stdout (uvicorn's own access log is
    replaced by it), everything else as text on stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "disable_existing_loggers": False}
    config["formatters"] = {
        **LOGGING_CONFIG["formatters"],
        "json_line": {"format": "%(message)s"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    }
    config["handlers"] = {
        **LOGGING_CONFIG["handlers"],
        "newsgraph_access": {
            "class": "logging.StreamHandler",
            "formatter": "json_line",
            "stream": "ext://sys.stdout",
        },
        "newsgraph": {
            "class": "logging.StreamHandler",
            "formatter": "text",
            "stream": "ext://sys.stderr",
        },
    }
    level = level.upper()
    config["loggers"] = {
        **LOGGING_CONFIG["loggers"],
        "newsgraph": {"handlers": ["newsgraph"], "level": level, "propagate": False},
        "newsgraph.access": {
            "handlers": ["newsgraph_access"],
            "level": level,
            "propagate": False,
        },
    }
    return config
