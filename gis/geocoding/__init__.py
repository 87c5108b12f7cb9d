"""Geocoding (地理编码): Chinese address text in, a point, its match level and its grid out.

Owns: address normalisation and parsing (`normalize`, `parse`), the in-memory index over the
gazetteer and doorplate tables of migration 0015 (`index`), matching with a score and an
explained level (`match`), the session-facing service with grid routing and reverse geocoding
(`service`) and pre-geocoding of batch frames (`batch`). The demo city's simulated doorplates
and compounds are written by `gis.demo.addresses`.

May import: `gis.geo.coords`, `gis.platform.errors`, `gis.platform.settings`,
`gis.dispatch.routing`, `gis.dispatch.routing_settings`,
shapely / pyproj / numpy / pandas, `cpca` (administrative prefixes) and `rapidfuzz` (fuzzy
names). Nothing here commits: the caller owns the transaction.
"""
