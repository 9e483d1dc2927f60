"""The analysis: uptake statistics, expected uptake, gap flags, clusters, inequality,
disclosure control and site selection. Pure functions over (Geo)DataFrames and arrays."""
