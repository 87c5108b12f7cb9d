"""ORM models (GeoAlchemy2) mirroring the tables the migrations create.

The migrations are the source of truth: CHECK constraints, exclusion constraints and indexes
live there and are not repeated here. These classes give typed access to rows; a test compares
their columns with the migrated database so the two cannot drift apart silently.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gis.geo.crs import STORAGE_SRID


def _geom(geometry_type: str) -> Any:
    # The migration creates the GiST indexes; GeoAlchemy2 must not add its own.
    return Geometry(geometry_type=geometry_type, srid=STORAGE_SRID, spatial_index=False)


class Base(DeclarativeBase):
    """Declarative base of every citygrid table."""


class ComponentClass(Base):
    """部件小类 component minor class (code table, e.g. 0118 路灯)."""

    __tablename__ = "component_classes"

    code: Mapped[str] = mapped_column(CHAR(4), primary_key=True)
    major: Mapped[str] = mapped_column(CHAR(2))
    name_zh: Mapped[str] = mapped_column(Text)
    default_owner: Mapped[str | None] = mapped_column(Text)


class EventCategory(Base):
    """事件小类 event category (code table, e.g. 0505 占道经营)."""

    __tablename__ = "event_categories"

    code: Mapped[str] = mapped_column(CHAR(4), primary_key=True)
    major: Mapped[str] = mapped_column(CHAR(2))
    name_zh: Mapped[str] = mapped_column(Text)


class District(Base):
    """区县 district."""

    __tablename__ = "districts"

    code: Mapped[str] = mapped_column(CHAR(6), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    geom: Mapped[WKBElement] = mapped_column(_geom("MULTIPOLYGON"))


class Subdistrict(Base):
    """街道 subdistrict."""

    __tablename__ = "subdistricts"

    code: Mapped[str] = mapped_column(CHAR(9), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    district_code: Mapped[str] = mapped_column(CHAR(6), ForeignKey("districts.code"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("MULTIPOLYGON"))


class Community(Base):
    """社区 community."""

    __tablename__ = "communities"

    code: Mapped[str] = mapped_column(CHAR(12), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    subdistrict_code: Mapped[str] = mapped_column(CHAR(9), ForeignKey("subdistricts.code"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("MULTIPOLYGON"))


class GridCell(Base):
    """单元网格 unit grid cell; area_m2 is computed by the database."""

    __tablename__ = "grid_cells"

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    community_code: Mapped[str] = mapped_column(CHAR(12), ForeignKey("communities.code"))
    area_m2: Mapped[float | None] = mapped_column(
        Float, Computed("ST_Area(geom::geography)", persisted=True))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POLYGON"))


class GridOwner(Base):
    """Owner of a grid cell over [valid_from, valid_to); periods never overlap per grid."""

    __tablename__ = "grid_owners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_code: Mapped[str] = mapped_column(
        String(15), ForeignKey("grid_cells.code", ondelete="CASCADE"))
    owner_name: Mapped[str] = mapped_column(Text)
    owner_kind: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)


class Station(Base):
    """社区城管工作站 community station."""

    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(Text)
    staff: Mapped[int] = mapped_column(Integer)
    opening_hours: Mapped[str] = mapped_column(Text)
    community_code: Mapped[str | None] = mapped_column(CHAR(12), ForeignKey("communities.code"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))


class Road(Base):
    """道路 road segment with its street class."""

    __tablename__ = "roads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    street_class: Mapped[str] = mapped_column(Text)
    width_m: Mapped[float] = mapped_column(Float)
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("LINESTRING"))


class StallZone(Base):
    """摊群点 stall zone; version/updated_at come from migration 0004."""

    __tablename__ = "stall_zones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    zone_type: Mapped[str] = mapped_column(Text)
    district_code: Mapped[str] = mapped_column(CHAR(6), ForeignKey("districts.code"))
    time_slots: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    seasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'"))
    capacity: Mapped[int] = mapped_column(Integer)
    operator: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'draft'"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POLYGON"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                    server_default=text("now()"))
    # Approved for [valid_from, valid_to) (migration 0023); no valid_to: until retired.
    valid_from: Mapped[dt.date] = mapped_column(Date, server_default=text("current_date"))
    valid_to: Mapped[dt.date | None] = mapped_column(Date)


class Streetlight(Base):
    """路灯 streetlight (component class 0118)."""

    __tablename__ = "streetlights"

    code: Mapped[str] = mapped_column(CHAR(16), primary_key=True)
    state: Mapped[str] = mapped_column(Text, server_default=text("'intact'"))
    lit: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    in_use: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    owner: Mapped[str] = mapped_column(Text)
    maintainer: Mapped[str] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(String(15), ForeignKey("grid_cells.code"))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                     server_default=text("now()"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                    server_default=text("now()"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))


class ManholeCover(Base):
    """井盖 manhole cover (classes 0101-0114); cover_class is computed from the code."""

    __tablename__ = "manhole_covers"

    code: Mapped[str] = mapped_column(CHAR(16), primary_key=True)
    cover_class: Mapped[str | None] = mapped_column(
        CHAR(4), Computed("substr(code, 7, 4)", persisted=True),
        ForeignKey("component_classes.code"))
    state: Mapped[str] = mapped_column(Text, server_default=text("'intact'"))
    in_use: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    owner: Mapped[str] = mapped_column(Text)
    maintainer: Mapped[str] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(String(15), ForeignKey("grid_cells.code"))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                     server_default=text("now()"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                    server_default=text("now()"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))


class Facility(Base):
    """便民设施 public facility."""

    __tablename__ = "facilities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(Text)
    opening_hours: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))


class Case(Base):
    """案件 case; the workflow columns come from migration 0003."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_no: Mapped[str] = mapped_column(Text, unique=True)
    category_type: Mapped[str] = mapped_column(Text)
    category_code: Mapped[str] = mapped_column(CHAR(4))
    channel: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    raw_x: Mapped[float] = mapped_column(Float)
    raw_y: Mapped[float] = mapped_column(Float)
    raw_crs: Mapped[str] = mapped_column(Text)
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default=text("'collected'"))
    grid_code: Mapped[str | None] = mapped_column(String(15), ForeignKey("grid_cells.code"))
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))
    urgency: Mapped[str] = mapped_column(Text, server_default=text("'normal'"))
    area_type: Mapped[str] = mapped_column(Text, server_default=text("'city'"))
    dispatch_due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    verify_due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    due_approximate: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    reworked_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    extended_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    satisfaction: Mapped[str | None] = mapped_column(Text)
    surveyed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    replied_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    repeat_group_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("cases.id"))
    repeat_of: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("cases.id"))
    supervised: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Migration 0020: the address as typed, how it was geocoded, the snap, a renumbered case's
    # old number.
    address: Mapped[str | None] = mapped_column(Text)
    geocode_level: Mapped[str | None] = mapped_column(Text)
    geocode_score: Mapped[float | None] = mapped_column(Float)
    snapped: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    snap_distance_m: Mapped[float | None] = mapped_column(Float)
    former_case_no: Mapped[str | None] = mapped_column(Text, unique=True)


# Table name -> model, for code that works table by table (import, tests).
MODELS: dict[str, type[Base]] = {
    mapper.class_.__tablename__: mapper.class_ for mapper in Base.registry.mappers
}
