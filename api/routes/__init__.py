"""Routers, named after the gis capability they serve: `<capability>.py` when it has one router,
`<capability>/` when it has several; `layers` and `pages` serve the layers and maps packages.
"""
