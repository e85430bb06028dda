"""Simulated smart plugs (they live in :mod:`sandbox.plugs`; re-exported for the tests)."""

from sandbox.plugs import SimPlug, SimShelly, SimTasmota

__all__ = ["SimPlug", "SimShelly", "SimTasmota"]
