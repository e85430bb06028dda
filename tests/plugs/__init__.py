"""Simulated smart plugs that speak the real MQTT protocols (for the bridge tests)."""

from tests.plugs.base import SimPlug
from tests.plugs.shelly import SimShelly
from tests.plugs.tasmota import SimTasmota

__all__ = ["SimPlug", "SimShelly", "SimTasmota"]
