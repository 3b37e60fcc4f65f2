"""The client's address: who sent a request, as the proxies the portal trusts saw it.

Behind a reverse proxy the socket peer is the proxy and the client is named in X-Forwarded-For, a
header the client can write too: nginx's ``$proxy_add_x_forwarded_for`` appends the address it saw
to whatever the client sent. Only the entries a trusted proxy wrote, from the right, say anything;
the leftmost is whatever the client chose. ``client_address(request)`` is the one answer, used
wherever an address is counted or kept: the token endpoint's failure lockout and allauth's rate
limits (``accounts/throttle.py``, ``AccountAdapter.get_client_ip``), the access history
(``studies/audit.py``) and patient invitations.

``TELECONSULT_TRUSTED_PROXIES`` says whom to believe:

- empty (the default): nobody. The socket peer is the client; X-Forwarded-For is ignored.
- a number N: N proxies in front of daphne, each appending the address it saw (the peer is the
  nearest of them). The client is the N-th entry from the right. Nothing checks the peer, so daphne
  must be reachable only through the proxy (bound to 127.0.0.1 or a UNIX socket).
- addresses and CIDR ranges, comma-separated (``127.0.0.1, 10.0.0.0/8``): the peer must be in one
  of them for the header to count; then its entries are walked from the right while they are proxies
  too, and the first that is not is the client.

Where a proxy should have written an address and the entry is not one, the walk stops at the last
hop known (never a 500, never the garbage). A peer that is not an address (a UNIX socket) is unknown
(None) unless a hop count is configured.

Why no library: python-ipware (django-ipware, which django-axes uses) looks for the proxies among
the header's own entries, matched by string prefix, never checks that the socket peer is one, falls
back to other headers any client can send (X-Real-IP, CF-Connecting-IP...) and prefers a public
address to a private one. allauth's ``ALLAUTH_TRUSTED_PROXY_COUNT`` takes a hop count only and raises
ImproperlyConfigured (a 500) on a shorter header. The rule above is a short walk with ``ipaddress``.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "TELECONSULT_TRUSTED_PROXIES"

_warned_untrusted_header = False


@dataclass(frozen=True)
class TrustedProxies:
    """The proxies to believe: a hop count, or their networks (neither: none)."""

    hops: int = 0
    networks: tuple[Network, ...] = ()

    def trusts(self, position: int, address: Address | None) -> bool:
        """Whether the hop ``position`` places from the portal (0: the socket peer) is a proxy."""
        if self.hops:
            return position < self.hops
        return address is not None and any(address in network for network in self.networks)

    def __bool__(self) -> bool:
        return bool(self.hops or self.networks)


@functools.lru_cache(maxsize=16)
def trusted_proxies(value: str | int | None) -> TrustedProxies:
    """Parse the setting: empty, a hop count, or comma-separated addresses and CIDR ranges."""
    text = str(value if value is not None else "").strip()
    if not text:
        return TrustedProxies()
    if text.isdigit():
        return TrustedProxies(hops=int(text))
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(_ipv4_if_mapped(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"{SETTING}: {item!r} is not an address or a CIDR range (e.g. 10.0.0.0/8). Give the number "
                "of proxies in front of the portal, or their addresses and ranges separated by commas."
            ) from None
    return TrustedProxies(networks=tuple(networks))


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _ipv4_if_mapped(network: Network) -> Network:
    """``::ffff:10.0.0.0/104`` is ``10.0.0.0/8``: addresses are compared as IPv4 (``parse_address``)."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


def configured() -> TrustedProxies:
    value = getattr(settings, SETTING, "")
    if isinstance(value, list | tuple):
        value = ",".join(str(item) for item in value)
    return trusted_proxies(value)


def parse_address(text: str | None) -> Address | None:
    """An address from a header entry or a peer (``1.2.3.4``, ``1.2.3.4:5``, ``[::1]:5``, ``::1``);
    None for anything else. IPv4 mapped into IPv6 is IPv4; a zone (``%eth0``) is dropped."""
    text = (text or "").strip()
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:
            return ipaddress.IPv6Address(int(address))
    return address


def resolve(peer: str | None, forwarded_for: str | None, trusted: TrustedProxies) -> str | None:
    """The client's address from the socket peer and X-Forwarded-For, believing only ``trusted``."""
    current = parse_address(peer)
    entries = [entry for entry in (forwarded_for or "").split(",")[::-1] if entry.strip()]
    for position, entry in enumerate(entries):
        if not trusted.trusts(position, current):
            break  # this hop is not a proxy: it is the client
        address = parse_address(entry)
        if address is None:
            break  # a proxy would have written an address here: keep the last hop known
        current = address
    return str(current) if current is not None else None


def client_address(request) -> str | None:
    """The address of the client that sent ``request`` (Django's or DRF's), or None if unknown."""
    request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    meta = request.META
    trusted = configured()
    forwarded_for = meta.get("HTTP_X_FORWARDED_FOR")
    if forwarded_for and not trusted:
        _warn_untrusted_header(meta.get("REMOTE_ADDR"))
    return resolve(meta.get("REMOTE_ADDR"), forwarded_for, trusted)


def _warn_untrusted_header(peer: str | None) -> None:
    """Once per process: a proxy may be in front that nobody told the portal about."""
    global _warned_untrusted_header
    if not _warned_untrusted_header:
        _warned_untrusted_header = True
        logger.warning(
            "X-Forwarded-For from %s ignored: no proxy is trusted, so the socket peer is taken as the client. "
            "Behind a reverse proxy set %s (docs/operations.md).",
            peer,
            SETTING,
        )
