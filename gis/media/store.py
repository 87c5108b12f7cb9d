"""The media folder: files named by the SHA-256 of the uploaded bytes, written atomically.

    <dir>/original/ab/<sha256>.<jpg|png|heic>   the bytes as uploaded (evidence, EXIF kept)
    <dir>/thumb/ab/<sha256>.jpg                 small JPEG for lists, no metadata
    <dir>/public/ab/<sha256>.jpg                EXIF-free copy residents may see

The same photo uploaded twice is stored once. Nothing here is served by path: the api reads a
file only after the case's row was found (and so the caller may see the case), or a published
photo by its unguessable public name.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

KINDS = ("original", "thumb", "public")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
EXTENSIONS = ("jpg", "png", "heic")


class MediaStore:
    """Content-addressed files under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, sha256: str, extension: str = "jpg") -> Path:
        """Where a file of `kind` lives; ValueError for a malformed name (never a traversal)."""
        if kind not in KINDS or not SHA256.match(sha256) or extension not in EXTENSIONS:
            raise ValueError(f"no media file {kind}/{sha256}.{extension}")
        return self.root / kind / sha256[:2] / f"{sha256}.{extension}"

    def put(self, kind: str, sha256: str, data: bytes, extension: str = "jpg") -> Path:
        """Write the file unless it is there already (same hash, same bytes)."""
        target = self.path(kind, sha256, extension)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)  # atomic: a reader never sees half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read(self, kind: str, sha256: str, extension: str = "jpg") -> bytes:
        """The bytes of a stored file; FileNotFoundError when it is missing."""
        return self.path(kind, sha256, extension).read_bytes()
