"""CPE 2.3 names: binding and escaping (NISTIR 7695), the product table, nmap's 2.2 URIs."""

from __future__ import annotations

import pytest

from ronda.scanner.cpe import cpes_for_product, escape_component, make_cpe, uri_to_fs


def test_make_cpe_keeps_version_suffix() -> None:
    assert make_cpe("openbsd", "openssh", "8.9p1") == "cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"


def test_make_cpe_lowercases_and_turns_spaces_into_underscores() -> None:
    assert (make_cpe("Microsoft", "Internet Information Services", "10.0")
            == "cpe:2.3:a:microsoft:internet_information_services:10.0:*:*:*:*:*:*:*")


@pytest.mark.parametrize(
    ("raw", "bound"),
    [
        ("1.0+build:2", "1.0\\+build\\:2"),
        ("5.5.5-10.6.12", "5.5.5-10.6.12"),
        ("a_b.c-d", "a_b.c-d"),
        ("v1*", "v1\\*"),
        ("x?y", "x\\?y"),
        ("back\\slash", "back\\\\slash"),
        ("(beta)", "\\(beta\\)"),
        ("-", "-"),
        (None, "*"),
        ("", "*"),
        ("  ", "*"),
        ("ünï", "n"),
    ],
)
def test_escape_component(raw: str | None, bound: str) -> None:
    assert escape_component(raw) == bound


def test_make_cpe_parts_and_validation() -> None:
    os_name = make_cpe("canonical", "ubuntu_linux", "22.04", part="o")
    assert os_name == "cpe:2.3:o:canonical:ubuntu_linux:22.04:*:*:*:*:*:*:*"
    assert make_cpe("redis", "redis", None).count(":") == 12
    with pytest.raises(ValueError):
        make_cpe("a", "b", "1", part="x")
    with pytest.raises(ValueError):
        make_cpe("", "b", "1")


@pytest.mark.parametrize(
    ("product", "version", "expected"),
    [
        ("OpenSSH", "8.9p1", ["cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"]),
        ("nginx", "1.18.0", ["cpe:2.3:a:f5:nginx:1.18.0:*:*:*:*:*:*:*", "cpe:2.3:a:nginx:nginx:1.18.0:*:*:*:*:*:*:*"]),
        ("Apache httpd", "2.4.52", ["cpe:2.3:a:apache:http_server:2.4.52:*:*:*:*:*:*:*"]),
        ("Microsoft IIS httpd", "10.0", ["cpe:2.3:a:microsoft:internet_information_services:10.0:*:*:*:*:*:*:*",
                                         "cpe:2.3:a:microsoft:iis:10.0:*:*:*:*:*:*:*"]),
        ("MySQL", "8.0.35", ["cpe:2.3:a:oracle:mysql:8.0.35:*:*:*:*:*:*:*",
                             "cpe:2.3:a:mysql:mysql:8.0.35:*:*:*:*:*:*:*"]),
        ("MariaDB", "10.11.6", ["cpe:2.3:a:mariadb:mariadb:10.11.6:*:*:*:*:*:*:*"]),
        ("PostgreSQL", None, ["cpe:2.3:a:postgresql:postgresql:*:*:*:*:*:*:*:*"]),
        ("Postfix smtpd", None, ["cpe:2.3:a:postfix:postfix:*:*:*:*:*:*:*:*"]),
        ("Exim smtpd", "4.96", ["cpe:2.3:a:exim:exim:4.96:*:*:*:*:*:*:*"]),
        ("vsftpd", "3.0.5", ["cpe:2.3:a:beasts:vsftpd:3.0.5:*:*:*:*:*:*:*"]),
        ("ProFTPD", "1.3.7a", ["cpe:2.3:a:proftpd:proftpd:1.3.7a:*:*:*:*:*:*:*"]),
        ("MongoDB", "7.0.5", ["cpe:2.3:a:mongodb:mongodb:7.0.5:*:*:*:*:*:*:*"]),
        ("Apache", "2.4.52", ["cpe:2.3:a:apache:http_server:2.4.52:*:*:*:*:*:*:*"]),  # nmap's spelling
        ("Some Unknown Thing", "1.0", []),
        (None, "1.0", []),
    ],
)
def test_product_table(product: str | None, version: str | None, expected: list[str]) -> None:
    assert cpes_for_product(product, version) == expected


@pytest.mark.parametrize(
    ("uri", "fs"),
    [
        ("cpe:/a:openbsd:openssh:8.9p1", "cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"),
        ("cpe:/o:linux:linux_kernel", "cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*"),
        ("cpe:/a:mariadb:mariadb:5.5.5-10.11.19-mariadb-0%2Bdeb12u1",
         "cpe:2.3:a:mariadb:mariadb:5.5.5-10.11.19-mariadb-0\\+deb12u1:*:*:*:*:*:*:*"),
        ("cpe:/a:microsoft:iis:10.0:sp1", "cpe:2.3:a:microsoft:iis:10.0:sp1:*:*:*:*:*:*"),
        ("cpe:2.3:a:x:y:1", None),
        ("cpe:/z:x:y", None),
        ("cpe:/a::y", None),
    ],
)
def test_uri_to_fs(uri: str, fs: str | None) -> None:
    assert uri_to_fs(uri) == fs
