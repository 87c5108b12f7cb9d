"""Field work on the phone (城管通): when an action queued offline was really made.

acted_at   the phone's stamp on a queued action, clamped to what can be true, and its record
"""
