"""POSTing notifications to callback URLs, only to networks the operator allows.

Destinations are checked on the addresses actually connected to (names are resolved once and
filtered in the resolver), so a name cannot point at a denied network after validation. The
default denies what no webhook should reach from a server: link-local addresses (where cloud
metadata services live), "this network", multicast and broadcast; loopback and private
networks stay allowed so that a single-machine install (and the tests) can use local
receivers. Operators exposing the service to untrusted users should add 127.0.0.0/8, ::1/128,
10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and fc00::/7 to `callback_deny`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

DEFAULT_DENY = (
    "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32", "100.100.100.200/32",
    "::/128", "fe80::/10", "ff00::/8", "fd00:ec2::254/128",
)  # fmt: skip
RESOLVE_ERROR = "Could not resolve the callback URL."
DENIED_ERROR = "The callback URL points to a network that is not allowed."
CONNECT_ERROR = "Could not connect to the callback URL."
TIMEOUT_ERROR = "The callback URL did not answer in time."
FAILED_ERROR = "The request to the callback URL failed."
MAX_BODY = 64 * 1024  # of a callback's answer kept for the test endpoint
USER_AGENT = "m2x-platform-triggers/1"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NetworkPolicy:
    """Allow and deny lists of networks; the most specific match wins, deny on a tie.

    An address in no listed network is allowed when the allow list is empty, denied otherwise.
    """

    def __init__(self, allow: Sequence[str] = (), deny: Sequence[str] = DEFAULT_DENY) -> None:
        self.allow = [ipaddress.ip_network(n, strict=False) for n in allow]
        self.deny = [ipaddress.ip_network(n, strict=False) for n in deny]

    def allows(self, host: str) -> bool:
        address = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        best: tuple[int, bool] | None = None  # (prefix length, allowed)
        for networks, allowed in ((self.allow, True), (self.deny, False)):
            for network in networks:
                if address.version == network.version and address in network:
                    candidate = (network.prefixlen, allowed)
                    if (
                        best is None
                        or candidate[0] > best[0]
                        or (candidate[0] == best[0] and not allowed)
                    ):
                        best = candidate
        return best[1] if best is not None else not self.allow


class CallbackDenied(OSError):
    """Every address of the callback's host is in a denied network."""


class _PolicyResolver(AbstractResolver):
    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        allowed = [entry for entry in found if self.policy.allows(entry["host"])]
        if not allowed:
            raise CallbackDenied(f"{host} resolves only to denied networks")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a callback answered; status 0 when nothing did (then `error` says why)."""

    status: int
    body: str = ""
    headers: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""

    @property
    def success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retry(self) -> bool:
        """Worth another attempt: nothing answered (unless denied), 5xx, 408 or 429."""
        if self.status == 0:
            return self.error != DENIED_ERROR
        return self.status >= 500 or self.status in (408, 429)


def _headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return headers


class CallbackClient:
    """One keep-alive HTTP client per process; each POST has its own total timeout."""

    def __init__(
        self, policy: NetworkPolicy, timeout: float, per_host: int, concurrency: int
    ) -> None:
        self.policy = policy
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._connector_args: dict[str, Any] = {"limit": concurrency, "limit_per_host": per_host}
        self._session: aiohttp.ClientSession | None = None
        self._verdicts: dict[str, bool] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=_PolicyResolver(self.policy), **self._connector_args
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    def _literal_denied(self, url: str) -> bool:
        """Whether the URL names a denied address literally (names are the resolver's)."""
        denied = self._verdicts.get(url)
        if denied is None:
            try:
                denied = not self.policy.allows(urlsplit(url).hostname or "")
            except ValueError:  # a name, checked by the resolver
                denied = False
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            self._verdicts[url] = denied
        return denied

    async def post(self, url: str, body: bytes, keep_body: bool = False) -> Outcome:
        if self._literal_denied(url):
            return Outcome(0, error=DENIED_ERROR)
        headers = {"Content-Type": "application/json"}
        try:
            async with self._client().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                content = await response.content.read(MAX_BODY) if keep_body else b""
                if not keep_body:
                    await response.read()  # drained, so the connection is reused
                return Outcome(
                    response.status,
                    content.decode(response.charset or "utf-8", errors="replace"),
                    _headers(response.raw_headers) if keep_body else {},
                )
        except aiohttp.ClientConnectorDNSError as exc:
            denied = isinstance(exc.os_error, CallbackDenied)
            return Outcome(0, error=DENIED_ERROR if denied else RESOLVE_ERROR)
        except aiohttp.ClientConnectorError:
            return Outcome(0, error=CONNECT_ERROR)
        except TimeoutError:
            return Outcome(0, error=TIMEOUT_ERROR)
        except (aiohttp.ClientError, ValueError, OSError):
            return Outcome(0, error=FAILED_ERROR)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Let the connector close its transports before the loop goes away.
            await asyncio.sleep(0)
