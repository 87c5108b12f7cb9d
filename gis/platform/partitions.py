"""Monthly partitions of cases and their history (migrations 0027, 0038): ensure, archive.

`cases` (by `reported_at`), `case_transitions` and `audit_log` (by `at`) are partitioned by
month in city time (China has one zone; the bounds are made by the SQL function
`citygrid_month_partition`, which also gives every partition its parent's grants, row-level
security and TRUNCATE guard). This module keeps months ahead of the clock, moves rows that
fell into the DEFAULT partition into their own month, and archives months past the retention
to GeoParquet before dropping them. Run it as the schema owner (`citygrid db partitions ...`);
the app roles cannot.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from gis.platform.db import transaction
from gis.platform.errors import BackupError, ConflictError, InvalidInputError
from gis.platform.settings import PROJECT_ROOT

# Must match the zone of citygrid_month_partition (migration 0027).
PARTITION_ZONE = ZoneInfo("Asia/Shanghai")
PARTITIONED_TABLES = ("cases", "case_transitions", "audit_log")
# A case still being worked on is not history: its month stays until every case in it ends.
_ENDED_STATUSES = ("closed", "evaluated", "rejected")
_MONTH_SUFFIX = re.compile(r"_(\d{4})(\d{2})$")
_BATCH_ROWS = 50_000


class PartitionSettings(BaseSettings):
    """Monthly history partitions: how far ahead to create, how long to keep, where to archive."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_PARTITIONS_", extra="ignore")

    months_ahead: int = Field(default=3, ge=1, le=24)
    # Months kept in the database before the current one; older months go to the archive.
    retention_months: int = Field(default=36, ge=1)
    archive_dir: Path = PROJECT_ROOT / ".citygrid" / "archive" / "history"


@dataclass(frozen=True)
class Partition:
    """One partition of a partitioned history table."""

    table: str
    name: str
    month: dt.date | None  # first day of the month; None for the DEFAULT partition
    rows: int
    total_bytes: int


@dataclass(frozen=True)
class ArchivedMonth:
    """A month written to GeoParquet, verified, detached and dropped."""

    table: str
    partition: str
    month: dt.date
    rows: int
    path: Path
    # Rows of other tables that referred to the month, archived with it: (table, rows, file).
    dependents: tuple[tuple[str, int, Path], ...] = ()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def city_month(moment: dt.datetime | dt.date | None = None) -> dt.date:
    """First day of the month (city time) holding `moment`; now when None."""
    if moment is None:
        moment = dt.datetime.now(PARTITION_ZONE)
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(PARTITION_ZONE).date()
    return moment.replace(day=1)


def add_months(month: dt.date, count: int) -> dt.date:
    """The first day of the month `count` months after `month` (negative: before)."""
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a partition month as aware datetimes in city time."""
    start = dt.datetime(month.year, month.month, 1, tzinfo=PARTITION_ZONE)
    following = add_months(month, 1)
    return start, dt.datetime(following.year, following.month, 1, tzinfo=PARTITION_ZONE)


def _check_table(session: Connection | Session, table: str) -> str:
    key = session.execute(text("""
        SELECT a.attname FROM pg_partitioned_table p
        JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
        WHERE p.partrelid = to_regclass(:t)"""), {"t": table}).scalar()
    if key is None:
        raise InvalidInputError(f"{table!r} is not a partitioned table")
    return str(key)


def list_partitions(session: Session, *,
                    tables: Sequence[str] = PARTITIONED_TABLES) -> list[Partition]:
    """Every partition of `tables` with its month, exact row count and size on disk."""
    found = []
    for table in tables:
        _check_table(session, table)
        rows = session.execute(text("""
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound,
                   pg_total_relation_size(c.oid) AS size
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"""), {"t": table}).all()
        for name, bound, size in rows:
            match = _MONTH_SUFFIX.search(name)
            month = (None if bound == "DEFAULT" or match is None
                     else dt.date(int(match[1]), int(match[2]), 1))
            # The name comes from the catalog; quoted all the same.
            count = session.execute(text(f"SELECT count(*) FROM {_ident(name)}")).scalar_one()
            found.append(Partition(table, name, month, int(count), int(size)))
    return found


def ensure_partitions(session: Session, *, months_ahead: int, today: dt.date | None = None,
                      tables: Sequence[str] = PARTITIONED_TABLES) -> list[str]:
    """Create this month and `months_ahead` more, and a month for every row left in DEFAULT.

    Rows of a month without a partition wait in the DEFAULT partition (a late import, a clock
    set wrong); giving them their month moves them there in the same transaction. Returns the
    names of the partitions created.
    """
    current = city_month(today)
    created = []
    for table in tables:
        key = _check_table(session, table)
        wanted = {add_months(current, n) for n in range(months_ahead + 1)}
        default = session.execute(text("SELECT to_regclass(:d)"),
                                  {"d": f"{table}_default"}).scalar()
        if default is not None:
            stray = session.execute(text(
                f"SELECT DISTINCT date_trunc('month', {_ident(key)} AT TIME ZONE :z)::date "
                f"FROM {_ident(table + '_default')}"), {"z": PARTITION_ZONE.key}).scalars()
            wanted.update(stray)
        for month in sorted(wanted):
            name = f"{table}_{month:%Y%m}"
            exists = session.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar()
            if exists is None:
                session.execute(text("SELECT citygrid_month_partition(to_regclass(:t), :m)"),
                                {"t": table, "m": month})
                created.append(name)
    return created


def ensure_span(conn: Connection | Session, table: str, first: dt.datetime,
                last: dt.datetime) -> None:
    """Create every city-month of `table` from `first` to `last` (a bulk load's range), so its
    rows go straight to their month instead of waiting in DEFAULT to be moved."""
    _check_table(conn, table)
    conn.execute(text(
        "SELECT citygrid_month_partition(to_regclass(:t), m::date) FROM generate_series("
        "date_trunc('month', CAST(:first AS timestamptz) AT TIME ZONE :z), "
        "date_trunc('month', CAST(:last AS timestamptz) AT TIME ZONE :z), "
        "interval '1 month') AS m"),
        {"t": table, "first": first, "last": last, "z": PARTITION_ZONE.key})


def expired_partitions(session: Session, *, retention_months: int,
                       today: dt.date | None = None,
                       tables: Sequence[str] = PARTITIONED_TABLES) -> list[Partition]:
    """Month partitions that ended more than `retention_months` months before this month."""
    if retention_months < 1:
        raise InvalidInputError(f"retention_months {retention_months} must be at least 1")
    oldest_kept = add_months(city_month(today), -retention_months)
    return [p for p in list_partitions(session, tables=tables)
            if p.month is not None and p.month < oldest_kept]


def _columns(session: Session, relation: str) -> list[tuple[str, str, int | None]]:
    """(name, type, srid) of each column of `relation`, in table order."""
    rows = session.execute(text("""
        SELECT a.attname, t.typname,
               CASE WHEN t.typname = 'geometry' THEN postgis_typmod_srid(a.atttypmod) END
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = to_regclass(:r) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum"""), {"r": relation}).all()
    return [(str(n), str(t), None if s is None else int(s)) for n, t, s in rows]


_ARROW_TYPES = {
    "int8": pa.int64(), "int4": pa.int32(), "int2": pa.int16(), "float8": pa.float64(),
    "float4": pa.float32(), "bool": pa.bool_(), "date": pa.date32(),
    "timestamptz": pa.timestamp("us", tz="UTC"), "timestamp": pa.timestamp("us"),
    "geometry": pa.binary(),
}


def _select_expression(name: str, typname: str) -> str:
    column = _ident(name)
    if typname == "geometry":
        return f"ST_AsBinary({column}) AS {column}"
    if typname in _ARROW_TYPES:
        return column
    return f"{column}::text AS {column}"  # jsonb, text, char, numeric: as text


def _geo_metadata(columns: list[tuple[str, str, int | None]]) -> dict[bytes, bytes]:
    geometries = [(n, srid) for n, t, srid in columns if t == "geometry"]
    if not geometries:
        return {}
    described = {}
    for name, srid in geometries:
        entry: dict[str, object] = {"encoding": "WKB", "geometry_types": []}
        if srid not in (None, 0, 4326):
            from pyproj import CRS  # only for tables stored outside WGS84

            entry["crs"] = CRS.from_epsg(srid).to_json_dict()
        # SRID 4326 in PostGIS is stored lon/lat: GeoParquet's default CRS (OGC:CRS84).
        described[name] = entry
    geo = {"version": "1.1.0", "primary_column": geometries[0][0], "columns": described}
    return {b"geo": json.dumps(geo).encode()}


def _batches(session: Session, query: str) -> Iterator[list[tuple]]:
    # A server-side cursor: a month at city scale is millions of rows.
    raw: Any = session.connection().connection.dbapi_connection  # psycopg2 connection
    cursor = raw.cursor(name="citygrid_partition_archive")
    try:
        cursor.execute(query)
        while rows := cursor.fetchmany(_BATCH_ROWS):
            yield rows
    finally:
        cursor.close()


def _write_parquet(session: Session, *, relation: str, path: Path, where: str = "") -> int:
    """Rows of `relation` (quoted; alias c) matching `where` into `path`; rows written."""
    columns = _columns(session, relation)
    schema = pa.schema([(n, _ARROW_TYPES.get(t, pa.string())) for n, t, _ in columns],
                       metadata=_geo_metadata(columns))
    order = "id" if any(n == "id" for n, _, _ in columns) else "1"
    query = (f"SELECT {', '.join(_select_expression(n, t) for n, t, _ in columns)} "
             f"FROM {relation} c {where} ORDER BY {order}")
    written = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for rows in _batches(session, query):
            arrays = [pa.array([bytes(v) if isinstance(v, memoryview) else v for v in values],
                               type=field.type)
                      for values, field in zip(zip(*rows, strict=True), schema, strict=True)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            written += len(rows)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return written


def _dependents(session: Session, *, table: str, partition: str) -> list[tuple[str, str, int]]:
    """Rows of other tables whose foreign keys point into `partition`: (table, WHERE, count)."""
    keys = session.execute(text("""
        SELECT c.conrelid::regclass::text AS child,
               array_agg(a.attname ORDER BY k.n) AS child_columns,
               array_agg(r.attname ORDER BY k.n) AS parent_columns
        FROM pg_constraint c
        CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(ck, pk, n)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.ck
        JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = k.pk
        WHERE c.contype = 'f' AND c.confrelid = to_regclass(:t) AND c.conparentid = 0
        GROUP BY c.oid, c.conrelid"""), {"t": table}).all()
    found = []
    for child, child_columns, parent_columns in keys:
        # Names come from the catalog.
        pairs = " AND ".join(f"c.{_ident(cc)} = p.{_ident(pc)}"
                             for cc, pc in zip(child_columns, parent_columns, strict=True))
        where = f"WHERE EXISTS (SELECT 1 FROM {_ident(partition)} p WHERE {pairs})"
        session.execute(text(f"LOCK TABLE {child} IN SHARE MODE"))
        count = session.execute(text(f"SELECT count(*) FROM {child} c {where}")).scalar_one()
        if count:
            found.append((str(child), where, int(count)))
    return found


def _open_cases(session: Session, partition: str) -> int:
    return int(session.execute(text(
        f"SELECT count(*) FROM {_ident(partition)} WHERE status <> ALL(:ended)"),
        {"ended": list(_ENDED_STATUSES)}).scalar_one())


def archive_month(session: Session, *, table: str, month: dt.date, directory: Path
                  ) -> ArchivedMonth:
    """Write one month to GeoParquet, read its row count back, then detach and drop it.

    Rows of other tables that refer to the month (case_extensions of its transitions) go with
    it, into a file of their own, `<table>_of_<month file>`, and are deleted. All rows or
    none: writes are blocked while the month is read, every file is checked against the
    table's count before anything is deleted, detached or dropped, and the caller's
    transaction commits it all (a failure before the commit leaves the rows in the
    database). Never commits.
    """
    _check_table(session, table)
    partition = f"{table}_{month:%Y%m}"
    parent = session.execute(text(
        "SELECT i.inhparent::regclass::text FROM pg_inherits i "
        "WHERE i.inhrelid = to_regclass(:p)"), {"p": partition}).scalar()
    if parent != table:
        raise InvalidInputError(f"{table} has no partition for {month:%Y-%m} ({partition})")
    session.execute(text(f"LOCK TABLE {_ident(partition)} IN SHARE MODE"))
    if table == "cases":
        still_open = _open_cases(session, partition)
        if still_open:
            raise ConflictError(f"{partition} cannot be archived: {still_open} case(s) of "
                                f"{month:%Y-%m} are still open")
    dependents = _dependents(session, table=table, partition=partition)
    for child, _, count in dependents:
        referenced = session.execute(text(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
            "AND confrelid = to_regclass(:c)"), {"c": child}).scalar_one()
        if referenced:
            raise ConflictError(f"{partition} cannot be archived: {count} row(s) of {child} "
                                "refer to it, and other tables refer to those")
    expected = session.execute(text(f"SELECT count(*) FROM {_ident(partition)}")).scalar_one()

    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{table}_{month:%Y-%m}.parquet"
    jobs = [(_ident(partition), "", int(expected), final)]
    jobs += [(child, where, count, directory / f"{child}_of_{final.name}")
             for child, where, count in dependents]
    partials = [path.with_name(path.name + ".part") for *_, path in jobs]
    try:
        for (relation, where, count, _), partial in zip(jobs, partials, strict=True):
            written = _write_parquet(session, relation=relation, path=partial, where=where)
            read_back = pq.ParquetFile(partial).metadata.num_rows
            if not written == read_back == count:
                raise BackupError(f"archive of {relation} for {partition} holds {read_back} "
                                  f"rows, wrote {written}, the table has {count}: "
                                  "nothing dropped")
        for (*_, path), partial in zip(jobs, partials, strict=True):
            os.replace(partial, path)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)

    archived_children = []
    for (child, where, count, path) in jobs[1:]:
        # The append-only guard of the child is lifted for this delete only; one BULK row in
        # the audit log stands for the rows instead of a copy of each.
        session.execute(text(f"ALTER TABLE {child} DISABLE TRIGGER USER"))
        deleted = len(session.execute(text(f"DELETE FROM {child} c {where} RETURNING 1")).all())
        session.execute(text(f"ALTER TABLE {child} ENABLE TRIGGER USER"))
        if deleted != count:
            raise BackupError(f"{child}: {deleted} rows deleted, {count} archived")
        session.execute(text(
            "INSERT INTO audit_log (actor, action, table_name, after) "
            "VALUES ('db:' || current_user, 'BULK', :t, CAST(:after AS jsonb))"),
            {"t": child, "after": json.dumps({"archived_rows": count, "file": path.name,
                                              "with": partition})})
        archived_children.append((child, count, path))
    session.execute(text(f"ALTER TABLE {_ident(table)} DETACH PARTITION {_ident(partition)}"))
    session.execute(text(f"DROP TABLE {_ident(partition)}"))
    # DETACH and DROP fire no statement trigger: tell the analysis cache the rows are gone.
    session.execute(text(
        "UPDATE data_versions SET version = nextval('data_versions_seq'), changed_at = now() "
        "WHERE table_name = ANY(:names)"),
        {"names": [table, *(c for c, _, _ in archived_children)]})
    return ArchivedMonth(table, partition, month, int(expected), final,
                         tuple(archived_children))


def archive_expired(engine: Engine, *, retention_months: int, directory: Path,
                    today: dt.date | None = None,
                    tables: Sequence[str] = PARTITIONED_TABLES,
                    kept: list[tuple[str, int]] | None = None) -> list[ArchivedMonth]:
    """Archive every month past the retention, each month in its own transaction.

    A month of cases with cases still open stays (appended to `kept` with their count).
    """
    with transaction(engine) as session:
        expired = expired_partitions(session, retention_months=retention_months, today=today,
                                     tables=tables)
    archived = []
    for part in expired:
        assert part.month is not None
        with transaction(engine) as session:
            if part.table == "cases" and (still_open := _open_cases(session, part.name)):
                if kept is not None:
                    kept.append((part.name, still_open))
                continue
            archived.append(archive_month(session, table=part.table, month=part.month,
                                          directory=directory))
    return archived
