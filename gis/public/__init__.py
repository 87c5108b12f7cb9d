"""What the public sees: the convenience map's reads of the `pub` views, Open311 GeoReport v2
with contact data masked in what it publishes (`masking`), and CQL2 filters of the published
layers checked (`cql2_check`) and compiled to bound SQL (`cql2_sql`).

May import gis.platform, gis.geo, gis.zones and gis.dispatch (Open311 posts ordinary cases).
"""
