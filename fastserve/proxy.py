"""Behind proxies: the client address and scheme from X-Forwarded-For/-Proto or RFC 7239 Forwarded.

Only a connection from a trusted proxy (``--forwarded-allow-ips``) is read for
these headers. The address list is walked from the right, the end the nearest
proxy appended to, past every hop that is itself a trusted proxy; the first
hop that is not is the client. ``*`` trusts whoever connects to us, but not the
hops a client may have written into the header itself, so a spoofed leftmost
address is never taken unless every hop after it is trusted by address.
"""

from __future__ import annotations

import ipaddress

ForwardedHeaders = list[tuple[bytes, bytes]]
Address = tuple[str, int]

FORWARDING_HEADER_NAMES = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"forwarded"})
FORWARDED_STYLES = ("x-forwarded", "rfc7239")
SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
UNIX_LITERAL = "unix:"
MAX_HOPS = 16
# Hosts whose trust was decided, remembered: parsing an address and matching it
# against the networks costs more than the rest of a new connection. Bounded:
# when full it starts over, so forwarded addresses a client makes up cannot grow it.
VERDICTS_MAX = 4096


class ProxyConfigError(ValueError):
    pass


class ProxyTrust:
    """Which peers and hops are trusted proxies, and what their headers say about the client."""

    def __init__(self, allow: list[str] | str, style: str = "x-forwarded", flag: str = "--forwarded-allow-ips") -> None:
        """``flag`` names the option ``allow`` came from, for the error message."""
        if style not in FORWARDED_STYLES:
            raise ProxyConfigError(f"--forwarded-style must be one of {', '.join(FORWARDED_STYLES)}; got {style!r}")
        self.style = style
        items = allow.split(",") if isinstance(allow, str) else list(allow)
        self.any_peer = False
        self.unix_peers = False
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.literals: set[str] = set()
        self.verdicts: dict[str, bool] = {}
        for item in (item.strip() for item in items):
            if not item:
                continue
            if item == "*":
                self.any_peer = True
            elif item == UNIX_LITERAL:
                self.unix_peers = True
            else:
                try:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    if "/" in item:
                        raise ProxyConfigError(f"{flag}: {item!r} is not a network") from None
                    self.literals.add(item)

    def trusts_peer(self, client: Address | None) -> bool:
        """Whether the connection's own peer (None: a Unix socket) is a trusted proxy."""
        if self.any_peer:
            return True
        if client is None:
            return self.unix_peers
        return self.trusts_hop(client[0])

    def trusts_hop(self, host: str) -> bool:
        verdict = self.verdicts.get(host)
        if verdict is None:
            if host in self.literals:
                verdict = True
            else:
                address = _ip(host)
                verdict = address is not None and any(address in network for network in self.networks)
            if len(self.verdicts) >= VERDICTS_MAX:
                self.verdicts.clear()
            self.verdicts[host] = verdict
        return verdict

    def resolve(self, headers: ForwardedHeaders, client: Address | None, scheme: str) -> tuple[Address | None, str]:
        """The (client, scheme) a request from a trusted proxy stands for."""
        if self.style == "rfc7239":
            elements = _forwarded_elements(_joined(headers, b"forwarded"))
            hops = [(_node_address(element.get("for", "")), element.get("proto", "")) for element in elements]
        else:
            addresses = _split(_joined(headers, b"x-forwarded-for"))
            protos = _split(_joined(headers, b"x-forwarded-proto"))
            if not addresses:
                return client, SCHEMES.get(protos[-1].lower(), scheme) if protos else scheme
            # One proto per hop when the proxies keep them aligned; else the nearest proxy's, whoever the client.
            if len(protos) != len(addresses):
                protos = [protos[-1] if protos else ""] * len(addresses)
            hops = [(_plain_address(address), proto) for address, proto in zip(addresses, protos, strict=True)]
        chosen: tuple[Address | None, str] | None = None
        for address, proto in reversed(hops):
            chosen = (address, proto)
            if address is None or not self.trusts_hop(address[0]):
                break
        if chosen is None:
            return client, scheme
        address, proto = chosen
        return (address or client), SCHEMES.get(proto.strip().lower(), scheme)


def _joined(headers: ForwardedHeaders, name: bytes) -> str:
    """The values of header ``name`` as one list, cut to the entries of the nearest MAX_HOPS hops.

    Hops further away are never walked to: a longer chain is what a client
    writes to make every request cost milliseconds of parsing, not a deployment.
    """
    value = ",".join(value.decode("latin-1") for key, value in headers if key == name)
    entries = value.rsplit(",", MAX_HOPS)
    return ",".join(entries[1:]) if len(entries) > MAX_HOPS else value


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _plain_address(text: str) -> Address | None:
    """An X-Forwarded-For entry: an IP address (AWS and others may add a port), or None if not an address."""
    if _ip(text) is not None:
        return (text, 0)
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host and port.isdigit() and _ip(host) is not None:
        return (host, int(port))
    return None


def _node_address(node: str) -> Address | None:
    """A Forwarded ``for`` node: ``192.0.2.1``, ``"192.0.2.1:80"``, ``"[2001:db8::1]:80"``; None if not an IP."""
    node = node.strip()
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif node.count(":") == 1:
        host, _, port = node.partition(":")
    else:
        host, port = node, ""
    if _ip(host) is None or (port and not port.isdigit()):
        return None
    return (host, int(port) if port else 0)


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """RFC 7239: comma-separated elements of semicolon-separated ``key=value`` pairs (values may be quoted)."""
    elements: list[dict[str, str]] = []
    pairs: dict[str, str] = {}
    key, text, quoted, escaped, in_value = "", "", False, False, False
    for char in value + ",":
        if quoted:
            if escaped:
                text, escaped = text + char, False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            else:
                text += char
        elif char == '"' and in_value:
            quoted = True
        elif char == "=" and not in_value:
            key, text, in_value = text.strip().lower(), "", True
        elif char in ";,":
            if in_value and key:
                pairs.setdefault(key, text.strip())
            key, text, in_value = "", "", False
            if char == ",":
                if pairs:
                    elements.append(pairs)
                pairs = {}
        else:
            text += char
    # A header cut off inside a quoted string says nothing reliable.
    return [] if quoted else elements
