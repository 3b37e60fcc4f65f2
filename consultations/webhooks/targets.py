"""Where a webhook may be sent: the target URL's checks and the server-side request forgery guard.

A subscription's URL is typed by a practice admin, and the portal then makes requests to it from
inside the hosting network. So a target must be https (http only with DEBUG, or to loopback when
``TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK`` is on, for tests), carry no user name or password, and
resolve only to public addresses: loopback, private (RFC 1918, unique local), link-local (the
cloud metadata service at 169.254.169.254), shared, reserved and multicast addresses are refused
unless they fall in ``TELECONSULT_WEBHOOK_ALLOWED_NETWORKS``.

The check is made when the URL is saved (a clear refusal for the person typing it) and again before
each try, and the request then goes to the very address that was checked (``Target.address``), so a
DNS answer that changes in between (DNS rebinding) cannot send it elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
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


def _refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why the portal will not connect to ``address``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in allowed_networks()):
        return None
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
    if not address.is_global:
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


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
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
