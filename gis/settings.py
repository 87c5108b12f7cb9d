"""Settings, one small class per concern, read from the environment (prefix CITYGRID_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DatabaseSettings(BaseSettings):
    """Where the PostGIS database is: an external URL, or the project's private cluster."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_", extra="ignore")

    # DATABASE_URL is honoured too because most hosting tools set exactly that name.
    url: str | None = Field(
        default=None, validation_alias=AliasChoices("CITYGRID_DATABASE_URL", "DATABASE_URL")
    )
    name: str = Field(default="citygrid", validation_alias="CITYGRID_DB_NAME")
    pool_size: int = Field(default=5, validation_alias="CITYGRID_DB_POOL_SIZE")

    @field_validator("url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        """Accept postgres:// and postgresql:// and use the psycopg2 driver."""
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg2://" + value[len(prefix) :]
        return value


class ClusterSettings(BaseSettings):
    """The private PostgreSQL cluster started when no database URL is set."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_CLUSTER_", extra="ignore")

    data_dir: Path = PROJECT_ROOT / ".citygrid" / "pg"
    pg_bin: Path | None = None  # found from /usr/lib/postgresql/15/bin when unset
    port: int | None = None  # a free loopback port is chosen on first start and then kept
    user: str = "citygrid"


class CitySettings(BaseSettings):
    """The city served: its district, metric CRS for distances, extent points must lie in."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_CITY_", extra="ignore")

    name: str = "济南市历下区"
    district_code: str = "370102"
    # CGCS2000 / 3-degree Gauss-Kruger CM 117E: Jinan lies on the central meridian, so
    # lengths and areas in this CRS are true to a few parts per million.
    metric_epsg: int = 4548
    # lon_min, lat_min, lon_max, lat_max; points outside are refused as "outside the city".
    bbox: tuple[float, float, float, float] = (116.95, 36.55, 117.25, 36.75)
    center: tuple[float, float] = (36.665, 117.07)  # lat, lon for maps


class ApiSettings(BaseSettings):
    """HTTP server settings."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    max_page_size: int = 10_000
    max_upload_mb: int = 50


class OgcSettings(BaseSettings):
    """OGC API Features and Tiles over the public layers (schema `pub`)."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_OGC_", extra="ignore")

    # The OGC routes read through their own asyncpg pool (tipg is async), kept small because
    # the SQLAlchemy pool serves everything else.
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> OgcSettings:
        """The pool cannot keep more connections open than it may have."""
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(f"OGC pool_min_size {self.pool_min_size} is above "
                             f"pool_max_size {self.pool_max_size}")
        return self


class Settings(BaseSettings):
    """All settings of one citygrid process."""

    model_config = SettingsConfigDict(extra="ignore")

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    city: CitySettings = Field(default_factory=CitySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    ogc: OgcSettings = Field(default_factory=OgcSettings)
