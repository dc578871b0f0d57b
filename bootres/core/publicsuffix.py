"""Public suffixes: which domains a network source may not make routing domains.

A search domain from DHCP or an RA routes names to that source's servers
(split DNS, ``bootres.core.sources``).  A rogue DHCP server on a secondary
interface offering ``search com net`` would then own every name under
them; so a search domain routes only when it is below a public suffix
(``corp.example``, ``example.co.uk``), never when it is one (``com``,
``co.uk``).  Routing domains an admin states (networkd's ``~domain``,
``DOMAIN=ADDRESS`` in the configuration) are not judged.

The rules are the Public Suffix List (https://publicsuffix.org/list/) as
Debian's ``publicsuffix`` package installs it, when it is there; without
it, the list's implicit rule alone: every single-label name (a TLD) is a
public suffix.  Pure: text in, answers out.
"""

from __future__ import annotations

MAX_LIST_BYTES = 4 * 1024 * 1024  # the 2023 list is 246 KB


class PublicSuffixes:
    """The rules of one list; ``is_public(domain)`` for lower-case names without a trailing dot."""

    def __init__(self, rules: frozenset[str] = frozenset(), exceptions: frozenset[str] = frozenset()):
        self.rules = rules  # "com", "co.uk", "*.ck" (wildcards kept as written)
        self.exceptions = exceptions  # "www.ck" for "!www.ck"

    @classmethod
    def parse(cls, text: str) -> PublicSuffixes:
        """The list's format: one rule per line, ``//`` comments, ``*.`` wildcards, ``!`` exceptions."""
        # Parsed at start when a source has a dotted search domain: set comprehensions, ~5 ms for 9,500 rules.
        words = {line.split(None, 1)[0].lower() for line in text.split("\n") if line.strip()}
        rules = {word for word in words if not word.startswith(("//", "!"))}
        exceptions = {word[1:] for word in words if word.startswith("!")}
        return cls(frozenset(rules), frozenset(exceptions))

    def is_public(self, domain: str) -> bool:
        """``domain`` is itself a public suffix: ``com``, ``co.uk``, ``anything.ck`` (by ``*.ck``), any TLD."""
        labels = domain.split(".")
        if len(labels) == 1:
            return True  # the implicit "*" rule: an unlisted TLD is public too
        if domain in self.exceptions:
            return False
        return domain in self.rules or "*." + ".".join(labels[1:]) in self.rules


BUILT_IN = PublicSuffixes()  # without the list: TLDs only
