"""The method itself, torch only: which matrices (targets), their SVD (svd), how many
directions each freezes (ranks, importance) and the constraint that keeps them (constraint)."""
