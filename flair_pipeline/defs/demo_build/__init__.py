"""The demo's dataset build (defs.yaml); a package so that dvc.yaml's stages skip it."""
