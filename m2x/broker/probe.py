"""Is an MQTT broker serving? One MQTT 3.1.1 CONNECT on a raw socket, answered by CONNACK."""

from __future__ import annotations

import asyncio
import contextlib
import struct

CONNACK = 0x20
DISCONNECT = b"\xe0\x00"
PROBE_TIMEOUT = 1.0


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def _remaining_length(length: int) -> bytes:
    encoded = bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def connect_packet(username: str | None = None, password: str | None = None) -> bytes:
    flags = 0x02  # clean session
    payload = _string("")  # the broker assigns a client id
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    variable = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 10)
    body = variable + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


async def connack_code(
    host: str, port: int, username: str | None = None, password: str | None = None
) -> int:
    """The CONNACK return code (0: accepted, 4: bad user name or password, 5: not authorized).

    Raises OSError or TimeoutError when nothing answers like an MQTT broker within a second.
    """
    async with asyncio.timeout(PROBE_TIMEOUT):
        reader, writer = await asyncio.open_connection(host.strip("[]"), port)
        try:
            writer.write(connect_packet(username, password))
            answer = await reader.readexactly(4)
            if answer[0] != CONNACK or answer[1] != 2:
                raise ConnectionError(f"not a CONNACK: {answer!r}")
            if answer[3] == 0:
                writer.write(DISCONNECT)
                await writer.drain()
            return answer[3]
        except asyncio.IncompleteReadError as exc:
            raise ConnectionError("connection closed before CONNACK") from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
