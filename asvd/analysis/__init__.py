"""From scores to results: accuracy matrices and metrics (metrics), summary tables (tables),
figures (figures), subspace overlap (subspaces) and published runs (reference_runs)."""
