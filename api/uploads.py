"""An uploaded file on disk for the length of a `with`: name checked, size limited, not empty.

Both upload routes (`POST /layers/{id}/import`, `POST /route/batch`) take their file through
`received_upload`, so a name that cannot be a file (`.`, `..`, 300 characters, a NUL), an empty
file and an oversized one are 4xx naming the file, and no error message that leaves the `with`
shows the server's temporary directory (GDAL and pandas put the full path in theirs).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import HTTPException, UploadFile

from api.input_guard import check_upload_name
from gis.platform.errors import CityGridError, InvalidInputError

UPLOAD_CHUNK = 1024 * 1024


@contextmanager
def received_upload(file: UploadFile, *, default: str, max_mb: int,
                    prefix: str) -> Iterator[Path]:
    """The upload written to a private temporary directory, removed on leaving."""
    name = check_upload_name(file.filename, default=default)
    limit = max_mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        path = Path(tmp) / name
        size = 0
        with path.open("wb") as out:
            while chunk := file.file.read(UPLOAD_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(status_code=413,
                                        detail=f"{name} is larger than {max_mb} MB")
                out.write(chunk)
        if size == 0:
            raise InvalidInputError(f"{name}: the uploaded file is empty")
        try:
            yield path
        except CityGridError as exc:
            # The reader's message names the file by its temporary path; the client sent `name`.
            exc.args = tuple(_without_dir(arg, tmp) for arg in exc.args)
            raise


def _without_dir(arg: object, directory: str) -> object:
    if not isinstance(arg, str):
        return arg
    return arg.replace(f"{directory}/", "").replace(directory, "")
