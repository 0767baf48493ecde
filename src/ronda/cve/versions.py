"""Version comparison for CVE ranges: Debian's ordering (dpkg's verrevcmp) on normalised versions.

NVD ranges are written in upstream versions (`8.6`, `9.8`, `1.1.1w`, `122.0.6261.94`); what we compare
them with comes from package managers (`1:9.2p1-2+deb12u3`, `8.7p1-38.el9`), banners (`8.9p1 Ubuntu-3`)
or application inventories (`17.5 (17E1234)`). normalize() reduces each to its upstream version;
compare()/sort_key() order versions as dpkg does: digit runs numerically, everything else character by
character with letters before other symbols and `~` before everything, even the end of the string
(so `1.0~rc1` < `1.0` < `1.0a` < `1.0.1`, `8.9` < `8.9p1` < `9.8`, `1.1.1` < `1.1.1w`).

The key is a plain tuple, cached per string: a re-match compares each distinct version once.
"""

from __future__ import annotations

import re
from functools import lru_cache

# One fragment: a non-digit run's character orders, then the digit run's value. NEUTRAL is what dpkg
# compares a missing fragment as (empty text, number 0).
Fragment = tuple[tuple[int, ...], int]
Key = tuple[Fragment, ...]
NEUTRAL: Fragment = ((0,), 0)

_FRAGMENT = re.compile(r"(\D*)(\d*)")
_EPOCH = re.compile(r"^(\d+):(.*)$")
_FIRST_VERSION = re.compile(r"\d[0-9A-Za-z.+~_:-]*")


def _order(char: str) -> int:
    """dpkg's character order: ~ first, then the end of a string, letters, then everything else."""
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


@lru_cache(maxsize=200_000)
def part_key(text: str) -> Key:
    """The sort key of one version part (upstream or revision, no epoch)."""
    fragments: list[Fragment] = []
    position = 0
    while position < len(text):
        match = _FRAGMENT.match(text, position)
        if match is None or match.end() == position:  # never: the pattern consumes at least one character
            break
        letters, digits = match.group(1), match.group(2)
        fragments.append(((*(_order(c) for c in letters), 0), int(digits) if digits else 0))
        position = match.end()
    # dpkg compares a missing fragment as NEUTRAL (empty text, number 0); Python ends the shorter tuple
    # as smallest instead. A NEUTRAL at the end gives the same answer: the first fragment the other
    # version has there is compared with it. NEUTRAL appears in a version only as its first fragment
    # (a leading 0), so the empty version is [NEUTRAL, NEUTRAL], the same as "0".
    fragments.append(NEUTRAL)
    if len(fragments) == 1:
        fragments.append(NEUTRAL)
    return tuple(fragments)


def split_debian(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision) of a Debian version; a missing epoch is 0, a missing revision ""."""
    epoch = 0
    match = _EPOCH.match(version)
    if match:
        epoch, version = int(match.group(1)), match.group(2)
    upstream, _, revision = version.rpartition("-") if "-" in version else (version, "", "")
    return epoch, upstream, revision


@lru_cache(maxsize=200_000)
def sort_key(version: str) -> tuple[int, Key, Key]:
    """A key that orders full Debian versions (epoch:upstream-revision) as dpkg does."""
    epoch, upstream, revision = split_debian(version.strip())
    return epoch, part_key(upstream), part_key(revision)


def compare(left: str, right: str) -> int:
    """-1, 0 or 1 as dpkg --compare-versions orders two full versions."""
    a, b = sort_key(left), sort_key(right)
    return (a > b) - (a < b)


@lru_cache(maxsize=200_000)
def normalize(version: str | None, *, packaged: bool = False) -> str | None:
    """The upstream version to compare with NVD ranges, or None when there is none.

    Drops an epoch (`1:`), a leading `v`, and whatever follows the version itself (`8.9p1 Ubuntu-3`,
    `17.5 (17E1234)`). `packaged` (dpkg, rpm, pacman ...) also drops the package revision after the
    last hyphen (`-2+deb12u3`, `-38.el9`) and a repack suffix (`+dfsg`), which NVD never carries.
    """
    if not version:
        return None
    text = version.strip()
    match = _EPOCH.match(text)
    if match:
        text = match.group(2)
    if text[:1] in ("v", "V") and text[1:2].isdigit():
        text = text[1:]
    found = _FIRST_VERSION.search(text)
    if found is None:
        return None
    text = found.group(0)
    if packaged:
        if "-" in text:
            text = text.rsplit("-", 1)[0]
        text = text.split("+", 1)[0]
    text = text.rstrip(".-_:+")
    return text or None


def version_key(version: str) -> Key:
    """The comparison key of an upstream version (normalised, no epoch or revision)."""
    return part_key(version)
