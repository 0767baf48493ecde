"""Version comparison: dpkg's order on real-world versions, normalisation, and its laws (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ronda.cve.versions import compare, normalize, sort_key


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("8.9p1", "9.8", -1),
        ("9.8p1", "9.8", 1),  # 9.8p1 is the portable release after 9.8
        ("9.7p1", "9.8", -1),
        ("8.5p1", "8.5", 1),
        ("1.1.1w", "1.1.1", 1),
        ("1.1.1w", "1.1.1k", 1),
        ("3.0.13", "3.0.9", 1),
        ("3.0.13", "3.0.13", 0),
        ("2.4.57", "2.4.58", -1),
        ("122.0.6261.94", "122.0.6261.128", -1),
        ("1.0~rc1", "1.0", -1),  # ~ sorts before the end of the string
        ("1.0", "1.0a", -1),
        ("1.0", "1.0.1", -1),
        ("1", "1~", 1),
        ("1:1.0", "9.9", 1),  # the epoch wins
        ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", 1),
        ("2.4.57-2", "2.4.57-10", -1),
        ("8.7p1-38.el9", "8.7p1-38.el9", 0),
        ("0", "", 0),
        ("1.00", "1.0", 0),
    ],
)
def test_compare_real_versions(left: str, right: str, expected: int) -> None:
    assert compare(left, right) == expected
    assert compare(right, left) == -expected


@pytest.mark.parametrize(
    ("raw", "packaged", "expected"),
    [
        ("1:9.2p1-2+deb12u3", True, "9.2p1"),
        ("2.4.57-2", True, "2.4.57"),
        ("8.7p1-38.el9", True, "8.7p1"),
        ("3.0.11-1~deb12u2", True, "3.0.11"),
        ("1.22.1+dfsg-1", True, "1.22.1"),
        ("8.9p1 Ubuntu-3ubuntu0.6", False, "8.9p1"),
        ("OpenSSH_9.6", False, "9.6"),
        ("17.5 (17E1234)", False, "17.5"),
        ("v1.2.3", False, "1.2.3"),
        ("122.0.6261.94", False, "122.0.6261.94"),
        ("1.1.1w", False, "1.1.1w"),
        ("", False, None),
        ("unknown", False, None),
    ],
)
def test_normalize(raw: str, packaged: bool, expected: str | None) -> None:
    assert normalize(raw, packaged=packaged) == expected


# Versions as package managers write them: optional epoch, upstream of digits, letters, dots, plus
# and tilde, optional revision.
_chunk = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["a", "b", "p", "rc", "beta", "z", "w"]))
_upstream = st.lists(st.tuples(_chunk, st.sampled_from(["", ".", "~", "+", "."])), min_size=1, max_size=6).map(
    lambda parts: "".join(a + b for a, b in parts)
).filter(lambda text: text[:1].isdigit())
_revision = st.one_of(st.just(""), st.integers(0, 40).map(lambda n: f"-{n}"),
                      st.sampled_from(["-1ubuntu0.2", "-2+deb12u3", "-38.el9", "-1~bpo12"]))
_epoch = st.one_of(st.just(""), st.integers(0, 3).map(lambda n: f"{n}:"))
versions = st.builds(lambda e, u, r: e + u + r, _epoch, _upstream, _revision)


@settings(max_examples=150, deadline=None)
@given(versions, versions)
def test_antisymmetry(a: str, b: str) -> None:
    assert compare(a, b) == -compare(b, a)
    assert (compare(a, b) == 0) == (sort_key(a) == sort_key(b))


@settings(max_examples=150, deadline=None)
@given(versions, versions, versions)
def test_transitivity(a: str, b: str, c: str) -> None:
    ordered = sorted([a, b, c], key=sort_key)
    assert compare(ordered[0], ordered[1]) <= 0
    assert compare(ordered[1], ordered[2]) <= 0
    assert compare(ordered[0], ordered[2]) <= 0
    if compare(a, b) <= 0 and compare(b, c) <= 0:
        assert compare(a, c) <= 0


@settings(max_examples=200, deadline=None)
@given(versions)
def test_reflexive_and_suffix_laws(a: str) -> None:
    assert compare(a, a) == 0
    # A pre-release (~) sorts before, an appended letter after, the version it extends.
    if "-" not in a:
        assert compare(a + "~rc1", a) == -1
        assert compare(a + "a", a) == 1


def _dpkg_reference(a: str, b: str) -> int:
    """dpkg's verrevcmp, written out the way dpkg's C code does it (an independent check)."""

    def order(c: str) -> int:
        if c.isdigit():
            return 0
        if c.isalpha():
            return ord(c)
        if c == "~":
            return -1
        return ord(c) + 256

    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = order(a[i]) if i < len(a) else 0
            bc = order(b[j]) if j < len(b) else 0
            if ac != bc:
                return (ac > bc) - (ac < bc)
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return 1 if first_diff > 0 else -1
    return 0


@settings(max_examples=400, deadline=None)
@given(_upstream, _upstream)
def test_agrees_with_dpkg_algorithm(a: str, b: str) -> None:
    assert compare(a, b) == _dpkg_reference(a, b)
