import pytest

from ronda.scanner import ScanInputError, parse_ports, top_ports
from ronda.scanner.ports import ranked_ports


def test_lists_and_ranges() -> None:
    assert parse_ports("22,80,8000-8003") == [22, 80, 8000, 8001, 8002, 8003]
    assert parse_ports(" 443 , 22 22 ") == [22, 443]
    assert parse_ports("T:21-22") == [21, 22]
    assert parse_ports("65530-") == [65530, 65531, 65532, 65533, 65534, 65535]


def test_all() -> None:
    for spec in ("all", "1-65535", "-"):
        ports = parse_ports(spec)
        assert len(ports) == 65535 and ports[0] == 1 and ports[-1] == 65535


def test_top_n_is_ranked_by_real_world_frequency() -> None:
    assert top_ports(5) == [80, 23, 443, 21, 22]
    assert len(parse_ports("top 100")) == 100
    assert parse_ports("top:10") == sorted(top_ports(10))
    assert set(parse_ports("top 1000")) >= {22, 25, 80, 443, 3306, 3389, 5432, 8080}
    assert parse_ports("top 3, 9999") == [23, 80, 443, 9999]
    ranked = ranked_ports()
    assert len(ranked) == 65535 and len(set(ranked)) == 65535


@pytest.mark.parametrize("spec", ["", "0", "65536", "80-22", "abc", "22,x", "top 0", "top 70000", "1-99999"])
def test_bad_ports(spec: str) -> None:
    with pytest.raises(ScanInputError) as caught:
        parse_ports(spec)
    assert caught.value.field == "ports"
