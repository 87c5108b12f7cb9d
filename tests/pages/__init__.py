"""Page budget tests (issue 15): tile size, caches, cache headers, readiness."""
