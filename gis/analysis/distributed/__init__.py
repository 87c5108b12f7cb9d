"""City-wide analyses over long case histories, partitioned by month and run on dask.

A month of cases is one partition: a GeoParquet file of the archive (`archive`) or one month
of the cases table read from PostGIS. Each partition is reduced on a worker with the same
functions the single-process analyses use (gis.analysis.hotspots' cell totals, the indicator
cohorts of gis.analysis.indicators), the partial results are added up, and the statistic that
needs the whole period (Gi* of a hotspot run) is computed once per period. The same code runs
on a dask.distributed LocalCluster (tests, one machine) and on a remote scheduler
(`CITYGRID_DASK_SCHEDULER`, a multi-node cluster whose workers see the same archive path).
"""
