"""Who may do what: users, password hashing, tokens, roles (`auth`) and the audit log (`audit`).

May import gis.platform only.
"""
