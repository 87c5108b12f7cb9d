"""In-process routing engine: a versioned index of grids, owners, stations and stall zones.

Compiled from PostGIS (the source of truth) and rebuilt when `routing_version` moves; it
answers batch routing with the same rows as the SQL path (see README, "Routing engine").
"""
