#!/usr/bin/python3
"""Independent check of a Privatus profile with PyCA `cryptography` (OpenSSL), not swift-crypto.

Reads the keystore as docs/PROTOCOL.md describes it, derives the key with scrypt, opens it with
AES-256-GCM, and checks that the sealed private keys are the halves of the public identity in
identity.json, that the PeerID is SHA-256 of the identity key, that both key bindings verify for
their own purpose and fail for the other, and that no private key appears in the keystore file.

usage: keystore_crosscheck.py PROFILE_DIR PASSWORD
"""
import base64
import hashlib
import json
import struct
import sys
import unicodedata

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

HEADER = struct.Struct(">8sHBBBB32s32s12sI")


def raw(public_key):
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def signed_message(purpose, fields):
    return b"Privatus-v1/" + purpose.encode() + b"\x00" + fields


def main(profile, password):
    data = open(f"{profile}/keystore", "rb").read()
    magic, version, kdf, log2n, r, p, salt, check, nonce, length = HEADER.unpack_from(data)
    assert magic == b"PRIVATKS", "magic"
    assert version == 1 and kdf == 1, "version and kdf"
    assert 10 <= log2n <= 22 and r == 8 and 1 <= p <= 4, "parameters"
    assert len(data) == HEADER.size + length + 16 + 32, "length"
    assert hashlib.sha256(data[:-32]).digest() == data[-32:], "integrity digest"

    secret = unicodedata.normalize("NFC", password).encode()
    master = Scrypt(salt=salt, length=32, n=1 << log2n, r=r, p=p).derive(secret)
    seal_key = HKDFExpand(hashes.SHA256(), 32, b"Privatus-v1/keystore/seal").derive(master)
    check_value = HKDFExpand(hashes.SHA256(), 32, b"Privatus-v1/keystore/check").derive(master)
    assert check_value == check, "key check value"
    body = data[HEADER.size:-32]
    payload = AESGCM(seal_key).decrypt(nonce, body, data[:HEADER.size])

    fields, offset = {}, 0
    for expected_tag in (1, 2, 3, 4, 5):
        tag, size = struct.unpack_from(">BH", payload, offset)
        assert tag == expected_tag, f"payload tag {tag}"
        fields[tag] = payload[offset + 3:offset + 3 + size]
        offset += 3 + size
    assert offset == len(payload), "payload length"

    identity = json.load(open(f"{profile}/identity.json"))
    signing = ed25519.Ed25519PrivateKey.from_private_bytes(fields[1])
    identity_key = raw(signing.public_key())
    assert base64.b64decode(identity["identityKey"]) == identity_key, "identity key"
    assert hashlib.sha256(identity_key).hexdigest() == identity["peerId"], "PeerID"

    verifier = ed25519.Ed25519PublicKey.from_public_bytes(identity_key)
    bindings = {"identity-dh": ("identityDH", fields[2]), "noise-static": ("noiseStatic", fields[3])}
    for purpose, (name, private) in bindings.items():
        public = raw(x25519.X25519PrivateKey.from_private_bytes(private).public_key())
        assert base64.b64decode(identity[name + "Key"]) == public, f"{name} key"
        signature = base64.b64decode(identity[name + "Signature"])
        verifier.verify(signature, signed_message(purpose, public))
        other = "noise-static" if purpose == "identity-dh" else "identity-dh"
        try:
            verifier.verify(signature, signed_message(other, public))
            raise AssertionError(f"{name} signature verified for {other}")
        except InvalidSignature:
            pass

    for tag in (1, 2, 3, 4):
        key = fields[tag]
        assert len(key) == 32, f"key {tag} length"
        for encoding in (key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)[:40]):
            assert encoding not in data, f"private key {tag} appears in the keystore file"
    print(f"keystore cross-check: name={fields[5].decode()!r} scrypt N=2^{log2n} r={r} p={p}: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
