"""Stall zone planning: schedules, the city's rules, PostGIS checks, versioned writes.

May import gis.platform and gis.geo only; never gis.dispatch, gis.public or gis.demo.
"""
