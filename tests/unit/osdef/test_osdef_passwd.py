"""SHA-crypt hashes equal glibc's (vectors from Drepper's specification and glibc 2.36)."""

import pytest

from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef.passwd import hash_password, sha_crypt

VECTORS = [
    ("Hello world!", "saltstring", "sha256", None,
     "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    ("Hello world!", "saltstring", "sha512", None,
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEO"
     "faS35inz1"),
    ("Hello world!", "saltstringsaltstring", "sha512", 10000,
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8v"
     "OuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("This is just a test", "toolongsaltstring", "sha256", 5000,
     "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5"),
    ("", "x", "sha512", None,
     "$6$x$QSmr1Bx2g4O6BzKvdkgOcyU6H91X6I/XBv5pSalMhSPkwdH6Beo3F455xZJg0v//bxVK5F4OE5k1.0xuR26MK0"),
]  # fmt: skip


@pytest.mark.parametrize(("password", "salt", "method", "rounds", "expected"), VECTORS)
def test_sha_crypt_matches_glibc(password, salt, method, rounds, expected):
    assert sha_crypt(password.encode(), salt, method, rounds) == expected


def test_new_hashes_have_a_random_16_character_salt():
    first, second = hash_password("secret"), hash_password("secret")
    assert first.startswith("$6$") and len(first.split("$")[2]) == 16 and first != second
    salt = first.split("$")[2]
    assert sha_crypt(b"secret", salt, "sha512") == first
    assert hash_password("secret", "SHA256").startswith("$5$")


@pytest.mark.parametrize("method", ["md5", "yescrypt", "blowfish"])
def test_other_methods_are_refused_by_name(method):
    with pytest.raises(ValidationError, match=f"PASSWD_HASHING_METHOD={method}"):
        hash_password("secret", method)
