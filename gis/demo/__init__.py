"""The deterministic demo city: Jinan 历下区 (370102) and its neighbours 市中区 (370103) and
天桥区 (370105, lighter density, gis.demo.neighbours); real outlines and division names,
simulated everything else.

Generation (pure functions returning GeoDataFrames, no database) lives in one small module per
layer; `gis.demo.load.load_demo` writes the result to PostGIS in one transaction.

May import every other capability of gis; only cli and tests import it.
"""

DISTRICT_CODE = "370102"
DISTRICT_NAME = "历下区"
DEFAULT_SEED = 20261122
# The demo city is Jinan, which lies on 117°E: CGCS2000 / 3-degree GK CM 117E is exact there.
# Kept as a constant (not CitySettings.metric_epsg) because the demo is Jinan whatever city a
# deployment is configured for.
METRIC_EPSG = 4548
STORAGE_EPSG = 4326
