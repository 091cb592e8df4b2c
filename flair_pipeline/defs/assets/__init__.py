"""Assets by stage: sources, dataset, sentinel2, training, evaluation."""
