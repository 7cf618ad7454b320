#!/usr/bin/env python3
"""Independent test vectors for Privatus sessions (docs/PROTOCOL.md), from a second
implementation: PQXDH and the Double Ratchet written here in Python on PyCA `cryptography`
(OpenSSL) and `kyber-py` (a pure-Python ML-KEM, FIPS 203). Nothing here is shared with the
Swift code but the specification.

Writes, deterministically (every key and random value derives from a label):
  Tests/TestVectors/ratchet.json     a PQXDH handshake and a 13-message conversation with every
                                     intermediate root, chain and message key and ciphertext
  Tests/TestVectors/primitives.json  published vectors of the primitives composed (RFC 7748,
                                     RFC 8032, RFC 5869, the GCM specification's AES-256 cases), each
                                     checked here against `cryptography`
  Tests/TestVectors/noise-xx-cacophony.json
                                     the published cacophony vectors of Noise XX, copied through
                                     unchanged after every entry is recomputed by the Noise XX
                                     written here (transport handshake)

usage: generate.py [OUTPUT_DIR]   (default: Tests/TestVectors beside this folder)
"""
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from kyber_py.ml_kem import ML_KEM_768

NOW = 1_800_000_000
EXPIRES = NOW + 30 * 24 * 3600


def seed(label, size=32):
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"privatus-vector/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def raw_public(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_private(key):
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def x25519_key(label):
    return x25519.X25519PrivateKey.from_private_bytes(seed(label))


def dh(private, public_bytes):
    out = private.exchange(x25519.X25519PublicKey.from_public_bytes(public_bytes))
    assert any(out), "low-order point"
    return out


def hkdf(ikm, salt, info, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def sign(identity, purpose, fields):
    return identity.sign(b"Privatus-v1/" + purpose.encode() + b"\x00" + fields)


def u32(value):
    return struct.pack(">I", value)


def u64(value):
    return struct.pack(">Q", value)


def pad(plaintext):
    needed = len(plaintext) + 1
    if needed <= 160:
        size = 160
    elif needed <= 65536:
        size = 256
        while size < needed:
            size *= 2
    else:
        size = -(-needed // 65536) * 65536
    return plaintext + b"\x80" + bytes(size - needed)


def unpad(padded):
    stripped = padded.rstrip(b"\x00")
    assert stripped.endswith(b"\x80")
    return stripped[:-1]


# ---------------------------------------------------------------- the Double Ratchet


def kdf_rk(root, dh_out):
    out = hkdf(dh_out, root, b"Privatus-v1/ratchet-root", 64)
    return out[:32], out[32:]


def kdf_ck(chain):
    return hmac.new(chain, b"\x02", hashlib.sha256).digest(), hmac.new(chain, b"\x01", hashlib.sha256).digest()


def aead_key(message_key):
    out = hkdf(message_key, bytes(32), b"Privatus-v1/message-key", 44)
    return out[:32], out[32:]


def header_bytes(ratchet_public, pn, n):
    return b"\x01" + ratchet_public + u32(pn) + u32(n)


class Party:
    def __init__(self, name, associated_data, ratchet_keys):
        self.name = name
        self.ad = associated_data
        self.ratchet_keys = iter(ratchet_keys)
        self.root = None
        self.sending_key = None
        self.receiving_key = None
        self.cks = None
        self.ns = 0
        self.ckr = None
        self.nr = 0
        self.pn = 0
        self.skipped = {}
        self.trace = []

    def snapshot(self, event):
        self.trace.append({
            "event": event,
            "rootKey": self.root.hex(),
            "sendingRatchetKey": raw_public(self.sending_key).hex(),
            "receivingRatchetKey": self.receiving_key.hex() if self.receiving_key else None,
            "sendingChainKey": self.cks.hex() if self.cks else None,
            "sendingCount": self.ns,
            "receivingChainKey": self.ckr.hex() if self.ckr else None,
            "receivingCount": self.nr,
            "previousChainLength": self.pn,
            "skippedKeys": len(self.skipped),
        })

    def encrypt(self, plaintext):
        self.cks, message_key = kdf_ck(self.cks)
        header = header_bytes(raw_public(self.sending_key), self.pn, self.ns)
        self.ns += 1
        key, nonce = aead_key(message_key)
        ciphertext = AESGCMSIV(key).encrypt(nonce, pad(plaintext), self.ad + header)
        return header + ciphertext, message_key

    def skip(self, until):
        if self.ckr is None:
            return
        assert until - self.nr <= 1000
        while self.nr < until:
            self.ckr, message_key = kdf_ck(self.ckr)
            self.skipped[(self.receiving_key, self.nr)] = message_key
            self.nr += 1

    def ratchet_step(self, remote):
        self.pn = self.ns
        self.ns = 0
        self.nr = 0
        self.receiving_key = remote
        self.root, self.ckr = kdf_rk(self.root, dh(self.sending_key, remote))
        self.sending_key = next(self.ratchet_keys)
        self.root, self.cks = kdf_rk(self.root, dh(self.sending_key, remote))

    def decrypt(self, message):
        header, ciphertext = message[:41], message[41:]
        remote, pn, n = header[1:33], struct.unpack(">I", header[33:37])[0], struct.unpack(">I", header[37:41])[0]
        if (remote, n) in self.skipped:
            message_key = self.skipped.pop((remote, n))
        else:
            if remote != self.receiving_key:
                self.skip(pn)
                self.ratchet_step(remote)
            self.skip(n)
            self.ckr, message_key = kdf_ck(self.ckr)
            self.nr += 1
        key, nonce = aead_key(message_key)
        return unpad(AESGCMSIV(key).decrypt(nonce, ciphertext, self.ad + header)), message_key


# ---------------------------------------------------------------- PQXDH and the conversation


def ratchet_vectors():
    alice_identity = ed25519.Ed25519PrivateKey.from_private_bytes(seed("alice/identity"))
    alice_dh = x25519_key("alice/identity-dh")
    bob_identity = ed25519.Ed25519PrivateKey.from_private_bytes(seed("bob/identity"))
    bob_dh = x25519_key("bob/identity-dh")
    bob_spk = x25519_key("bob/signed-prekey")
    bob_opk = x25519_key("bob/one-time-prekey")
    alice_ephemeral = x25519_key("alice/ephemeral")
    pq_seed = seed("bob/pq-prekey", 64)
    pq_public, pq_private = ML_KEM_768._keygen_internal(pq_seed[:32], pq_seed[32:])
    kem_secret, kem_ciphertext = ML_KEM_768._encaps_internal(pq_public, seed("alice/kem-randomness"))
    assert ML_KEM_768.decaps(pq_private, kem_ciphertext) == kem_secret
    # The envelope key: X-Wing (draft-connolly-cfrg-xwing-kem) from a 32-byte seed, expanded with
    # SHAKE-256 into the ML-KEM-768 seeds (d, z) and the X25519 private key.
    xwing_seed = seed("bob/envelope-key")
    expanded = hashlib.shake_256(xwing_seed).digest(96)
    xwing_mlkem_public, _ = ML_KEM_768._keygen_internal(expanded[:32], expanded[32:64])
    xwing_public = xwing_mlkem_public + raw_public(x25519.X25519PrivateKey.from_private_bytes(expanded[64:]))
    alice_ratchet = [x25519_key(f"alice/ratchet/{i}") for i in range(8)]
    bob_ratchet = [x25519_key(f"bob/ratchet/{i}") for i in range(8)]

    ids = {"signedPrekey": 11, "pqPrekey": 12, "oneTimePrekey": 13}
    ik_a, ik_b = raw_public(alice_identity), raw_public(bob_identity)
    dh_a, dh_b = raw_public(alice_dh), raw_public(bob_dh)
    spk_b, opk_b = raw_public(bob_spk), raw_public(bob_opk)
    bundle = {
        "identityKey": ik_b.hex(),
        "identityDHKey": dh_b.hex(),
        "identityDHSignature": sign(bob_identity, "identity-dh", dh_b).hex(),
        "signedPrekeyID": ids["signedPrekey"],
        "signedPrekey": spk_b.hex(),
        "signedPrekeySignature": sign(bob_identity, "signed-prekey", u32(11) + u64(EXPIRES) + spk_b).hex(),
        "pqPrekeyID": ids["pqPrekey"],
        "pqPrekey": pq_public.hex(),
        "pqPrekeySignature": sign(bob_identity, "pq-prekey", u32(12) + u64(EXPIRES) + pq_public).hex(),
        "envelopeKeyID": 14,
        "envelopeKey": xwing_public.hex(),
        "envelopeKeySignature": sign(bob_identity, "envelope-key", u32(14) + u64(EXPIRES) + xwing_public).hex(),
        "oneTimePrekeyID": ids["oneTimePrekey"],
        "oneTimePrekey": opk_b.hex(),
        "expiresAt": EXPIRES,
    }

    dh1 = dh(alice_dh, spk_b)
    dh2 = dh(alice_ephemeral, dh_b)
    dh3 = dh(alice_ephemeral, spk_b)
    dh4 = dh(alice_ephemeral, opk_b)
    secret = hkdf(b"\xff" * 32 + dh1 + dh2 + dh3 + dh4 + kem_secret, bytes(32),
                  b"Privatus-v1_X25519_SHA-256_ML-KEM-768", 32)
    # Bob's side, computed from his private keys, must agree.
    bob_secret = hkdf(b"\xff" * 32 + dh(bob_spk, dh_a) + dh(bob_dh, raw_public(alice_ephemeral))
                      + dh(bob_spk, raw_public(alice_ephemeral)) + dh(bob_opk, raw_public(alice_ephemeral))
                      + ML_KEM_768.decaps(pq_private, kem_ciphertext), bytes(32),
                      b"Privatus-v1_X25519_SHA-256_ML-KEM-768", 32)
    assert secret == bob_secret
    ad = b"\x01" + ik_a + dh_a + ik_b + dh_b
    # The same handshake without a one-time prekey (no DH4, flag 0).
    secret_without_opk = hkdf(b"\xff" * 32 + dh1 + dh2 + dh3 + kem_secret, bytes(32),
                              b"Privatus-v1_X25519_SHA-256_ML-KEM-768", 32)
    header_without_opk = (b"\x01" + ik_a + dh_a + sign(alice_identity, "identity-dh", dh_a) + raw_public(alice_ephemeral)
                          + u32(11) + u32(12) + b"\x00" + u32(0) + kem_ciphertext)
    initial_header = (b"\x01" + ik_a + dh_a + sign(alice_identity, "identity-dh", dh_a) + raw_public(alice_ephemeral)
                      + u32(11) + u32(12) + b"\x01" + u32(13) + kem_ciphertext)

    alice = Party("alice", ad, alice_ratchet[1:])
    alice.sending_key = alice_ratchet[0]
    alice.receiving_key = spk_b
    alice.root, alice.cks = kdf_rk(secret, dh(alice.sending_key, spk_b))
    alice.snapshot("init")
    bob = Party("bob", ad, bob_ratchet)
    bob.sending_key = bob_spk
    bob.root = secret
    bob.snapshot("init")
    parties = {"alice": alice, "bob": bob}

    # The script: who sends, who receives which message when. m1 is delivered late (its key waits
    # as a skipped key across a DH turn), m3/m4 arrive out of order, m8 is lost.
    script = [
        ("send", "alice", 0), ("send", "alice", 1), ("send", "alice", 2),
        ("receive", "bob", 0), ("receive", "bob", 2),
        ("send", "bob", 3), ("send", "bob", 4),
        ("receive", "alice", 4), ("receive", "alice", 3),
        ("send", "alice", 5), ("send", "alice", 6),
        ("receive", "bob", 5), ("receive", "bob", 1), ("receive", "bob", 6),
        ("send", "bob", 7), ("send", "bob", 8), ("send", "bob", 9),
        ("receive", "alice", 7), ("receive", "alice", 9),
        ("send", "alice", 10), ("send", "alice", 11),
        ("receive", "bob", 10), ("receive", "bob", 11),
        ("send", "bob", 12), ("receive", "alice", 12),
    ]
    messages = {}
    steps = []
    for action, who, index in script:
        party = parties[who]
        if action == "send":
            text = f"message {index} from {who}".encode() * (1 + index % 3)
            encoded, message_key = party.encrypt(text)
            key, nonce = aead_key(message_key)
            wire = initial_header + encoded if index == 0 else encoded
            messages[index] = {"from": who, "plaintext": text.hex(), "wire": wire.hex(), "ratchetMessage": encoded.hex(),
                               "messageKey": message_key.hex(), "aeadKey": key.hex(), "aeadNonce": nonce.hex()}
        else:
            plaintext, message_key = party.decrypt(bytes.fromhex(messages[index]["ratchetMessage"]))
            assert plaintext.hex() == messages[index]["plaintext"]
            assert message_key.hex() == messages[index]["messageKey"]
        party.snapshot(f"{action} m{index}")
        steps.append({"action": action, "party": who, "message": index, "state": party.trace[-1]})

    return {
        "description": "PQXDH (with one-time prekey) and a Double Ratchet conversation; see docs/PROTOCOL.md",
        "generator": "Tests/Vectors/generate.py (PyCA cryptography 48.0.0, kyber-py 1.2.0)",
        "now": NOW,
        "keys": {
            "aliceIdentitySeed": seed("alice/identity").hex(),
            "aliceIdentityDH": raw_private(alice_dh).hex(),
            "bobIdentitySeed": seed("bob/identity").hex(),
            "bobIdentityDH": raw_private(bob_dh).hex(),
            "bobSignedPrekey": raw_private(bob_spk).hex(),
            "bobOneTimePrekey": raw_private(bob_opk).hex(),
            "bobPQPrekeySeed": pq_seed.hex(),
            "bobEnvelopeKeySeed": xwing_seed.hex(),
            "aliceEphemeral": raw_private(alice_ephemeral).hex(),
            "aliceRatchetKeys": [raw_private(k).hex() for k in alice_ratchet],
            "bobRatchetKeys": [raw_private(k).hex() for k in bob_ratchet],
        },
        "bundle": bundle,
        "pqxdh": {
            "dh1": dh1.hex(), "dh2": dh2.hex(), "dh3": dh3.hex(), "dh4": dh4.hex(),
            "kemCiphertext": kem_ciphertext.hex(), "kemSharedSecret": kem_secret.hex(),
            "sharedSecret": secret.hex(), "associatedData": ad.hex(), "initialHeader": initial_header.hex(),
        },
        "pqxdhWithoutOneTimePrekey": {
            "sharedSecret": secret_without_opk.hex(), "initialHeader": header_without_opk.hex(),
        },
        "messages": [messages[i] for i in sorted(messages)],
        "steps": steps,
    }


# ---------------------------------------------------------------- published primitive vectors


def primitive_vectors():
    rfc7748 = [
        {"scalar": "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
         "u": "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
         "output": "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552", "source": "RFC 7748 section 5.2"},
        {"scalar": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
         "u": "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
         "output": "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", "source": "RFC 7748 section 6.1"},
        {"scalar": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
         "u": "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
         "output": "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", "source": "RFC 7748 section 6.1"},
    ]
    for vector in rfc7748:
        key = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["scalar"]))
        assert key.exchange(x25519.X25519PublicKey.from_public_bytes(bytes.fromhex(vector["u"]))).hex() == vector["output"]

    rfc8032 = [
        {"secret": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "message": "",
         "signature": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
         "source": "RFC 8032 section 7.1, test 1"},
        {"secret": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "public": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "message": "72",
         "signature": "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
         "source": "RFC 8032 section 7.1, test 2"},
        {"secret": "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "public": "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "message": "af82",
         "signature": "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
         "source": "RFC 8032 section 7.1, test 3"},
    ]
    for vector in rfc8032:
        key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["secret"]))
        assert raw_public(key).hex() == vector["public"]
        assert key.sign(bytes.fromhex(vector["message"])).hex() == vector["signature"]

    rfc5869 = [
        {"ikm": "0b" * 22, "salt": "000102030405060708090a0b0c", "info": "f0f1f2f3f4f5f6f7f8f9", "length": 42,
         "okm": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
         "source": "RFC 5869 appendix A.1"},
        {"ikm": "0b" * 22, "salt": "", "info": "", "length": 42,
         "okm": "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
         "source": "RFC 5869 appendix A.3"},
    ]
    for vector in rfc5869:
        salt = bytes.fromhex(vector["salt"]) or None
        okm = hkdf(bytes.fromhex(vector["ikm"]), salt, bytes.fromhex(vector["info"]), vector["length"])
        assert okm.hex() == vector["okm"]

    gcm_key = "feffe9928665731c6d6a8f9467308308" * 2
    gcm_plaintext = ("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
    gcm_ciphertext = ("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad")
    gcm_source = "McGrew and Viega, The Galois/Counter Mode of Operation (GCM), appendix B, test case "
    gcm = [
        {"key": "00" * 32, "nonce": "00" * 12, "plaintext": "", "aad": "", "ciphertext": "",
         "tag": "530f8afbc74536b9a963b4f1c4cb738b", "source": gcm_source + "13"},
        {"key": "00" * 32, "nonce": "00" * 12, "plaintext": "00" * 16, "aad": "",
         "ciphertext": "cea7403d4d606b6e074ec5d3baf39d18", "tag": "d0d1c8a799996bf0265b98b5d48ab919",
         "source": gcm_source + "14"},
        {"key": gcm_key, "nonce": "cafebabefacedbaddecaf888", "plaintext": gcm_plaintext, "aad": "",
         "ciphertext": gcm_ciphertext, "tag": "b094dac5d93471bdec1a502270e3cc6c", "source": gcm_source + "15"},
        {"key": gcm_key, "nonce": "cafebabefacedbaddecaf888", "plaintext": gcm_plaintext[:120],
         "aad": "feedfacedeadbeeffeedfacedeadbeefabaddad2", "ciphertext": gcm_ciphertext[:120],
         "tag": "76fc6ece0f4e1768cddf8853bb2d551b", "source": gcm_source + "16"},
    ]
    for vector in gcm:
        sealed = AESGCM(bytes.fromhex(vector["key"])).encrypt(
            bytes.fromhex(vector["nonce"]), bytes.fromhex(vector["plaintext"]), bytes.fromhex(vector["aad"]))
        assert sealed.hex() == vector["ciphertext"] + vector["tag"]
    return {"x25519": rfc7748, "ed25519": rfc8032, "hkdfSha256": rfc5869, "aes256gcm": gcm}


# ---------------------------------------------------------------- Noise XX (transport handshake)


def noise_hkdf(chaining_key, input_key_material):
    """HKDF(ck, ikm, 2) as Noise rev. 34 section 4.3 writes it, with HMAC-SHA256."""
    temp = hmac.new(chaining_key, input_key_material, hashlib.sha256).digest()
    first = hmac.new(temp, b"\x01", hashlib.sha256).digest()
    return first, hmac.new(temp, first + b"\x02", hashlib.sha256).digest()


class NoiseXX:
    """One side of Noise_XX_25519_{AESGCM,ChaChaPoly}_SHA256 with fixed keys (sections 5 and 7)."""

    PATTERNS = [["e"], ["e", "ee", "s", "es"], ["s", "se"]]

    def __init__(self, name, initiator, prologue, static, ephemeral):
        self.cipher = {"AESGCM": AESGCM, "ChaChaPoly": ChaCha20Poly1305}[name.split("_")[3]]
        self.little_endian = self.cipher is ChaCha20Poly1305
        encoded = name.encode()
        self.h = encoded.ljust(32, b"\x00") if len(encoded) <= 32 else hashlib.sha256(encoded).digest()
        self.ck, self.k, self.n = self.h, None, 0
        self.initiator, self.s, self.e = initiator, static, ephemeral
        self.rs = self.re = None
        self.index = 0
        self.mix_hash(prologue)

    def mix_hash(self, data):
        self.h = hashlib.sha256(self.h + data).digest()

    def nonce(self, n):
        return b"\x00" * 4 + n.to_bytes(8, "little" if self.little_endian else "big")

    def encrypt(self, k, n, ad, plaintext):
        return plaintext if k is None else self.cipher(k).encrypt(self.nonce(n), plaintext, ad)

    def decrypt(self, k, n, ad, ciphertext):
        return ciphertext if k is None else self.cipher(k).decrypt(self.nonce(n), ciphertext, ad)

    def encrypt_and_hash(self, plaintext):
        out = self.encrypt(self.k, self.n, self.h, plaintext)
        self.n += self.k is not None
        self.mix_hash(out)
        return out

    def decrypt_and_hash(self, ciphertext):
        out = self.decrypt(self.k, self.n, self.h, ciphertext)
        self.n += self.k is not None
        self.mix_hash(ciphertext)
        return out

    def mix_dh(self, token):
        local = self.e if token == "ee" or (token == "es") == self.initiator else self.s
        remote = self.re if token == "ee" or (token == "se") == self.initiator else self.rs
        self.ck, self.k = noise_hkdf(self.ck, dh(local, remote))
        self.n = 0

    def write(self, payload):
        out = b""
        for token in self.PATTERNS[self.index]:
            if token == "e":
                out += raw_public(self.e)
                self.mix_hash(raw_public(self.e))
            elif token == "s":
                out += self.encrypt_and_hash(raw_public(self.s))
            else:
                self.mix_dh(token)
        self.index += 1
        return out + self.encrypt_and_hash(payload)

    def read(self, message):
        for token in self.PATTERNS[self.index]:
            if token == "e":
                self.re, message = message[:32], message[32:]
                self.mix_hash(self.re)
            elif token == "s":
                length = 48 if self.k is not None else 32
                self.rs, message = self.decrypt_and_hash(message[:length]), message[length:]
            else:
                self.mix_dh(token)
        self.index += 1
        return self.decrypt_and_hash(message)

    def split(self):
        first, second = noise_hkdf(self.ck, b"")
        return [first, 0] if self.initiator else [second, 0], [second, 0] if self.initiator else [first, 0]


def check_noise_vectors(path):
    """Recomputes every entry of the cacophony file with NoiseXX and returns the file unchanged."""
    with open(path, "rb") as handle:
        raw = handle.read()
    checked = 0
    for vector in json.loads(raw)["vectors"]:
        if not vector["protocol_name"].startswith("Noise_XX_25519_"):
            continue
        key = lambda field: x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(vector[field]))
        sides = [
            NoiseXX(vector["protocol_name"], True, bytes.fromhex(vector["init_prologue"]), key("init_static"),
                    key("init_ephemeral")),
            NoiseXX(vector["protocol_name"], False, bytes.fromhex(vector["resp_prologue"]), key("resp_static"),
                    key("resp_ephemeral")),
        ]
        transports = None
        for index, message in enumerate(vector["messages"]):
            payload, ciphertext = bytes.fromhex(message["payload"]), bytes.fromhex(message["ciphertext"])
            sender, receiver = sides[index % 2], sides[1 - index % 2]
            if index < 3:
                assert sender.write(payload) == ciphertext, (vector["protocol_name"], index)
                assert receiver.read(ciphertext) == payload
                if index == 2:
                    assert sides[0].h.hex() == sides[1].h.hex() == vector["handshake_hash"], vector["protocol_name"]
                    transports = [side.split() for side in sides]
            else:
                send, receive = transports[index % 2][0], transports[1 - index % 2][1]
                assert sender.encrypt(send[0], send[1], b"", payload) == ciphertext, (vector["protocol_name"], index)
                assert receiver.decrypt(receive[0], receive[1], b"", ciphertext) == payload
                send[1] += 1
                receive[1] += 1
        checked += 1
    assert checked > 0
    return raw


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    output = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "TestVectors")
    os.makedirs(output, exist_ok=True)
    for name, data in (("ratchet.json", ratchet_vectors()), ("primitives.json", primitive_vectors())):
        with open(os.path.join(output, name), "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
    noise = check_noise_vectors(os.path.join(here, "..", "TestVectors", "noise-xx-cacophony.json"))
    with open(os.path.join(output, "noise-xx-cacophony.json"), "wb") as handle:
        handle.write(noise)
    print(f"wrote ratchet.json, primitives.json and the checked noise-xx-cacophony.json to {output}")


if __name__ == "__main__":
    main()
