"""Raw inputs of the pipeline: the synthetic world and readers of real sources."""
