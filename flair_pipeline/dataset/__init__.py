"""Turning raw domains into the FLAIR release layout: patches, masks, splits, metadata."""
