"""Stall zone planning: schedules, the city's rules, PostGIS checks, versioned writes."""
