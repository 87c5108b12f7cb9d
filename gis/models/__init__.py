"""The ORM mapping (GeoAlchemy2) of the tables the migrations create (`tables`).

May import gis.platform and gis.geo only.
"""
