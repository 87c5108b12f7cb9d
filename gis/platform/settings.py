"""Settings, one small class per concern, read from the environment (prefix CITYGRID_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class DatabaseSettings(BaseSettings):
    """Where the PostGIS database is: an external URL, or the project's private cluster."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_", extra="ignore")

    # DATABASE_URL is honoured too because most hosting tools set exactly that name.
    url: str | None = Field(
        default=None, validation_alias=AliasChoices("CITYGRID_DATABASE_URL", "DATABASE_URL")
    )
    name: str = Field(default="citygrid", validation_alias="CITYGRID_DB_NAME")
    pool_size: int = Field(default=5, validation_alias="CITYGRID_DB_POOL_SIZE")
    # The web app never runs as the owner above: staff routes and anonymous writes connect as
    # the runtime role, anonymous reads as the public role (both created by migration 0012).
    # By default their URLs are the owner's with the user (and password) swapped; set full
    # URLs instead when an external server wants other hosts or passwords.
    app_url: str | None = Field(default=None, validation_alias="CITYGRID_DB_APP_URL")
    public_url: str | None = Field(default=None, validation_alias="CITYGRID_DB_PUBLIC_URL")
    app_password: str | None = Field(default=None, validation_alias="CITYGRID_DB_APP_PASSWORD")
    public_password: str | None = Field(default=None,
                                        validation_alias="CITYGRID_DB_PUBLIC_PASSWORD")
    # Per-statement limits, so one slow or hostile query cannot hold a pool connection.
    statement_timeout_ms: int = Field(default=60_000, ge=100,
                                      validation_alias="CITYGRID_DB_STATEMENT_TIMEOUT_MS")
    public_statement_timeout_ms: int = Field(
        default=5_000, ge=100, validation_alias="CITYGRID_DB_PUBLIC_STATEMENT_TIMEOUT_MS")
    idle_in_transaction_timeout_ms: int = Field(
        default=60_000, ge=100, validation_alias="CITYGRID_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS")

    @field_validator("url", "app_url", "public_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        """Accept postgres:// and postgresql:// and use the psycopg2 driver."""
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg2://" + value[len(prefix) :]
        return value


class ReplicaSettings(BaseSettings):
    """Read replicas (gis.platform.replicas): where they are and how stale a read may be."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_DB_REPLICA_", extra="ignore")

    # Comma list of standby URLs for an external database (user and password are replaced by
    # the runtime roles', as for the primary); unset: the private cluster's replicas
    # (`citygrid db replica add`) are used.
    urls: str | None = None
    max_lag_s: float = Field(default=5.0, ge=0)  # a standby further behind is not read from
    down_s: float = Field(default=30.0, ge=0)  # a standby that failed is skipped this long
    check_s: float = Field(default=1.0, ge=0)  # how often a standby's replay lag is measured

    def url_list(self) -> list[str]:
        """The configured standby URLs (psycopg2 driver)."""
        found = [u.strip() for u in (self.urls or "").split(",") if u.strip()]
        return ["postgresql+psycopg2://" + u.split("://", 1)[1]
                if u.startswith(("postgres://", "postgresql://")) else u for u in found]


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
    # The centre's own district: addresses naming no district are read as in it, and with
    # CITYGRID_CITY_DISTRICT_CODE alone (the old setting) the deployment serves only it.
    district_code: str = "370102"
    # Division-code prefix of what the deployment serves (CITYGRID_CITY_CODE): 4 digits for a
    # whole city (3701 = 济南市, every district loaded is in the city), 6 for one district.
    code: str = Field(default="3701", pattern=r"^\d{4}(\d{2})?$")
    # The districts loaded (CITYGRID_CITY_DISTRICTS, JSON list): an address in another district
    # of the city is refused as elsewhere; empty = every district under `code`.
    districts: tuple[str, ...] = ("370102", "370103", "370105")
    # CGCS2000 / 3-degree Gauss-Kruger CM 117E: Jinan lies on the central meridian, so
    # lengths and areas in this CRS are true to a few parts per million.
    metric_epsg: int = 4548
    # lon_min, lat_min, lon_max, lat_max; points outside are refused as "outside the city".
    # The default holds 历下区 and its demo neighbours 市中区 and 天桥区.
    bbox: tuple[float, float, float, float] = (116.80, 36.48, 117.25, 36.87)
    center: tuple[float, float] = (36.665, 117.07)  # lat, lon for maps
    # Times on pages are shown in this IANA zone, 24-hour (CITYGRID_CITY_TIME_ZONE).
    time_zone: str = "Asia/Shanghai"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as "
                             "Asia/Shanghai") from None
        return value
    # Case numbers are <prefix><city date YYYYMMDD><serial of the day, 4+ digits>, e.g.
    # LX202612030001 (LX = 历下); the database function next_case_no (migration 0020) hands
    # out the serial.
    case_prefix: str = Field(default="LX", pattern=r"^[A-Z]{1,6}$")
    # Each district's own prefix (CITYGRID_CITY_CASE_PREFIXES, JSON object of 6-digit district
    # code -> letters), chosen from the grid a new case routes to; a district not named here
    # gets `case_prefix`. The default is the demo city's (历下 LX, 市中 SZ, 天桥 TQ).
    case_prefixes: dict[str, str] = {"370102": "LX", "370103": "SZ", "370105": "TQ"}

    @field_validator("case_prefixes")
    @classmethod
    def _district_prefixes(cls, value: dict[str, str]) -> dict[str, str]:
        import re
        for code, prefix in value.items():
            if not re.fullmatch(r"\d{6}", code) or not re.fullmatch(r"[A-Z]{1,6}", prefix):
                raise ValueError(f"case prefix {code!r}: {prefix!r} needs a 6-digit district "
                                 "code and 1-6 capital letters")
        if len(set(value.values())) < len(value):
            raise ValueError("two districts share a case prefix; each needs its own")
        return value

    @model_validator(mode="after")
    def _one_prefix_when_only_it_is_set(self) -> CitySettings:
        # A deployment that set CITYGRID_CITY_CASE_PREFIX before the per-district prefixes
        # keeps numbering every case with it.
        if "case_prefix" in self.model_fields_set and "case_prefixes" not in self.model_fields_set:
            self.case_prefixes = {}
        return self

    def case_prefix_for(self, grid_code: str | None) -> str:
        """The case-number prefix of the district a grid code lies in (else `case_prefix`)."""
        return self.case_prefixes.get((grid_code or "")[:6], self.case_prefix)

    @model_validator(mode="after")
    def _one_district_when_only_it_is_set(self) -> CitySettings:
        # Deployments configured before the whole city keep serving their one district.
        if "district_code" in self.model_fields_set and "code" not in self.model_fields_set:
            self.code = self.district_code
            if "districts" not in self.model_fields_set:
                self.districts = (self.district_code,)
        return self

    def serves(self, division_code: str) -> bool:
        """Whether a district (6-digit division code) lies in what this deployment serves."""
        return division_code.startswith(self.code) and (
            not self.districts or division_code in self.districts)


class ApiSettings(BaseSettings):
    """HTTP server settings."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    max_page_size: int = 10_000
    max_upload_mb: int = 50  # file uploads: layer import, batch routing
    # Every other request body (JSON). A zone of 10,000 vertices is about 300 KB.
    max_body_kb: int = Field(default=1024, ge=1)
    # The address users reach the app at (https://citygrid.example.gov.cn), when a proxy in
    # front changes scheme, host or port: cross-site checks compare a request's Origin with it
    # (else with the request's own scheme and Host), and https turns on Secure cookies.
    public_url: str | None = None
    # Secure flag on the login cookie; unset follows public_url (true when it is https).
    cookie_secure: bool | None = None
    # Sign-in throttling (in process): failures a username / a client address may make within
    # the window before each further failure locks it, for lockout_s doubling up to max.
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_window_min: float = Field(default=15, gt=0)
    login_lockout_s: float = Field(default=30, gt=0)
    login_max_lockout_s: float = Field(default=900, gt=0)
    # Sign-in failures and public report quotas counted in PostgreSQL as well, so every app
    # process and host shares one budget (gis.access.shared_throttle); off only in tests that
    # share one database between unrelated clients.
    shared_throttle: bool = True
    # Analysis results reused while their input tables are unchanged (gis.analysis.
    # result_cache); results that depend on the clock are reused this many seconds at most.
    analysis_cache_seconds: float = Field(default=300, ge=0)
    analysis_cache_entries: int = Field(default=64, ge=0)
    # After an edit, the case-driven analyses (reports, indicators, hotspots, cover risk)
    # answer with their previous result (at most this old, saying when it was computed) while
    # the new one is computed in the background; 0 computes in the request instead.
    analysis_stale_seconds: float = Field(default=300, ge=0)
    # The default analysis views computed right after startup (api/analysis_warmup.py).
    warm_analyses: bool = True
    # Idempotency-Key answers are kept this long (api/idempotency.py): a phone offline longer
    # resends as a new write; older keys are purged a few at a time on later keyed writes.
    idempotency_keep_days: float = Field(default=7, gt=0)

    @field_validator("public_url")
    @classmethod
    def _origin_only(cls, value: str | None) -> str | None:
        """Keep scheme://host[:port] (lower case, default port dropped); refuse anything else."""
        if not value:
            return None
        parts = urlsplit(value.strip())
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"CITYGRID_API_PUBLIC_URL {value!r} has a bad port") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"CITYGRID_API_PUBLIC_URL {value!r} must be http(s)://host[:port]")
        scheme, host = parts.scheme.lower(), parts.hostname.lower()
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        default = {"http": 80, "https": 443}[scheme]
        return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies carry the Secure flag (only sent over HTTPS)."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return bool(self.public_url and self.public_url.startswith("https://"))


BaseMap = Literal["none", "osm", "tianditu", "amap"]


class PublicMapSettings(BaseSettings):
    """The public convenience map: base map, walking-distance model, result sizes."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_PUBLIC_", extra="ignore")

    # "none" (default) draws district outlines as the background and needs no network;
    # osm / tianditu / amap load tiles from the internet (amap tiles are GCJ-02, so the page
    # shifts every feature WGS84 -> GCJ-02 for display).
    basemap: BaseMap = "none"
    tianditu_key: str | None = None
    # Optional local mirror for the chosen base map, e.g. http://tiles.intranet/{z}/{x}/{y}.png
    tile_url: str | None = None
    # Walking distance = straight line x this factor. 1.3 is the usual route-circuity figure
    # for dense Chinese urban street grids (measured ratios cluster around 1.2-1.4); the demo
    # street network is simulated, so routing along it would only look more precise.
    walk_detour_factor: float = Field(default=1.3, ge=1.0, le=3.0)
    walk_speed_m_per_min: float = Field(default=75.0, gt=0)  # 4.5 km/h
    nearest_limit: int = Field(default=5, ge=1, le=50)

    @field_validator("basemap", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        """Accept OSM / Tianditu / AMap in any case."""
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tianditu_needs_key(self) -> PublicMapSettings:
        """Tianditu serves no tiles without a key: refuse the setting instead of a grey map."""
        if self.basemap == "tianditu" and not (self.tianditu_key or self.tile_url):
            raise ValueError("basemap 'tianditu' needs CITYGRID_PUBLIC_TIANDITU_KEY "
                             "(or CITYGRID_PUBLIC_TILE_URL for a local mirror)")
        return self


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


class MediaSettings(BaseSettings):
    """Case photos: where they are kept and the limits of an upload (gis.media)."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_MEDIA_", extra="ignore")

    # Content-addressed files (originals, thumbnails, EXIF-free public copies), never served
    # from this path directly.
    dir: Path = PROJECT_ROOT / ".citygrid" / "media"
    max_mb: float = Field(default=15, gt=0, le=50)  # one photo; phones write 2-8 MB
    max_per_case: int = Field(default=40, ge=1)
    # Decompression-bomb guard: a 4 MB PNG may unpack to gigabytes; phones shoot <= 50 MP.
    max_pixels: int = Field(default=60_000_000, ge=1)
    thumb_px: int = Field(default=320, ge=32, le=2048)
    # 1280: a phone photo (>= 2560 px) then decodes at half scale, twice as fast (bench/media.py).
    public_px: int = Field(default=1280, ge=64, le=8192)
    # A photo whose EXIF position is this far from the case, or whose EXIF time is this long
    # before the report, is flagged (not refused).
    far_m: float = Field(default=200, gt=0)
    before_report_h: float = Field(default=24, ge=0)
    # Residents' 随手拍: reports one client address may post per hour (in process).
    public_reports_per_hour: int = Field(default=10, ge=1)


class StaffMapSettings(BaseSettings):
    """Staff map pages' background: the city's own vector base map, or a tile mirror."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_MAP_", extra="ignore")

    # Unset: the offline base map drawn from the city's own data (/tiles/basemap). Set: raster
    # tiles from this template replace it, e.g. an intranet Tianditu mirror
    # http://tdt.intranet/vec_w/{z}/{x}/{y}.png or AMap http://amap.intranet/{z}/{x}/{y}.png.
    tile_url: str | None = None
    tile_labels_url: str | None = None  # a second layer on top (Tianditu's cva annotation)
    tile_subdomains: str = ""  # values of {s}, e.g. "1234"
    # gcj02 for AMap/Tencent tiles: the page shifts the tiles onto WGS84 data at the city.
    tile_datum: Literal["wgs84", "gcj02"] = "wgs84"
    tile_max_zoom: int = Field(default=18, ge=1, le=22)
    tile_attribution: str = ""
    # Render /map's first-view base-map tiles into the tile cache after startup (api/tile_warmup).
    warm_tiles: bool = True

    @field_validator("tile_url", "tile_labels_url")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        """A tile URL needs {z}, {x} and {y}; empty means unset."""
        if value is None or not value.strip():
            return None
        if not all(part in value for part in ("{z}", "{x}", "{y}")):
            raise ValueError(f"tile URL {value!r} needs {{z}}, {{x}} and {{y}}")
        return value.strip()


class Settings(BaseSettings):
    """All settings of one citygrid process."""

    model_config = SettingsConfigDict(extra="ignore")

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    replicas: ReplicaSettings = Field(default_factory=ReplicaSettings)
    city: CitySettings = Field(default_factory=CitySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    public: PublicMapSettings = Field(default_factory=PublicMapSettings)
    ogc: OgcSettings = Field(default_factory=OgcSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    staff_map: StaffMapSettings = Field(default_factory=StaffMapSettings)
