"""Routes of gis.dispatch: routing (`/route`, `/route/batch`, the `/dispatch` desk) and `/cases`."""
