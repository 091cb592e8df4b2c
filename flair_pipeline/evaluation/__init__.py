"""Evaluation and mapping: FLAIR's metric, its figures, and large-area prediction.

- :mod:`.metrics`: the summed 13 x 13 confusion matrix, IoU/mIoU, accuracy, F1, per domain.
- :mod:`.evaluate`: score folders of PRED_/MSK_ GeoTIFFs, write metrics.json.
- :mod:`.plots`: the confusion-matrix figure, CSV tables, image | truth | prediction rows.
- :mod:`.predict`: map an ortho of any size with a trained model, streamed by blocks.

Only the light metric API is imported here; predict pulls in torch when imported itself.
"""

from flair_pipeline.metrics import (
    ConfusionAccumulator,
    Scores,
    confusion_matrix,
    domain_of,
)

__all__ = ["ConfusionAccumulator", "Scores", "confusion_matrix", "domain_of"]
