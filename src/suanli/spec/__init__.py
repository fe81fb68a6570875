"""WHAT: models, hardware, number formats and jobs, as validated frozen data."""
