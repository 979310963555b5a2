"""Sensor knowledge: band tables, spectral response and (later) one product reader per sensor."""

from spectraflow.sensors.bands import BandTable, gaussian_response

__all__ = ["BandTable", "gaussian_response"]
