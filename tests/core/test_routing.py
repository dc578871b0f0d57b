"""routing: which group of upstreams a name goes to (split DNS)."""

import pytest

from bootres.core.dnswire import wire_name
from bootres.core.routing import NamesUnder, Route, Routing, UpstreamSpec
from resolver_helpers import A, B, C, D, routing

name = wire_name  # lower case, as the cache key's name part


def test_longest_routing_domain_wins_else_the_default():
    r = routing(default=(A, B), routes={"corp.test": (C,), "lab.corp.test": (D,)})
    assert r.group_of(name("www.corp.test")) == (C,)
    assert r.group_of(name("corp.test")) == (C,)  # the domain itself is under its route
    assert r.group_of(name("x.lab.corp.test")) == (D,)
    assert r.group_of(name("lab.corp.test")) == (D,)
    assert r.group_of(name("www.example.test")) == (A, B)
    assert r.group_of(name("notcorp.test")) == (A, B)  # label boundaries, not string suffixes
    assert r.group_of(b"\x00") == (A, B)  # the root
    assert r.route_of(name("a.lab.corp.test")).domain == "lab.corp.test"
    assert r.route_of(name("www.example.test")) is None


def test_routes_for_one_domain_merge_their_servers_and_domains_are_normalised():
    specs = tuple(UpstreamSpec(a, f"{a[0]}:53", "test") for a in (A, B, C))
    r = Routing(specs, (A, A), (Route("Corp.Test.", (B,)), Route("corp.test", (C, B))))
    assert r.routes == (Route("corp.test", (B, C)),)
    assert r.default == (A,)
    assert r.group_of(name("www.corp.test")) == (B, C)


def test_every_address_a_group_uses_must_be_listed():
    with pytest.raises(ValueError, match="not listed"):
        Routing((UpstreamSpec(A, "a", "test"),), (A,), (Route("corp.test", (C,)),))
    with pytest.raises(ValueError, match="bad domain"):
        Routing(routes=(Route("", ()),))


def test_a_route_without_servers_keeps_its_names_from_the_default_servers():
    r = routing(default=(A,), routes={"corp.test": ()})
    assert r.group_of(name("www.corp.test")) == ()


def test_no_route_means_everything_goes_to_the_default():
    assert Routing().group_of(name("www.example.test")) == ()
    assert routing((A,)).group_of(name("www.corp.test")) == (A,)


def test_names_under_domains():
    names = NamesUnder({"corp.test", "b.example"})
    assert name("www.corp.test") in names and name("corp.test") in names and name("a.b.example") in names
    assert name("example") not in names and name("xcorp.test") not in names
