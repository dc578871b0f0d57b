"""Shared helpers for the resolver core tests: upstream replies made with dnspython."""

import dataclasses

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from bootres import config
from bootres.core.effects import Respond, SendUpstream
from bootres.core.routing import Route, Routing, UpstreamSpec
from bootres.settings import resolver_settings

A = ("198.18.0.10", 53)
B = ("198.18.0.11", 53)
C = ("198.18.0.12", 53)
D = ("198.18.0.13", 53)


def label(address) -> str:
    return f"{address[0]}:{address[1]}"


def routing(default=(A, B), routes=None, source="config") -> Routing:
    """A Routing with ``default`` servers and ``routes`` ({domain: servers}), every upstream from ``source``."""
    routes = routes or {}
    addresses = dict.fromkeys([*default, *(a for servers in routes.values() for a in servers)])
    specs = tuple(UpstreamSpec(a, label(a), source, tuple(d for d, servers in routes.items() if a in servers))
                  for a in addresses)
    return Routing(specs, tuple(default), tuple(Route(d, tuple(servers)) for d, servers in routes.items()))


def settings(routes: Routing | None = None, **overrides):
    """The resolver core's settings of the shipped defaults (config.SCHEMA), with ``overrides``."""
    return dataclasses.replace(resolver_settings(config.defaults().resolver, routes or Routing()), **overrides)


def reply_to(send: SendUpstream, *, address="198.18.0.80", rcode=dns.rcode.NOERROR, ttl=300,
             tc=False, qid=None, soa_minimum=60) -> bytes:
    """An upstream's reply to the query in ``send``."""
    query = dns.message.from_wire(send.wire)
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    name = query.question[0].name
    if tc:
        reply.flags |= dns.flags.TC
    elif rcode == dns.rcode.NOERROR:
        reply.answer.append(dns.rrset.from_text(name, ttl, "IN", "A", address))
    elif rcode == dns.rcode.NXDOMAIN:
        reply.authority.append(dns.rrset.from_text(
            name.parent(), ttl, "IN", "SOA", f"ns1. host. 1 3600 600 86400 {soa_minimum}"))
    if qid is not None:
        reply.id = qid
    return reply.to_wire()


def query(name="www.example.test", rdtype="A", qid=1, **kw) -> bytes:
    msg = dns.message.make_query(name, rdtype, **kw)
    msg.id = qid
    return msg.to_wire()


def sends(effects) -> list[SendUpstream]:
    return [e for e in effects if isinstance(e, SendUpstream)]


def responses(effects) -> list[Respond]:
    return [e for e in effects if isinstance(e, Respond)]


def parsed(respond: Respond) -> dns.message.Message:
    return dns.message.from_wire(respond.wire)


def addresses(respond: Respond) -> list[str]:
    return sorted(rd.to_text() for rrset in parsed(respond).answer for rd in rrset)
