"""Errors of an upload the api answers with their own statuses (415, 413)."""

from __future__ import annotations

from gis.platform.errors import InvalidInputError


class UnsupportedMediaError(InvalidInputError):
    """The bytes are not an image type the platform takes (415); the message names the type."""


class MediaTooLargeError(InvalidInputError):
    """The file, or the picture it unpacks to, is over a limit (413)."""
