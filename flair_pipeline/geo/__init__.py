"""Reading georeferenced inputs, below every stage.

Reading georeferenced inputs, below every stage: CRS identity, raster tiles as one GDAL VRT,
pixel-grid agreement, surface models (DSM/DTM) and label tables of other nomenclatures.

Both the raw-input readers (:mod:`flair_pipeline.sources`) and the dataset build
(:mod:`flair_pipeline.dataset`) use these; nothing here imports a stage.
"""
