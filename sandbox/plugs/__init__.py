"""Simulated smart plugs that speak the real MQTT protocols (Tasmota, Shelly Gen2+)."""

from sandbox.plugs.base import SimPlug
from sandbox.plugs.shelly import SimShelly
from sandbox.plugs.tasmota import SimTasmota

__all__ = ["SimPlug", "SimShelly", "SimTasmota"]
