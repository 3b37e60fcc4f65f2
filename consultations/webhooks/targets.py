"""Where a webhook may be sent: the target URL's checks and the server-side request forgery guard.

A subscription's URL is typed by a practice admin, and the portal then makes requests to it from
inside the hosting network. So a target must be https (http only with DEBUG, or to loopback when
``TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK`` is on, for tests), carry no user name or password, and
resolve only to public addresses: loopback, private (RFC 1918, unique local), link-local (the
cloud metadata service at 169.254.169.254), shared, reserved and multicast addresses are refused
unless they fall in ``TELECONSULT_WEBHOOK_ALLOWED_NETWORKS``. An IPv6 address that carries an IPv4
address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is judged by the IPv4 address it
reaches, so ``[64:ff9b::a9fe:a9fe]`` is the metadata service, not a public IPv6 host.

The host's name is looked up with a time limit (``TELECONSULT_WEBHOOK_DNS_TIMEOUT``): the system
resolver has none of its own, and a name server that never answers would hold the web request
(or the worker) that checks the URL.

The check is made when the URL is saved (a clear refusal for the person typing it) and again before
each try, and the request then goes to the very address that was checked (``Target.address``), so a
DNS answer that changes in between (DNS rebinding) cannot send it elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from teleconsult.errors import PortalError

MAX_URL_LENGTH = 2000


class WebhookTargetError(PortalError):
    """A target URL the portal will not send to; the message says why."""

    code = "invalid_webhook_url"

    def __init__(self, message: str, **data) -> None:
        super().__init__(message, field="url", **data)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as typed (for the Host header and the TLS server name)
    port: int
    path: str  # path and query
    address: str  # the checked IP address to connect to


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for net in settings.TELECONSULT_WEBHOOK_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(net, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TELECONSULT_WEBHOOK_ALLOWED_NETWORKS: {net!r} is not an IP address or CIDR network"
            ) from None
    return networks


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
# RFC 8215: for use inside one operator's network, where the IPv4 address may sit at any of RFC
# 6052's places; not globally reachable (IANA), so it is refused whatever it seems to carry.
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d, deprecated by RFC 4291


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 ``address`` leads to (empty for a plain IPv6 address): a request
    to it reaches them through a translator or a tunnel, so they are what must be public."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)  # (server, client)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in NAT64_WELL_KNOWN:
        return [low32]
    # :: and ::1 are IPv6's own unspecified and loopback addresses, refused as such.
    if address in IPV4_COMPATIBLE and int(address) > 1:
        return [low32]
    return []


def _refusal(address: IPAddress) -> str | None:
    """Why the portal will not connect to ``address``, or None when it may."""
    networks = allowed_networks()
    if any(address in net for net in networks):
        return None
    if address in NAT64_LOCAL_USE:
        return "a local-use NAT64 address"
    embedded = embedded_ipv4(address)
    for candidate in embedded or [address]:
        if any(candidate in net for net in networks):
            continue
        why = _kind_refused(candidate)
        if why is not None:
            return why if candidate == address else f"which leads to {candidate}, {why}"
    return None


def _kind_refused(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (such as the cloud metadata service)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private:
        return "a private network address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def parse(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path)`` of a well-formed http(s) URL; WebhookTargetError otherwise."""
    url = (url or "").strip()
    if not url:
        raise WebhookTargetError("A target URL is needed, e.g. https://ehr.example.org/hooks/teleconsult.")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookTargetError(f"The target URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise WebhookTargetError("The target URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookTargetError(f"{url[:80]!r} is not a valid URL: {exc}.") from None
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise WebhookTargetError(f"{url[:80]!r} is not a URL: write it in full, starting with https://.")
    if scheme not in ("https", "http"):
        raise WebhookTargetError(f"Webhooks are sent over https; {scheme}: URLs are not accepted.")
    if parts.username is not None or parts.password is not None:
        raise WebhookTargetError("Put no user name or password in the URL: the signature authenticates each request.")
    host = parts.hostname or ""
    if not host:
        raise WebhookTargetError(f"{url[:80]!r} names no host.")
    if parts.fragment:
        raise WebhookTargetError("The target URL may not have a #fragment (it is never sent to the server).")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


_resolver_lock = threading.Lock()
_resolver: ThreadPoolExecutor | None = None


def _lookup_pool() -> ThreadPoolExecutor:
    """A few threads for name lookups, made on first use. A lookup that never returns keeps its
    thread, so the pool's size bounds how many such threads can pile up; lookups queued behind
    them time out like the stuck ones."""
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")
        return _resolver


def _resolve(host: str, port: int) -> list[tuple]:
    timeout = settings.TELECONSULT_WEBHOOK_DNS_TIMEOUT
    lookup = _lookup_pool().submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return lookup.result(timeout=timeout)
    except FutureTimeoutError:
        lookup.cancel()
        raise WebhookTargetError(
            f"Host {host!r} could not be resolved within {timeout:g} seconds: its name servers did not answer. "
            "Check the name, or try again later.",
            code="webhook_url_unresolved",
        ) from None


def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = _resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookTargetError(f"Host {host!r} could not be resolved: {exc}.") from None
    # An address with a zone (fe80::1%eth0) is link-local anyway; its zone is dropped for the check.
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def check(url: str) -> Target:
    """The target to connect to for ``url``, every check passed; WebhookTargetError otherwise.

    Every address the host resolves to must be allowed (an attacker's name may answer a public
    and a private address in turn)."""
    scheme, host, port, path = parse(url)
    addresses = _addresses(host, port)
    if not addresses:
        raise WebhookTargetError(f"Host {host!r} resolves to no address.")
    for address in addresses:
        why = _refusal(address)
        if why is not None:
            raise WebhookTargetError(
                f"{host} resolves to {address}, {why}: webhooks go only to public addresses "
                "(an operator can allow a network with TELECONSULT_WEBHOOK_ALLOWED_NETWORKS).",
                code="webhook_url_not_public",
            )
    if scheme == "http" and not _http_allowed(addresses):
        raise WebhookTargetError("Webhooks are sent over https: use an https:// URL.", code="webhook_url_not_https")
    return Target(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


def _http_allowed(addresses) -> bool:
    if settings.DEBUG:
        return True
    return settings.TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK and all(address.is_loopback for address in addresses)


def clean_url(url: str) -> str:
    """``url`` as it is saved, after every check of ``check``."""
    check(url)
    return url.strip()
