"""Who a request comes from, as the per-address rate limit counts it.

Rules: `X-Forwarded-For` is believed only when the socket's peer is a configured trusted proxy,
and then read from the right, skipping trusted hops: the first address a trusted proxy did not
add itself is the client (anything further left is the client's own claim). From any other peer
the header is ignored, so a client cannot pick the bucket it is counted in. IPv6 clients are
counted per /64, the block one subscriber usually holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

__all__ = ["TrustedProxies", "client_address"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Hops read from the right of X-Forwarded-For at most: a chain of proxies is short.
_MAX_HOPS = 16


class TrustedProxies:
    """The configured proxies; empty means the socket's peer is always the client."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


def _parse(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _key(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_address(request: web.Request, trusted: TrustedProxies) -> str:
    """The key of the client's bucket: its address (IPv6: its /64), or the socket's peer as given."""
    peer_text = request.remote or ""
    if not trusted and ":" not in peer_text:
        return peer_text  # the common case: an IPv4 peer, no proxies: no parsing
    peer = _parse(peer_text)
    if peer is None:  # a Unix socket, or a peer aiohttp could not name
        return peer_text
    if not trusted or not trusted.trusts(peer):
        return _key(peer)
    hops = ",".join(request.headers.getall("X-Forwarded-For", ())).split(",")
    nearest = peer
    for hop in reversed(hops[-_MAX_HOPS:]):
        address = _parse(hop)
        if address is None:
            break  # not an address: stop at the last one a trusted proxy vouched for
        nearest = address
        if not trusted.trusts(address):
            break
    return _key(nearest)
