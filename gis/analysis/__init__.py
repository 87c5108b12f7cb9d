"""Analyses leaders read: dark streets, station coverage, hotspots, cover risk, indicators.

Each module takes a session first and keyword-only options, reads only, and never commits.
"""
