"""publicsuffix: which domains are public suffixes, from Debian's list or, without it, single labels only."""

import pytest

from bootres.core.publicsuffix import BUILT_IN, PublicSuffixes

PSL = PublicSuffixes.parse("// comment\ncom\nnet\nuk\nco.uk\n*.ck\n!www.ck\n// ===END===\n")


@pytest.mark.parametrize("domain, public", [
    ("com", True), ("co.uk", True), ("uk", True), ("example", True), ("anything.ck", True),
    ("www.ck", False), ("example.com", False), ("corp.example", False), ("shop.example.co.uk", False),
])
def test_public_suffix_rules(domain, public):
    assert PSL.is_public(domain) is public


def test_without_the_list_only_single_labels_are_public():
    assert BUILT_IN.is_public("com") and not BUILT_IN.is_public("co.uk")
