"""The dispatcher's work: routing one point and a hotline file, cases and their workflow,
deadlines in working days, repeat complaints, and the desk's read side (`desk`).

May import gis.platform, gis.geo and gis.zones (schedules); never gis.public or gis.demo.
"""
