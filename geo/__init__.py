"""Geospatial data: reading, validating, joining and projecting inputs; catchments,
street networks and the synthetic demo city. No HTTP and no statistics here."""
