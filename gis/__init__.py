"""The spatial core, one package per capability; imports none of layers, maps, api or cli.

platform   settings, database engine and roles, private cluster, migrations runner, backup,
           domain errors, spreadsheet-safe exports
geo        CRSs and coordinate conversion (GCJ-02, BD-09)
models     the ORM mapping of the tables the migrations create
access     users, tokens, roles, the audit log
dispatch   routing a point and a hotline file, cases, workflow, deadlines, repeats, the desk
geocoding  Chinese address text to a point and its grid, and back (uses dispatch routing)
zones      stall zone planning: schedules, rules, checks, versioned writes
analysis   dark streets, station coverage, hotspots, cover risk, indicators, reports
public     the convenience map's reads, Open311, CQL2 filters of the published layers
media      case photos: upload per workflow step, EXIF checks, thumbnails, public copies
assets     component upkeep (streetlights, manhole covers)
demo       the deterministic demo city

Each package's docstring says what it may import; import-linter (pyproject.toml) holds it.
`gis/migrations/` is not a capability but alembic's data folder (env.py, versions/), run by
`gis.platform.migrate`.
"""
