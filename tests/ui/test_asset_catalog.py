"""What the UI's catalog shows of every asset: a description, a group and kinds."""

from __future__ import annotations

import re

from flair_pipeline.definitions import defs

GROUPS = {"sources", "dataset", "sentinel2", "sentinel1", "training", "evaluation"}
# The UI renders descriptions as Markdown: a bare <id> is taken for an HTML tag and vanishes.
BARE_TAG = re.compile(r"<[A-Za-z_][\w.]*>")


def _outside_code(text: str) -> str:
    return re.sub(r"`[^`]*`", "", text)


def test_every_asset_has_description_group_and_kinds() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description and len(node.description) > 30, name
        assert node.group_name in GROUPS, (name, node.group_name)
        assert node.kinds, name


def test_dataset_descriptions_render_in_markdown() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name in ("sources", "dataset", "sentinel2"):
            bare = BARE_TAG.findall(_outside_code(node.description or ""))
            assert not bare, (key.to_user_string(), bare)
