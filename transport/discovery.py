"""Finding the receivers of a destination vertex.

A vertex's DNS name (``<vertex>.<pipeline>.<namespace>.<zone>``) answers
with one record per pod that can take frames: SRV records name each pod and
its transport port, with the pods' A or AAAA records in the additional
section, and A/AAAA queries answer with the addresses alone. The lookup asks
for SRV first and falls back to A and AAAA with the default port when the
server has no SRV records for the name.

Queries go to the system resolver (``/etc/resolv.conf``) unless a
nameserver is given. The answer's smallest TTL says when to look again.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from numaflow_rdma.transport.errors import DiscoveryError, NameNotFoundError, TransportConfigError

logger = logging.getLogger(__name__)

# Bounds on how long an answer is trusted, in seconds: CoreDNS may hand out a
# TTL of 0, and a very long TTL would hide a pod that went away.
MIN_TTL = 1.0
MAX_TTL = 300.0


@dataclass(frozen=True, order=True, slots=True)
class PeerAddress:
    """One receiver: an IP address and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The receivers a lookup returned, and for how long to trust them."""

    peers: frozenset[PeerAddress]
    ttl: float


def parse_peer(text: str, default_port: int) -> PeerAddress:
    """Parse ``ip``, ``ip:port`` or ``[ipv6]:port`` into a PeerAddress."""
    value = text.strip()
    host, port = value, default_port
    if value.startswith("["):
        closing = value.find("]")
        if closing < 0:
            raise TransportConfigError(f"invalid peer address {text!r}: missing ']'")
        host = value[1:closing]
        rest = value[closing + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise TransportConfigError(f"invalid peer address {text!r}: expected ]:port")
            port = _parse_port(rest[1:], text)
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        port = _parse_port(port_text, text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise TransportConfigError(
            f"invalid peer address {text!r}: expected an IP address, optionally with :port"
        ) from None
    return PeerAddress(str(address), port)


def _parse_port(text: str, whole: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise TransportConfigError(f"invalid port in peer address {whole!r}") from None
    if not 0 < port < 65536:
        raise TransportConfigError(
            f"invalid port {port} in peer address {whole!r}: expected 1-65535"
        )
    return port


class Discovery:
    """The source of a sender's peers."""

    description = ""

    async def resolve(self) -> Resolution:
        """Return the current peers; raise DiscoveryError when they cannot be known now."""
        raise NotImplementedError


class StaticDiscovery(Discovery):
    """A fixed list of peers, for use outside Kubernetes and in tests."""

    def __init__(self, peers: frozenset[PeerAddress]) -> None:
        self._peers = peers
        self.description = ", ".join(str(peer) for peer in sorted(peers)) or "no peers"

    async def resolve(self) -> Resolution:
        """Return the fixed peers, trusted forever."""
        return Resolution(self._peers, math.inf)


class DnsDiscovery(Discovery):
    """The pods behind a DNS name, by SRV, A and AAAA records."""

    def __init__(
        self,
        name: str,
        default_port: int,
        nameserver: tuple[str, int] | None = None,
        timeout: float = 2.0,
    ) -> None:
        try:
            self.name = dns.name.from_text(name.rstrip(".") + ".")
        except dns.exception.DNSException as error:
            raise TransportConfigError(f"invalid destination name {name!r}: {error}") from error
        self.default_port = default_port
        self.description = self.name.to_text(omit_final_dot=True)
        if nameserver is None:
            self._resolver = dns.asyncresolver.Resolver()
        else:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [nameserver[0]]
            self._resolver.port = nameserver[1]
            self.description += f" (nameserver {nameserver[0]}:{nameserver[1]})"
        self._resolver.cache = None
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout

    async def resolve(self) -> Resolution:
        """Look the name up; raise NameNotFoundError on NXDOMAIN, DiscoveryError on failure."""
        by_srv = await self._resolve_srv()
        if by_srv is not None:
            return by_srv
        return await self._resolve_addresses()

    async def _query(self, rdtype: dns.rdatatype.RdataType) -> dns.resolver.Answer | None:
        try:
            return await self._resolver.resolve(self.name, rdtype, search=False)
        except dns.resolver.NXDOMAIN as error:
            raise NameNotFoundError(
                f"DNS name {self.description} does not exist (NXDOMAIN); the destination vertex "
                "has no pod registered, or the name is misspelled"
            ) from error
        except dns.resolver.NoAnswer:
            return None
        except dns.exception.DNSException as error:
            raise DiscoveryError(
                f"DNS lookup of {self.description} ({dns.rdatatype.to_text(rdtype)}) failed: {error}"
            ) from error

    async def _resolve_srv(self) -> Resolution | None:
        answer = await self._query(dns.rdatatype.SRV)
        if answer is None or answer.rrset is None:
            return None
        ttls = [float(answer.rrset.ttl)]
        additional = _additional_addresses(answer.response)
        peers: set[PeerAddress] = set()
        for record in answer.rrset:
            target = record.target
            found = additional.get(target)
            if found is None:
                addresses = await self._target_addresses(target, ttls)
            else:
                addresses, ttl = found
                ttls.append(ttl)
            peers.update(PeerAddress(address, int(record.port)) for address in addresses)
        return Resolution(frozenset(peers), _clamp(min(ttls)))

    async def _target_addresses(self, target: dns.name.Name, ttls: list[float]) -> list[str]:
        addresses: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = await self._resolver.resolve(target, rdtype, search=False)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException as error:
                raise DiscoveryError(
                    f"DNS lookup of SRV target {target} failed: {error}"
                ) from error
            if answer.rrset is not None:
                ttls.append(float(answer.rrset.ttl))
                addresses.extend(record.address for record in answer.rrset)
        return addresses

    async def _resolve_addresses(self) -> Resolution:
        peers: set[PeerAddress] = set()
        ttls: list[float] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            answer = await self._query(rdtype)
            if answer is not None and answer.rrset is not None:
                ttls.append(float(answer.rrset.ttl))
                peers.update(
                    PeerAddress(record.address, self.default_port) for record in answer.rrset
                )
        return Resolution(frozenset(peers), _clamp(min(ttls, default=MIN_TTL)))


def _additional_addresses(
    response: dns.message.Message | None,
) -> dict[dns.name.Name, tuple[list[str], float]]:
    found: dict[dns.name.Name, tuple[list[str], float]] = {}
    if response is None:
        return found
    for rrset in response.additional:
        if rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            continue
        addresses, ttl = found.get(rrset.name, ([], float(rrset.ttl)))
        addresses.extend(record.address for record in rrset)
        found[rrset.name] = (addresses, min(ttl, float(rrset.ttl)))
    return found


def _clamp(ttl: float) -> float:
    return min(max(ttl, MIN_TTL), MAX_TTL)
