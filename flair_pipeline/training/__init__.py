"""Training the FLAIR baselines: records, samples, statistics, the Lightning module, the run."""
