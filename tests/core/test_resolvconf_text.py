from bootres.core import resolvconf

import pytest

ORIGINAL = """\
# written by DHCP
domain example.test
search example.test corp.example.test
nameserver 198.18.0.10
nameserver 198.18.0.11
nameserver 198.18.0.10
options rotate timeout:1 edns0
"""


def test_points_at_listen_and_keeps_search_and_options():
    text = resolvconf.render(ORIGINAL, [("127.0.0.35", 53)])
    assert text.splitlines()[2:] == [
        "nameserver 127.0.0.35",
        "domain example.test",
        "search example.test corp.example.test",
        "options rotate timeout:1 edns0 trust-ad",
    ]
    assert resolvconf.is_managed(text) and not resolvconf.is_managed(ORIGINAL)
    assert resolvconf.nameservers(text) == ["127.0.0.35"]


def test_original_nameservers_without_duplicates():
    assert resolvconf.nameservers(ORIGINAL) == ["198.18.0.10", "198.18.0.11"]


def test_only_port_53_listen_addresses_can_be_named():
    text = resolvconf.render("", [("127.0.0.35", 5353), ("::1", 53), ("127.0.0.36", 53)])
    assert resolvconf.nameservers(text) == ["::1", "127.0.0.36"]
    assert text.endswith("options edns0 trust-ad\n")
    with pytest.raises(ValueError):
        resolvconf.render("", [("127.0.0.35", 5353)])


def test_at_most_three_nameservers():
    listen = [(f"127.0.0.{n}", 53) for n in range(30, 35)]
    assert len(resolvconf.nameservers(resolvconf.render("", listen))) == resolvconf.MAXNS
