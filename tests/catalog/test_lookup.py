"""``find_scene``: an item file, an item URL or a scene id looked up at the providers."""

from __future__ import annotations

import pytest

from spectraflow.catalog import find_scene
from spectraflow.errors import CatalogError, SceneFormatError


def test_by_item_file(loaded_catalog):
    simulated = loaded_catalog.scenes[1]
    scene = find_scene(simulated.item_path)
    assert (scene.id, scene.sensor) == (simulated.id, simulated.sensor)
    assert scene.item_href == str(simulated.item_path.resolve())


def test_by_id_at_a_provider(loaded_catalog):
    for simulated in loaded_catalog.scenes[:3]:
        scene = find_scene(simulated.id, providers=[loaded_catalog.url])
        assert (scene.id, scene.sensor) == (simulated.id, simulated.sensor)


def test_by_item_url(loaded_catalog):
    simulated = loaded_catalog.scenes[1]
    url = f"{loaded_catalog.url}/collections/{simulated.collection}/items/{simulated.id}"
    assert find_scene(url).id == simulated.id


def test_unknown_id_says_how_to_fix(loaded_catalog):
    with pytest.raises(CatalogError, match="no provider has a scene") as err:
        find_scene("S2X_NOT_A_SCENE", providers=[loaded_catalog.url])
    assert "spectraflow search" in str(err.value)


def test_a_file_that_is_not_an_item(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(SceneFormatError, match="not a STAC item"):
        find_scene(bad)
