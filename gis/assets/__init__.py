"""Component upkeep: state changes of streetlights and manhole covers (`upkeep`).

May import gis.platform only.
"""
