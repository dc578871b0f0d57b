import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootres.core import resolvconf

ORIGINAL = """\
# written by DHCP
domain example.test
search example.test corp.example.test
nameserver 198.18.0.10
nameserver 198.18.0.11
nameserver 198.18.0.10
options rotate timeout:1 edns0
"""


def test_managed_file_points_at_listen_with_the_sources_search_and_the_original_options():
    original = resolvconf.parse(ORIGINAL)
    text = resolvconf.render_managed([("127.0.0.35", 53)], ("lease.test",), original.options)
    assert text.splitlines()[2:] == [
        "nameserver 127.0.0.35",
        "search lease.test",
        "options rotate timeout:1 edns0",
    ]
    assert text.startswith(resolvconf.MARKER) and resolvconf.is_bootres(text) and not resolvconf.is_bootres(ORIGINAL)
    assert resolvconf.parse(text).nameservers == ("127.0.0.35",)


def test_trust_ad_only_when_the_admin_opts_in_even_when_the_original_had_it():
    """bootres validates nothing: glibc must not trust its AD bit unless trust_ad = yes (docs/security.md)."""
    stub = resolvconf.parse("nameserver 127.0.0.53\noptions edns0 trust-ad\n")  # systemd-resolved's stub file
    plain = resolvconf.render_managed([("127.0.0.35", 53)], (), stub.options)
    opted = resolvconf.render_managed([("127.0.0.35", 53)], (), stub.options, trust_ad=True)
    assert resolvconf.parse(plain).options == ("edns0",)
    assert resolvconf.parse(opted).options == ("edns0", "trust-ad")


def test_original_nameservers_without_duplicates():
    assert resolvconf.parse(ORIGINAL).nameservers == ("198.18.0.10", "198.18.0.11")


def test_only_port_53_listen_addresses_can_be_named():
    text = resolvconf.render_managed([("127.0.0.35", 5353), ("::1", 53), ("127.0.0.36", 53)], (), ())
    assert resolvconf.parse(text).nameservers == ("::1", "127.0.0.36")
    assert text.endswith("options edns0\n")
    with pytest.raises(ValueError):
        resolvconf.render_managed([("127.0.0.35", 5353)], (), ())


def test_at_most_three_nameservers():
    listen = [(f"127.0.0.{n}", 53) for n in range(30, 35)]
    assert len(resolvconf.parse(resolvconf.render_managed(listen, (), ())).nameservers) == resolvconf.MAXNS


# --- the parser


def test_parse_reads_like_glibc():
    parsed = resolvconf.parse(
        "# comment\n; also a comment\nsearch a.example b.example\nnameserver 198.18.0.10 trailing words\n"
        "nameserver\t2001:db8::1\r\n  nameserver fe80::1%eth0\nnameserver 198.18.0.10\n"
        "domain c.example\noptions rotate\noptions timeout:1 rotate\nsortlist 198.18.0.0/255.254.0.0\n"
    )
    assert parsed.nameservers == ("198.18.0.10", "2001:db8::1", "fe80::1%eth0")
    assert parsed.search == ("c.example",)  # the last search or domain line wins
    assert parsed.options == ("rotate", "timeout:1")
    assert parsed.problems == () and parsed.nameserver_lines == 4


def test_parse_names_every_skipped_line():
    parsed = resolvconf.parse("nameserver foo\nnameserver\ndomain\nlookup file bind\nnameserver 198.18.0.300\n")
    assert parsed.nameservers == () and parsed.nameserver_lines == 3
    assert parsed.problems == (
        "line 1: nameserver 'foo' is not an IP address",
        "line 2: nameserver without an address",
        "line 3: domain without a name",
        "line 4: unknown keyword 'lookup'",
        "line 5: nameserver '198.18.0.300' is not an IP address",
    )


def test_search_line_without_domains_empties_the_list():
    assert resolvconf.parse("search a.example\nsearch\n").search == ()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parse_never_raises_and_keeps_only_addresses(text):
    parsed = resolvconf.parse(text)
    for address in parsed.nameservers:
        ipaddress.ip_address(address)
    assert len(parsed.problems) <= text.count("\n") + 1


# --- bootres's own files


def test_is_bootres_knows_both_files():
    managed = resolvconf.render_managed([("127.0.0.35", 53)], (), ())
    stopped = resolvconf.render_stopped(["198.18.0.10"], (), ())
    assert resolvconf.is_bootres(managed) and resolvconf.is_bootres(stopped)
    assert managed.startswith(resolvconf.MARKER) and stopped.startswith(resolvconf.STOPPED_MARKER)
    assert not resolvconf.is_bootres(ORIGINAL)
    assert not resolvconf.is_bootres("nameserver 1.2.3.4 # managed by bootres\n")


def test_render_managed_carries_the_sources_search_and_the_original_options():
    text = resolvconf.render_managed([("127.0.0.35", 53), ("::1", 53)], ("lab.example", "corp.example"),
                                     ("rotate", "edns0"))
    assert text.splitlines()[2:] == [
        "nameserver 127.0.0.35",
        "nameserver ::1",
        "search lab.example corp.example",
        "options rotate edns0",
    ]
    with pytest.raises(ValueError):
        resolvconf.render_managed([("0.0.0.0", 53)], (), ())


def test_render_stopped_lists_the_upstreams_directly():
    text = resolvconf.render_stopped(["198.18.0.10", "198.18.0.11", "2001:db8::1", "198.18.0.12"], ("lab.example",), ())
    parsed = resolvconf.parse(text)
    assert parsed.nameservers == ("198.18.0.10", "198.18.0.11", "2001:db8::1")
    assert parsed.search == ("lab.example",) and parsed.options == ()  # edns0 only for the local stub
    assert text.startswith(resolvconf.STOPPED_MARKER)
