"""Gateway micro-benchmark (issue #13): accepted POST /api/v1/plans per second, publish acknowledged."""
