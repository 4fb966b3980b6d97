"""Private keys of the PEM type a source test string had, made from the case's RNG (a real key structure, never
the source's key)."""

from __future__ import annotations

import base64
import random
import textwrap
from functools import lru_cache

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def _probable_prime(bits: int, rng: random.Random) -> int:
    while True:
        n = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if all(n % p for p in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)) and _miller_rabin(n, rng):
            return n


def _miller_rabin(n: int, rng: random.Random, rounds: int = 16) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


@lru_cache(maxsize=64)
def _rsa(seed: int) -> rsa.RSAPrivateKey:
    rng = random.Random(seed)
    e = 65537
    while True:
        p, q = _probable_prime(1024, rng), _probable_prime(1024, rng)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key()


def private_key(kind: str, rng: random.Random) -> str:
    """PEM (or OpenSSH / PGP armour) text for `kind`, the word(s) between BEGIN and END in the source."""
    nopass = ser.NoEncryption()
    if kind == "OPENSSH PRIVATE KEY":
        key = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, nopass).decode()
    if kind == "EC PRIVATE KEY":
        ek = ec.derive_private_key(rng.randrange(1, 2**255), ec.SECP256R1())
        return ek.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, nopass).decode()
    if kind == "PGP PRIVATE KEY BLOCK":  # armour around random packet bytes: the shape, not a usable key
        body = "\n".join(textwrap.wrap(base64.b64encode(b"\x95\x03\xc6" + rng.randbytes(900)).decode(), 64))
        return f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{body}\n-----END PGP PRIVATE KEY BLOCK-----\n"
    key = _rsa(rng.randrange(8))  # RSA generation is slow: eight keys shared by every case
    if kind == "PRIVATE KEY":
        return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, nopass).decode()
    if kind == "ENCRYPTED PRIVATE KEY":
        return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                 ser.BestAvailableEncryption(b"yardstick")).decode()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, nopass).decode()
    if kind != "RSA PRIVATE KEY":  # DSA and other legacy types: the header names the type, the body is DER
        pem = pem.replace("RSA PRIVATE KEY", kind)
    return pem
