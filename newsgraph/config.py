"""Settings, read from environment variables once and passed down explicitly.

Every setting has a safe default so that ``newsgraph`` runs with none of them set;
the README's configuration table lists the same names (a test keeps them in step).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


class ConfigError(ValueError):
    """An environment variable holds a value newsgraph cannot use."""


@dataclass(frozen=True)
class Settings:
    #: MongoDB connection string; empty means the embedded in-process engine.
    mongodb_uri: str = ""
    #: Database name inside the MongoDB deployment.
    db_name: str = "newsgraph"
    #: How long to wait for the store before saying it is unreachable (ms).
    store_timeout_ms: int = 3000
    #: Longest a single store operation may take before it fails (ms).
    store_op_timeout_ms: int = 10000
    #: Files larger than this are rejected unread (bytes).
    max_file_bytes: int = 2 * 1024 * 1024
    #: Documents per bulk write.
    batch_size: int = 500
    #: Bearer token that lets a request see unpublished articles; empty disables it.
    admin_token: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            name = ENV_NAMES[f.name]
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            if f.type == "int":
                try:
                    number = int(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
                if number <= 0:
                    raise ConfigError(f"{name} must be positive, got {number}")
                values[f.name] = number
            else:
                values[f.name] = raw
        return cls(**values)  # type: ignore[arg-type]


#: Settings field -> environment variable.
ENV_NAMES: dict[str, str] = {
    "mongodb_uri": "MONGODB_URI",
    "db_name": "NEWSGRAPH_DB",
    "store_timeout_ms": "NEWSGRAPH_STORE_TIMEOUT_MS",
    "store_op_timeout_ms": "NEWSGRAPH_STORE_OP_TIMEOUT_MS",
    "max_file_bytes": "NEWSGRAPH_MAX_FILE_BYTES",
    "batch_size": "NEWSGRAPH_BATCH_SIZE",
    "admin_token": "NEWSGRAPH_ADMIN_TOKEN",
}
