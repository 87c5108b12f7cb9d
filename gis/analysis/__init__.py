"""Analyses leaders read: dark streets, station coverage, hotspots, cover risk, indicators.

Each module takes a session first and keyword-only options, reads only, and never commits.
May import gis.platform and gis.geo only; never gis.dispatch, gis.public or gis.demo.
"""
