"""Benchmark: OTA transfer of a 1.5 MB image over an emulated link paced like a real connection.

Run alone:  .venv/bin/python tests/bench/ble_transfer.py        (about 2½ minutes)

The link (``dualtetrax.emulator.AirModel.le_1m_dle``) models an LE 1M PHY connection with
data length extension: every ACL fragment occupies the shared air for its modelled
duration and the central's controller holds one of its 8 buffer credits until the
fragment has crossed. A sender can therefore never beat the air, and a sender that tries
is flow-controlled by the stack. Both strategies below run through exactly that link, the
same bleak backend and the same emulated device:

* the SDK's engine (``dualtetrax.ble.ota.update_firmware``), production code path
  including the reboot and version check;
* the existing app's strategy (device-protocol.md §4.5): chunks of MTU − 7 bytes, one
  write-without-response each followed by a fixed 10 ms sleep.

Each is measured at two MTUs: 247 (one write per 251-byte LL PDU, the DLE-native size)
and 512 (what the app requests). Throughput is firmware bytes over the window from the
first chunk to the acknowledgement of FINISH, which the device receives only after every
chunk — i.e. delivered bytes, not queued bytes. The headline is the MTU with the lower
SDK/app ratio (the comparison most favourable to the app).

Progress lines go to stdout first; the last line printed is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import time
from dataclasses import dataclass

from bleak import BleakClient

from dualtetrax.ble.ota import update_firmware
from dualtetrax.ble.protocol import FINISH, OtaState, OtaStatus, StartCommand, uuids
from dualtetrax.emulator import AirModel, EmulatorWorld, Faults
from dualtetrax.firmware import build_test_image

IMAGE_SIZE = 3 * 512 * 1024  # 1.5 MiB
MTUS = (247, 512)
APP_SLEEP_S = 0.010
GOAL_UTILIZATION = 0.90
GOAL_RATIO = 1.8


@dataclass
class Run:
    strategy: str
    mtu: int
    chunk: int
    transfer_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return IMAGE_SIZE / self.transfer_s


async def run_sdk(image: bytes, air: AirModel, mtu: int) -> Run:
    async with EmulatorWorld(air=air, central_mtu=mtu) as world:
        device = await world.add_device(faults=Faults(reboot_delay_s=0.05))
        cpu = time.process_time()
        result = await update_firmware(device.address, image, backends=world.backends)
        cpu = time.process_time() - cpu
        assert result.verified and device.applied_image == image, "the SDK run must deliver the image intact"
        assert result.mtu == mtu
    return Run("sdk", mtu, result.chunk_size, result.transfer_s, cpu)


async def run_app_strategy(image: bytes, air: AirModel, mtu: int) -> Run:
    """What the mobile app does (ble_ota_data_source.dart), written against bleak."""
    async with EmulatorWorld(air=air, central_mtu=mtu) as world:
        device = await world.add_device()
        async with BleakClient(device.address, backend=world.client_backend, timeout=10) as client:
            chunk = client.mtu_size - 7
            count = math.ceil(len(image) / chunk)
            statuses: asyncio.Queue[OtaStatus] = asyncio.Queue()
            await client.start_notify(uuids.OTA_STATUS, lambda _c, data: statuses.put_nowait(OtaStatus.decode(data)))
            data_characteristic = client.services.get_characteristic(uuids.OTA_DATA)
            assert data_characteristic is not None
            await client.write_gatt_char(uuids.OTA_CONTROL, StartCommand(len(image), count).encode(), response=True)
            started, cpu = time.perf_counter(), time.process_time()
            for index in range(count):
                payload = struct.pack("<I", index) + image[index * chunk : (index + 1) * chunk]
                await client.write_gatt_char(data_characteristic, payload, response=False)
                await asyncio.sleep(APP_SLEEP_S)
            await client.write_gatt_char(uuids.OTA_CONTROL, FINISH.encode(), response=True)
            transfer_s = time.perf_counter() - started
            cpu = time.process_time() - cpu
            async with asyncio.timeout(30):
                while (status := await statuses.get()).state not in (OtaState.SUCCESS, OtaState.ERROR):
                    pass
            assert status.state is OtaState.SUCCESS, f"the app strategy's transfer failed: {status}"
            assert device.applied_image == image
    return Run("app", mtu, chunk, transfer_s, cpu)


def kbps(rate: float) -> float:
    return round(rate / 1000, 1)


async def main() -> dict[str, object]:
    air = AirModel.le_1m_dle()
    capacity = air.ota_capacity_bps()
    image = build_test_image(version="2.0.0", size=IMAGE_SIZE)
    print(f"link model: {air.describe()}", flush=True)
    print(f"image: {IMAGE_SIZE:,} bytes", flush=True)
    configs = []
    for mtu in MTUS:
        sdk = await run_sdk(image, air, mtu)
        print(
            f"MTU {mtu}: SDK {kbps(sdk.rate)} kB/s ({sdk.chunk}-byte chunks, {sdk.transfer_s:.1f} s, "
            f"{sdk.rate / capacity:.1%} of the air)",
            flush=True,
        )
        app = await run_app_strategy(image, air, mtu)
        print(
            f"MTU {mtu}: app strategy {kbps(app.rate)} kB/s ({app.chunk}-byte chunks + {APP_SLEEP_S * 1000:.0f} ms "
            f"sleeps, {app.transfer_s:.1f} s) -> SDK is {sdk.rate / app.rate:.2f}x",
            flush=True,
        )
        configs.append(
            {
                "mtu": mtu,
                "sdk_kBps": kbps(sdk.rate),
                "sdk_chunk": sdk.chunk,
                "sdk_transfer_s": round(sdk.transfer_s, 2),
                "app_kBps": kbps(app.rate),
                "app_chunk": app.chunk,
                "app_transfer_s": round(app.transfer_s, 2),
                "ratio": round(sdk.rate / app.rate, 2),
                "link_utilization": round(sdk.rate / capacity, 3),
                "cpu_s_per_mb": round(sdk.cpu_s / (IMAGE_SIZE / 1e6), 3),
            }
        )
    headline = min(configs, key=lambda c: float(c["ratio"]))  # type: ignore[arg-type]
    met = all(
        float(c["link_utilization"]) >= GOAL_UTILIZATION and float(c["ratio"]) >= GOAL_RATIO  # type: ignore[arg-type]
        for c in configs
    )
    return {
        "name": "ble_ota_transfer_1.5MiB_le1m_dle",
        "value": headline["sdk_kBps"],
        "unit": "kB/s",
        "baseline": headline["app_kBps"],
        "ratio": headline["ratio"],
        "goal": f">= {GOAL_UTILIZATION:.0%} of link capacity and >= {GOAL_RATIO}x the app's strategy",
        "goal_met": met,
        "link_utilization": headline["link_utilization"],
        "cpu_s_per_mb": headline["cpu_s_per_mb"],
        "link_capacity_kBps": kbps(capacity),
        "headline_mtu": headline["mtu"],
        "configs": configs,
        "cpu_note": "process CPU (SDK + emulated device + both bumble stacks) per MB, SDK transfer only",
    }


if __name__ == "__main__":
    report = asyncio.run(main())
    print(json.dumps(report), flush=True)
