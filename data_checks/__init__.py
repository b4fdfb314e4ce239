"""Great Expectations suites and their translation into Dagster asset check results."""
