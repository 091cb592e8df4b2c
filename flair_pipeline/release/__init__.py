"""A dataset built here as an official FLAIR release.

A dataset built here as an official FLAIR release: the FLAIR-2 folder layout, its STAC
description and QGIS style. Sits above training (it lists patches with
:mod:`flair_pipeline.training.records`) and Sentinel-2 (product dates).
"""
