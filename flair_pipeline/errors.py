"""The one error family of the project.

Every error a user can cause (bad config, bad input file, bad domain id) is a
`FlairPipelineError` whose message says which file or key, what was expected and what was
found, so front doors (CLI, Dagster) can show it as is instead of a traceback.
"""


class FlairPipelineError(Exception):
    """Base class of every error a user can act on."""


class ConfigError(FlairPipelineError):
    """An invalid params.yaml, config file or `--set` override."""


class InputError(FlairPipelineError):
    """A raw input (raster, vector, catalog, domain folder) that cannot be used."""


class DomainIdError(FlairPipelineError, ValueError):
    """A string that is not a FLAIR domain id such as ``D006_2020``."""


# --- issue 15: writes that cannot lie -------------------------------------------------------
class StorageError(FlairPipelineError, OSError):
    """A file that could not be written completely (I/O error, failed re-open check).

    Also an OSError, so callers that caught the write's OSError still do.
    """


class DiskFullError(StorageError):
    """No space left where a file is written: ``disk full at PATH (N MB free)``."""


# --- issue 16: stage functions ---------------------------------------------------------------
class StageCheckError(FlairPipelineError):
    """A stage's check failed outside Dagster (``flair-pipeline build-domain``).

    The build stops before the next step, as a blocking asset check stops its downstream
    assets.
    """
