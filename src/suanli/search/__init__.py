"""Searches over layouts and jobs, in-process, built on core/: fit advice now, layout search later."""
