"""DualTetraX SDK: cloud client, BLE device client, OTA transfer, firmware checks, emulator."""

__version__ = "0.1.0"
