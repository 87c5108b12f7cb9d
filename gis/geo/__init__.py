"""Coordinates: the storage SRID and metric CRS (`crs`), GCJ-02 / BD-09 conversion (`coords`).

May import gis.platform only.
"""
