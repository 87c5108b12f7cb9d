"""Routes of gis.public: the convenience map (`/public...`) and Open311 (`/open311/v2/...`)."""
