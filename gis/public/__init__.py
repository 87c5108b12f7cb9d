"""What the public sees: the convenience map's reads of the `pub` views, Open311 GeoReport v2,
and CQL2 filters of the published layers compiled to bound SQL.

May import gis.platform, gis.geo, gis.zones and gis.dispatch (Open311 posts ordinary cases).
"""
