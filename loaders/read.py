"""Read a file's bytes, bounded in size, and fingerprint them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from core.document import SHAPE_VERSION
from loaders.errors import Rejected

_SALT = f"newsgraph-shape-{SHAPE_VERSION}\n".encode()


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes; :class:`Rejected` if it cannot be read or is too large.

    The size is checked before reading, so a huge file costs nothing.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise Rejected(
                    f"file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                    "(raise NEWSGRAPH_MAX_FILE_BYTES to allow it)"
                )
            data = f.read(max_bytes + 1)
    except IsADirectoryError:
        raise Rejected("is a directory that cannot be listed") from None
    except OSError as exc:
        raise Rejected(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # grew while we read it
        raise Rejected(f"file is over the {max_bytes:,}-byte limit")
    return data


def content_hash(data: bytes) -> str:
    """A fingerprint of what the file will turn into: its bytes and the rules
    (:data:`SHAPE_VERSION`) that turn them into a document."""
    return hashlib.blake2b(_SALT + data, digest_size=16).hexdigest()
