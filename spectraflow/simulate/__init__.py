"""Sensor-faithful simulated scenes: EMIT, EnMAP and Sentinel-2 products with truth.

``simulate_scene`` writes one product in the provider's exact file format, a STAC item shaped
like that provider's, and ground truth (land cover, CH4 enhancement, cloud) on the product grid.
Scenes of the same region overlap, whatever the sensor, date or size.
"""

from spectraflow.simulate.scene import PROVIDERS, SENSORS, SIZES, SimulatedScene, simulate_scene
from spectraflow.simulate.world import CLASSES, PRESETS, Region, resolve_region

__all__ = [
    "CLASSES",
    "PRESETS",
    "PROVIDERS",
    "SENSORS",
    "SIZES",
    "Region",
    "SimulatedScene",
    "resolve_region",
    "simulate_scene",
]
