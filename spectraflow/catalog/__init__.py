"""Find scenes in STAC catalogs and normalise them into :class:`Scene` objects.

``search`` asks the providers (NASA CMR-STAC, DLR, Earth Search, Planetary Computer, or any STAC
API) for an AOI, time range and sensors; ``scene_from_item`` normalises one item; ``providers``
is the registry; ``LocalCatalog`` and ``serve_forever`` run a local STAC API with rustac.
"""

from spectraflow.catalog.aoi import AOI, BBox, parse_aoi
from spectraflow.catalog.auth import check_credentials
from spectraflow.catalog.lookup import find_scene
from spectraflow.catalog.normalise import scene_from_item
from spectraflow.catalog.providers import Provider, providers
from spectraflow.catalog.redaction import redact
from spectraflow.catalog.scene import SENSORS, Scene, Sensor
from spectraflow.catalog.search import search
from spectraflow.catalog.server import LocalStacServer, serve_forever
from spectraflow.catalog.signing import SasSigner
from spectraflow.catalog.store import LocalCatalog
from spectraflow.catalog.timerange import parse_time_range

__all__ = [
    "AOI",
    "SENSORS",
    "BBox",
    "LocalCatalog",
    "LocalStacServer",
    "Provider",
    "SasSigner",
    "Scene",
    "Sensor",
    "check_credentials",
    "find_scene",
    "parse_aoi",
    "parse_time_range",
    "providers",
    "redact",
    "scene_from_item",
    "search",
    "serve_forever",
]
