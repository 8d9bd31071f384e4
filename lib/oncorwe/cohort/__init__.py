"""Cohort sources: the synthetic world (spec, generator, truth) and user-supplied data."""
