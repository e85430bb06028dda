"""MQTT hardware bridge: a PowerSwitch port over Tasmota and Shelly Gen2+ plugs.

Only the port is exported here, so that importing it (as services do) does not
import the MQTT client: ``hardware_bridge.mqtt`` and ``hardware_bridge.bridge``
are imported by the composition root alone.
"""

from hardware_bridge.port import (
    BridgeError,
    BridgeUnavailable,
    DeviceEvent,
    DeviceOfflineError,
    DeviceOnline,
    DeviceRef,
    DeviceWentOffline,
    EnergyReading,
    NotConfirmed,
    PlugState,
    PowerChanged,
    PowerSwitch,
)

__all__ = [
    "BridgeError",
    "BridgeUnavailable",
    "DeviceEvent",
    "DeviceOfflineError",
    "DeviceOnline",
    "DeviceRef",
    "DeviceWentOffline",
    "EnergyReading",
    "NotConfirmed",
    "PlugState",
    "PowerChanged",
    "PowerSwitch",
]
