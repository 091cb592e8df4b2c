"""Assets by stage: sources, dataset (later: sentinel2, training, evaluation)."""
