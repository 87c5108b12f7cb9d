"""Plumbing every capability stands on: settings, engine and roles, private cluster, migrations
runner, backup, the `CityGridError` family, spreadsheet-safe exports.

May import no other capability of gis.
"""
