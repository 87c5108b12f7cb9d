"""Domain errors: raised by gis and layers, mapped to HTTP status codes only in api."""

from __future__ import annotations


class CityGridError(Exception):
    """Base class of every error citygrid raises on purpose; the message names the bad value."""


class NotFoundError(CityGridError):
    """A layer, feature or file that does not exist."""


class InvalidInputError(CityGridError):
    """Input that breaks a rule: bad geometry, bad code, bad field value, malformed file."""


class CrsMismatchError(InvalidInputError):
    """Data arrived in a CRS other than the one expected."""


class OutsideCityError(InvalidInputError):
    """Coordinates that lie outside the configured city."""


class DatabaseUnavailableError(CityGridError):
    """The database cannot be reached or the private cluster cannot start."""


class ConflictError(CityGridError):
    """A request that clashes with the current state, e.g. closing a case never dispatched."""


class AuthenticationError(CityGridError):
    """Missing, wrong, expired or revoked credentials."""


class PermissionDeniedError(CityGridError):
    """A signed-in user whose role may not do this."""


class BackupError(CityGridError):
    """A dump or restore that cannot run or failed: missing pg_dump, bad archive, busy target."""
