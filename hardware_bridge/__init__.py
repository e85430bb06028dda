"""MQTT hardware bridge: a PowerSwitch port over Tasmota and Shelly Gen2+ plugs."""

from hardware_bridge.mqtt import BridgeUnavailable, MqttClient
from hardware_bridge.port import (
    BridgeError,
    DeviceEvent,
    DeviceOffline,
    DeviceOnline,
    DeviceRef,
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
    "DeviceOffline",
    "DeviceOnline",
    "DeviceRef",
    "EnergyReading",
    "MqttClient",
    "NotConfirmed",
    "PlugState",
    "PowerChanged",
    "PowerSwitch",
]
