"""Remove and retrain (ROAR, Hooker et al. 2019) with its controls: pixel removal, the mask-only
leakage check, and the per-cell table."""
