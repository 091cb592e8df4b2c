"""Named recipes: partial params files (``recipes/*.yaml``) applied with ``dvc exp run -S``.

params.yaml holds the recipe that runs where most people start (2 CPU cores); other
recipes, such as FLAIR's GPU recipe, are files with the keys that differ. Applying one
with ``dvc exp run -S …`` keeps params.yaml the single source DVC tracks, records the
values in the experiment, and shows them in ``dvc exp show``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flair_pipeline.config import load_config, read_params
from flair_pipeline.errors import ConfigError


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.02}}`` -> ``{"train.lr": 0.02}`` (lists and None are leaves).

    Args:
        node: A nested mapping (a parsed YAML document).
        prefix: Dotted key prefix of `node` (empty at the top).

    Returns:
        Dotted key -> leaf value, in the mapping's order.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def set_args(recipe: Path, params: Path = Path("params.yaml")) -> list[str]:
    """The recipe as ``-S key=value`` arguments, in file order (no value holds a space).

    Args:
        recipe: A partial params file (``recipes/*.yaml``).
        params: The params file the recipe applies to (the schema check loads both).

    Returns:
        ``["-S", "key=value", …]`` for ``dvc exp run``, values as YAML writes them (lists
        without spaces), ``+key=value`` for a key params.yaml does not have.

    Raises:
        ConfigError: Naming the file when it is unreadable or not a YAML mapping, the key
            when a value is invalid for the configuration schema, and the pair when a
            value holds a space.
    """
    try:
        doc = yaml.safe_load(recipe.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{recipe}: unreadable recipe ({exc})") from None
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"{recipe}: a recipe is a YAML mapping of params.yaml keys")
    pairs = [f"{k}={_value(v)}" for k, v in flatten(doc).items()]
    try:
        load_config(params if params.is_file() else None, tuple(pairs))
    except ConfigError as exc:
        raise ConfigError(f"{recipe}: {exc}") from None
    spaced = [p for p in pairs if any(c.isspace() for c in p)]
    if spaced:
        raise ConfigError(f"{recipe}: {spaced[0]!r}: values with spaces cannot pass as -S args")
    # a key params.yaml lacks (a new task of hub.train.tasks) is added: Hydra's `+key=value`
    flat = flatten(read_params(params)) if params.is_file() else {}
    known = {".".join(k.split(".")[:i]) for k in flat for i in range(1, k.count(".") + 2)}
    return [a for p in pairs for a in ("-S", p if p.partition("=")[0] in known else f"+{p}")]


def _value(value: Any) -> str:
    """A leaf as YAML flow text.

    Args:
        value: A recipe leaf (scalar, None or list).

    Returns:
        Its YAML flow text; a list without spaces (``[a,b]``: one ``-S`` argument).
    """
    if isinstance(value, list):
        return "[" + ",".join(_value(v) for v in value) + "]"
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()
