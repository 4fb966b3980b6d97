"""Key material built from the formats' own specifications (ASN.1 DER, OpenSSH wire format, OpenPGP armor).

`cryptography` is not a dependency of this project, so keys are assembled by hand: every structure has the
real layout (SEQUENCE / INTEGER / OID encodings, `openssh-key-v1` sections, armor CRC-24) filled with seeded
random numbers of the real sizes. The bodies therefore start and end exactly like real keys
(`MIIEpAIBAAKCAQEA…`, `b3BlbnNzaC1rZXktdjEAAAAA…`) without being usable keys.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct

# -- DER -------------------------------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(value: int) -> bytes:
    if value == 0:
        return tlv(0x02, b"\x00")
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if body[0] & 0x80:
        body = b"\x00" + body
    return tlv(0x02, body)


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out.extend(reversed(chunk))
    return tlv(0x06, bytes(out))


NULL = b"\x05\x00"


def octets(data: bytes) -> bytes:
    return tlv(0x04, data)


def bits(data: bytes) -> bytes:
    return tlv(0x03, b"\x00" + data)


def rand_int(rng: random.Random, nbits: int, odd: bool = False) -> int:
    v = rng.getrandbits(nbits) | (1 << (nbits - 1))
    return v | 1 if odd else v


def rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "big") if n else b""


def pem(label: str, der: bytes, width: int = 64, headers: str = "") -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + width] for i in range(0, len(body), width)]
    head = f"-----BEGIN {label}-----\n" + (headers + "\n" if headers else "")
    return head + "\n".join(lines) + f"\n-----END {label}-----"


# -- private keys ----------------------------------------------------------------------------------------


def rsa_pkcs1_der(rng: random.Random, bits_: int = 2048) -> bytes:
    half = bits_ // 2
    n = rand_int(rng, bits_, odd=True)
    d = rand_int(rng, bits_ - 1, odd=True)
    p, q = rand_int(rng, half, odd=True), rand_int(rng, half, odd=True)
    dp, dq, qi = rand_int(rng, half - 1), rand_int(rng, half - 1), rand_int(rng, half - 1)
    return seq(integer(0), integer(n), integer(65537), integer(d), integer(p), integer(q),
               integer(dp), integer(dq), integer(qi))


def rsa_private_pem(rng: random.Random) -> str:
    return pem("RSA PRIVATE KEY", rsa_pkcs1_der(rng, rng.choice([2048, 2048, 3072, 4096])))


def rsa_encrypted_legacy_pem(rng: random.Random) -> str:
    iv = rand_bytes(rng, 16).hex().upper()
    der = rsa_pkcs1_der(rng, 2048)
    body = rand_bytes(rng, len(der) + (16 - len(der) % 16))
    return pem("RSA PRIVATE KEY", body, headers=f"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{iv}\n")


def pkcs8_pem(rng: random.Random) -> str:
    which = rng.choice(["rsa", "ec", "ed25519"])
    if which == "rsa":
        der = seq(integer(0), seq(oid("1.2.840.113549.1.1.1"), NULL), octets(rsa_pkcs1_der(rng, 2048)))
    elif which == "ec":
        inner = seq(integer(1), octets(rand_bytes(rng, 32)),
                    tlv(0xA1, bits(b"\x04" + rand_bytes(rng, 64))))
        der = seq(integer(0), seq(oid("1.2.840.10045.2.1"), oid("1.2.840.10045.3.1.7")), octets(inner))
    else:
        der = seq(integer(0), seq(oid("1.3.101.112")), octets(octets(rand_bytes(rng, 32))))
    return pem("PRIVATE KEY", der)


def ec_private_pem(rng: random.Random) -> str:
    curve, size = rng.choice([("1.2.840.10045.3.1.7", 32), ("1.3.132.0.34", 48)])
    der = seq(integer(1), octets(rand_bytes(rng, size)), tlv(0xA0, oid(curve)),
              tlv(0xA1, bits(b"\x04" + rand_bytes(rng, 2 * size))))
    return pem("EC PRIVATE KEY", der)


def dsa_private_pem(rng: random.Random) -> str:
    der = seq(integer(0), integer(rand_int(rng, 1024, True)), integer(rand_int(rng, 160, True)),
              integer(rand_int(rng, 1023)), integer(rand_int(rng, 1023)), integer(rand_int(rng, 159)))
    return pem("DSA PRIVATE KEY", der)


def encrypted_pkcs8_pem(rng: random.Random) -> str:
    pbkdf2 = seq(oid("1.2.840.113549.1.5.12"), seq(octets(rand_bytes(rng, 16)), integer(2048),
                                                     seq(oid("1.2.840.113549.2.9"), NULL)))
    cipher = seq(oid("2.16.840.1.101.3.4.1.42"), octets(rand_bytes(rng, 16)))
    alg = seq(oid("1.2.840.113549.1.5.13"), seq(pbkdf2, cipher))
    der = seq(alg, octets(rand_bytes(rng, 1232)))
    return pem("ENCRYPTED PRIVATE KEY", der)


def _ssh_string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _mpint(v: int) -> bytes:
    body = v.to_bytes((v.bit_length() + 7) // 8, "big")
    if body and body[0] & 0x80:
        body = b"\x00" + body
    return _ssh_string(body)


def ed25519_public_blob(pub: bytes) -> bytes:
    return _ssh_string(b"ssh-ed25519") + _ssh_string(pub)


def rsa_public_blob(rng: random.Random, bits_: int = 2048) -> bytes:
    return _ssh_string(b"ssh-rsa") + _mpint(65537) + _mpint(rand_int(rng, bits_, True))


def openssh_private_pem(rng: random.Random) -> str:
    pub = rand_bytes(rng, 32)
    blob = ed25519_public_blob(pub)
    check = rand_bytes(rng, 4)
    comment = rng.choice([b"dev@laptop", b"ci-deploy", b"jenkins@build-01", b""])
    priv = (check + check + _ssh_string(b"ssh-ed25519") + _ssh_string(pub)
            + _ssh_string(rand_bytes(rng, 32) + pub) + _ssh_string(comment))
    pad = 1
    while len(priv) % 8:
        priv += bytes([pad])
        pad += 1
    data = (b"openssh-key-v1\x00" + _ssh_string(b"none") + _ssh_string(b"none") + _ssh_string(b"")
            + struct.pack(">I", 1) + _ssh_string(blob) + _ssh_string(priv))
    return pem("OPENSSH PRIVATE KEY", data, width=70)


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def pgp_armor(label: str, packet: bytes) -> str:
    body = base64.b64encode(packet).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    crc = base64.b64encode(_crc24(packet).to_bytes(3, "big")).decode()
    return f"-----BEGIN PGP {label}-----\n\n{lines}\n={crc}\n-----END PGP {label}-----"


def pgp_private_block(rng: random.Random) -> str:
    body = b"\x04" + struct.pack(">I", 1_600_000_000 + rng.randrange(10**8)) + b"\x01" + rand_bytes(rng, 900)
    return pgp_armor("PRIVATE KEY BLOCK", b"\x95" + struct.pack(">H", len(body)) + body)


def pgp_public_block(rng: random.Random) -> str:
    body = b"\x04" + struct.pack(">I", 1_600_000_000 + rng.randrange(10**8)) + b"\x01" + rand_bytes(rng, 270)
    return pgp_armor("PUBLIC KEY BLOCK", b"\x99" + struct.pack(">H", len(body)) + body)


def putty_private_key(rng: random.Random) -> str:
    pub = base64.b64encode(ed25519_public_blob(rand_bytes(rng, 32))).decode()
    priv = base64.b64encode(_ssh_string(rand_bytes(rng, 32))).decode()
    version = rng.choice([2, 3])
    return (f"PuTTY-User-Key-File-{version}: ssh-ed25519\nEncryption: none\n"
            f"Comment: eddsa-key-2024{rng.randrange(1, 13):02d}{rng.randrange(1, 28):02d}\n"
            f"Public-Lines: 2\n{pub[:64]}\n{pub[64:]}\nPrivate-Lines: 1\n{priv}\n"
            f"Private-MAC: {hashlib.sha256(rand_bytes(rng, 16)).hexdigest()}")


def ssh2_private_key(rng: random.Random) -> str:
    body = base64.b64encode(b"\x3f\x6f\xf9\xeb" + rand_bytes(rng, 640)).decode()
    lines = "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
    return (f"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: \"rsa-key-2023{rng.randrange(1, 13):02d}01\"\n"
            f"{lines}\n---- END SSH2 ENCRYPTED PRIVATE KEY ----")


def any_private_pem(rng: random.Random) -> str:
    return rng.choice([rsa_private_pem, ec_private_pem, pkcs8_pem])(rng)


# -- public material (hard negatives) --------------------------------------------------------------------


def ssh_public_key(rng: random.Random) -> str:
    if rng.random() < 0.5:
        blob, kind = ed25519_public_blob(rand_bytes(rng, 32)), "ssh-ed25519"
    else:
        blob, kind = rsa_public_blob(rng), "ssh-rsa"
    return f"{kind} {base64.b64encode(blob).decode()} {rng.choice(['deploy@ci-runner', 'alice@macbook', 'build'])}"


def certificate_pem(rng: random.Random) -> str:
    name = seq(tlv(0x31, seq(oid("2.5.4.3"), tlv(0x0C, b"internal-ca.corp"))))
    spki = seq(seq(oid("1.2.840.113549.1.1.1"), NULL),
               bits(seq(integer(rand_int(rng, 2048, True)), integer(65537))))
    validity = seq(tlv(0x17, b"240101000000Z"), tlv(0x17, b"260101000000Z"))
    tbs = seq(tlv(0xA0, integer(2)), integer(rand_int(rng, 159)), seq(oid("1.2.840.113549.1.1.11"), NULL),
              name, validity, name, spki)
    der = seq(tbs, seq(oid("1.2.840.113549.1.1.11"), NULL), bits(rand_bytes(rng, 256)))
    return pem("CERTIFICATE", der)


def public_key_pem(rng: random.Random) -> str:
    spki = seq(seq(oid("1.2.840.113549.1.1.1"), NULL), bits(seq(integer(rand_int(rng, 2048, True)), integer(65537))))
    return pem("PUBLIC KEY", spki)
