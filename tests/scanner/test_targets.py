import ipaddress

import pytest

from ronda.scanner import ScanInputError, parse_targets


def test_single_addresses_v4_and_v6() -> None:
    assert list(parse_targets("10.0.0.7")) == ["10.0.0.7"]
    assert list(parse_targets("2001:db8::1")) == ["2001:db8::1"]
    assert list(parse_targets("[::1]")) == ["::1"]


def test_cidr_skips_network_and_broadcast_but_not_for_tiny_networks() -> None:
    assert list(parse_targets("192.168.5.0/30")) == ["192.168.5.1", "192.168.5.2"]
    assert list(parse_targets("192.168.5.0/31")) == ["192.168.5.0", "192.168.5.1"]
    assert list(parse_targets("192.168.5.9/32")) == ["192.168.5.9"]
    assert len(parse_targets("10.1.0.0/24")) == 254
    assert len(parse_targets("2001:db8::/124")) == 16


def test_ranges() -> None:
    assert list(parse_targets("10.0.0.1-4")) == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert list(parse_targets("10.0.0.254-10.0.1.1")) == ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]
    assert list(parse_targets("2001:db8::fe-2001:db8::101")) == [
        "2001:db8::fe", "2001:db8::ff", "2001:db8::100", "2001:db8::101",
    ]


def test_lists_exclusions_order_and_duplicates() -> None:
    targets = parse_targets(["10.0.0.1, 10.0.0.3", "10.0.0.0/29 10.0.0.1"], exclude=["10.0.0.5", "10.0.0.6/31"])
    assert list(targets) == ["10.0.0.1", "10.0.0.3", "10.0.0.2", "10.0.0.4"]
    assert len(targets) == 4
    assert "10.0.0.4" in targets and "10.0.0.5" not in targets
    assert targets.networks == [
        ipaddress.ip_network("10.0.0.1/32"), ipaddress.ip_network("10.0.0.2/31"), ipaddress.ip_network("10.0.0.4/32"),
    ]


def test_hostnames_resolve_and_keep_their_name() -> None:
    targets = parse_targets("localhost")
    assert list(targets) == ["127.0.0.1"]
    assert targets.hostnames == {"127.0.0.1": "localhost"}


def test_max_hosts() -> None:
    assert len(parse_targets("10.0.0.0/16")) == 65534
    with pytest.raises(ScanInputError) as caught:
        parse_targets("10.0.0.0/15")
    assert caught.value.field == "target" and "limit" in str(caught.value)
    with pytest.raises(ScanInputError):
        parse_targets("10.0.0.0/24", max_hosts=100)
    assert len(parse_targets("10.0.0.0/24", exclude=["10.0.0.0/25"], max_hosts=200)) == 127
    with pytest.raises(ScanInputError):
        parse_targets("2001:db8::/64")


@pytest.mark.parametrize(
    "spec",
    [
        "", "   ", "10.0.0.300", "10.0.0.5-1", "10.0.0.1-300", "10.0.0.0/33", "foo..bar", "bad$name", "1.2.3",
        "no-such-host.invalid",
    ],
)
def test_bad_targets(spec: str) -> None:
    with pytest.raises(ScanInputError) as caught:
        parse_targets(spec)
    assert caught.value.field == "target"
    assert str(caught.value)


def test_bad_exclusion_and_everything_excluded() -> None:
    with pytest.raises(ScanInputError) as caught:
        parse_targets("10.0.0.1", exclude=["nonsense!"])
    assert caught.value.field == "exclude"
    with pytest.raises(ScanInputError) as caught:
        parse_targets("10.0.0.1-2", exclude=["10.0.0.0/30"])
    assert "excluded" in str(caught.value)
