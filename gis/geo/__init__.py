"""Coordinates: the storage SRID and metric CRS (`crs`), GCJ-02 / BD-09 conversion (`coords`).

Also the staff vector tiles (`tiles`, `tile_layers`, `basemap_tiles`): MVT built by PostGIS.

May import gis.platform only.
"""
