#!/usr/bin/env python3
"""Interop of Privatus links with an independent Noise implementation.

Starts LinkEcho (a real ConnectionManager listening on loopback, Tests/LinkEcho) and talks to
it over plain TCP as a node written from docs/PROTOCOL.md alone would: the Noise XX handshake is
PyPI `noiseprotocol`'s `NoiseConnection` (not our code), the identity signatures are PyCA
`cryptography`'s Ed25519, and the link frames, stream frames and the few protobuf fields are
encoded here by hand. Checks:

- the handshake completes as initiator, with the message sizes of docs/PROTOCOL.md, after
  verifying the responder's payload (signature over the Noise static key the handshake used,
  PeerID = SHA-256 of the identity key) before message 3 is sent;
- a Ping on the control stream is answered with a Pong of the same nonce;
- a ChatMessage on the chat stream comes back with the same id and the sealed bytes reversed,
  in one frame and in several fragments;
- a handshake whose message 3 signs another Noise static key is closed by LinkEcho, and the
  first link still works afterwards;
- LinkEcho exits 0 when its standard input closes.

Runs on loopback only; every wait is bounded.

usage: noise_interop.py PATH-TO-LinkEcho
"""
import hashlib
import json
import re
import secrets
import select
import socket
import struct
import subprocess
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from noise.connection import Keypair, NoiseConnection

PROTOCOL_NAME = b"Noise_XX_25519_AESGCM_SHA256"
PROLOGUE = b"privatus/1" + bytes([1, 1])  # label, count of versions, version 1
PAYLOAD_VERSION = 1
PAYLOAD_LENGTH = 97
MESSAGE_SIZES = (32, 193, 161)  # the three XX messages with 97-byte payloads
TIMEOUT = 5.0  # seconds, for any one socket operation
STARTUP_TIMEOUT = 20.0

CONTROL, CHAT = 0, 1  # stream ids
FRAGMENT, FINAL = 0, 1  # frame types
MAX_FRAGMENT_PAYLOAD = 65_517
PING, PONG, CHAT_MESSAGE = 2, 3, 5  # Envelope body field numbers (envelope.proto)


def raw(key):
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def private_raw(key):
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def noise_static_message(static_public):
    """What an identity signs to bind a Noise static key (purpose `noise-static`)."""
    return b"Privatus-v1/" + b"noise-static" + b"\x00" + static_public


# ---- protobuf, the few fields needed: strict, canonical encodings only ----

def varint(value):
    assert 0 <= value < 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data, offset):
    value, shift = 0, 0
    for index in range(offset, min(offset + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if index > offset and byte == 0:
                raise ValueError("non-minimal varint")
            if value >= 1 << 64:
                raise ValueError("varint over 64 bits")
            return value, index + 1
        shift += 7
    raise ValueError("truncated or overlong varint")


def field_varint(number, value):
    return varint(number << 3) + varint(value) if value else b""  # proto3 omits zero


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data if data else b""


def decode(data, schema):
    """Parses a message whose fields are all in `schema` ({number: "varint" | "bytes"}), each at
    most once, and requires the canonical encoding (fields in order, no default values)."""
    fields, offset = {}, 0
    while offset < len(data):
        key, offset = read_varint(data, offset)
        number, wire_type = key >> 3, key & 7
        kind = schema.get(number)
        if kind is None or number in fields:
            raise ValueError(f"unexpected or repeated field {number}")
        if kind == "varint" and wire_type == 0:
            fields[number], offset = read_varint(data, offset)
        elif kind == "bytes" and wire_type == 2:
            length, offset = read_varint(data, offset)
            if offset + length > len(data):
                raise ValueError("truncated field")
            fields[number], offset = bytes(data[offset:offset + length]), offset + length
        else:
            raise ValueError(f"field {number} has wire type {wire_type}")
    encode = {"varint": field_varint, "bytes": field_bytes}
    canonical = b"".join(encode[schema[number]](number, fields[number]) for number in sorted(fields))
    if canonical != data:
        raise ValueError("not the canonical encoding")
    return fields


def envelope(kind, body):
    return field_varint(1, 1) + varint(kind << 3 | 2) + varint(len(body)) + body


def parse_envelope(data):
    fields = decode(data, {1: "varint", 2: "bytes", 3: "bytes", 4: "bytes", 5: "bytes", 6: "bytes", 7: "bytes"})
    if fields.get(1) != 1:
        raise ValueError(f"envelope version {fields.get(1, 0)}")
    kinds = [number for number in fields if number != 1]
    if len(kinds) != 1:
        raise ValueError(f"envelope bodies {kinds}")
    return kinds[0], fields[kinds[0]]


def ping(nonce):
    return envelope(PING, field_varint(1, nonce))


def chat_message(message_id, sealed):
    return envelope(CHAT_MESSAGE, field_bytes(1, message_id) + field_bytes(2, sealed))


# ---- link frames over TCP ----

def receive_exactly(sock, count):
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {count} bytes")
        data += chunk
    return bytes(data)


def send_link_frame(sock, body):
    assert 0 < len(body) <= 65_535
    sock.sendall(struct.pack(">H", len(body)) + bytes(body))


def receive_link_frame(sock):
    (length,) = struct.unpack(">H", receive_exactly(sock, 2))
    if length == 0:
        raise ValueError("empty link frame")
    return receive_exactly(sock, length)


class Link:
    """An established link: Noise transport messages carrying stream frames."""

    def __init__(self, sock, noise):
        self.sock = sock
        self.noise = noise

    def send_frame(self, stream, frame_type, body):
        send_link_frame(self.sock, self.noise.encrypt(bytes([stream, frame_type]) + body))

    def send_message(self, stream, message):
        chunks = [message[i:i + MAX_FRAGMENT_PAYLOAD] for i in range(0, len(message), MAX_FRAGMENT_PAYLOAD)] or [b""]
        for index, chunk in enumerate(chunks):
            self.send_frame(stream, FINAL if index == len(chunks) - 1 else FRAGMENT, chunk)

    def receive_message(self):
        """The next whole message: (stream, bytes, the message bytes of each frame). Any frame
        other than data on the message's stream is unexpected here."""
        message, stream, frames = bytearray(), None, []
        while True:
            plaintext = self.noise.decrypt(receive_link_frame(self.sock))
            if len(plaintext) < 2:
                raise ValueError("stream frame shorter than its header")
            frame_stream, frame_type, body = plaintext[0], plaintext[1], plaintext[2:]
            if frame_type not in (FRAGMENT, FINAL) or (stream is not None and frame_stream != stream):
                raise ValueError(f"unexpected frame: stream {frame_stream}, type {frame_type}")
            if frame_type == FRAGMENT and not body:
                raise ValueError("empty fragment")
            stream = frame_stream
            frames.append(len(body))
            message += body
            if frame_type == FINAL:
                return stream, bytes(message), frames

    def close(self):
        self.sock.close()


class Peer:
    """The Python node: an Ed25519 identity and an X25519 Noise static key."""

    def __init__(self, identity=None):
        self.identity = identity or Ed25519PrivateKey.generate()
        self.static = X25519PrivateKey.generate()

    def payload(self, signed_static=None):
        """The 97-byte handshake payload; signs `signed_static` instead of the real key if given."""
        static_public = signed_static if signed_static is not None else raw(self.static.public_key())
        signature = self.identity.sign(noise_static_message(static_public))
        return bytes([PAYLOAD_VERSION]) + raw(self.identity.public_key()) + signature


def check_responder(payload, remote_static, expected):
    """What an initiator checks in message 2 before it sends message 3."""
    assert len(payload) == PAYLOAD_LENGTH, f"payload of {len(payload)} bytes"
    assert payload[0] == PAYLOAD_VERSION, f"payload version {payload[0]}"
    identity, signature = payload[1:33], payload[33:]
    assert identity == bytes.fromhex(expected["identityKey"]), "identity key differs from the one printed"
    assert hashlib.sha256(identity).hexdigest() == expected["peerId"], "PeerID is not SHA-256 of the identity key"
    key = Ed25519PublicKey.from_public_bytes(identity)
    key.verify(signature, noise_static_message(remote_static))  # raises InvalidSignature
    # The check can fail: the same signature does not cover any other static key.
    other = bytes([remote_static[0] ^ 1]) + remote_static[1:]
    try:
        key.verify(signature, noise_static_message(other))
    except InvalidSignature:
        return
    raise AssertionError("the signature verifies for another static key")


def handshake(port, peer, expected, signed_static=None):
    """Noise XX as initiator over a new TCP connection; returns the link once message 3 is sent
    (usable only if the responder accepted message 3). Raises before message 3 if the responder's
    payload does not check out."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        noise = NoiseConnection.from_name(PROTOCOL_NAME)
        noise.set_as_initiator()
        noise.set_keypair_from_private_bytes(Keypair.STATIC, private_raw(peer.static))
        noise.set_prologue(PROLOGUE)
        noise.start_handshake()
        first = noise.write_message()  # empty payload
        assert len(first) == MESSAGE_SIZES[0], f"message 1 of {len(first)} bytes"
        send_link_frame(sock, first)
        second = receive_link_frame(sock)
        assert len(second) == MESSAGE_SIZES[1], f"message 2 of {len(second)} bytes"
        payload = noise.read_message(second)
        check_responder(bytes(payload), noise.noise_protocol.handshake_state.rs.public_bytes, expected)
        third = noise.write_message(peer.payload(signed_static))
        assert len(third) == MESSAGE_SIZES[2], f"message 3 of {len(third)} bytes"
        assert noise.handshake_finished
        send_link_frame(sock, third)
        return Link(sock, noise)
    except BaseException:
        sock.close()
        raise


def ping_pong(link):
    nonce = secrets.randbits(63) | 1
    frame = ping(nonce)
    link.send_frame(CONTROL, FINAL, frame)
    stream, message, _ = link.receive_message()
    kind, body = parse_envelope(message)
    assert stream == CONTROL and kind == PONG, f"answer on stream {stream} of kind {kind}"
    assert decode(body, {1: "varint"}).get(1, 0) == nonce, "pong nonce"


def chat_echo(link, size, fragmented):
    message_id, sealed = secrets.token_bytes(16), secrets.token_bytes(size)
    link.send_message(CHAT, chat_message(message_id, sealed))
    stream, message, frames = link.receive_message()
    kind, body = parse_envelope(message)
    assert stream == CHAT and kind == CHAT_MESSAGE, f"answer on stream {stream} of kind {kind}"
    fields = decode(body, {1: "bytes", 2: "bytes"})
    assert fields.get(1) == message_id, "message id"
    assert fields.get(2) == sealed[::-1], "sealed bytes not reversed"
    if fragmented:
        # Fragments of one size (at most 65,517 bytes), then a final of 1 to that many bytes.
        chunk = frames[0]
        assert len(frames) > 1 and chunk <= MAX_FRAGMENT_PAYLOAD, f"frames of {frames} bytes"
        assert all(length == chunk for length in frames[:-1]) and 0 < frames[-1] <= chunk, f"frames of {frames} bytes"
    else:
        assert len(frames) == 1, f"echo in {len(frames)} frames"


def closed_by_peer(sock):
    """True when the peer closes the connection before anything arrives (within TIMEOUT)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def start(binary):
    """Starts LinkEcho and reads its line; stops it again if that fails."""
    process = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT)
        if not ready:
            raise TimeoutError(f"LinkEcho printed nothing within {STARTUP_TIMEOUT:.0f} s")
        return process, json.loads(process.stdout.readline())
    except BaseException:
        stop(process)
        raise


def stop(process):
    """Closes LinkEcho's standard input and returns its exit status (killing it if it hangs)."""
    if process.stdin and not process.stdin.closed:
        process.stdin.close()
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def main(binary):
    passed = failed = 0

    def check(name, body):
        nonlocal passed, failed
        try:
            body()
        except Exception as error:  # any failure of a check is reported, and the next runs
            failed += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
            return False
        passed += 1
        print(f"ok   {name}", flush=True)
        return True

    def encoder_matches_the_example():
        assert bytes([CONTROL, FINAL]) + ping(1) == bytes.fromhex("0001080112020801")

    check("our frame encoder gives docs/PROTOCOL.md's ping example, 00 01 08 01 12 02 08 01",
          encoder_matches_the_example)

    started = time.monotonic()
    try:
        process, echo = start(binary)
    except Exception as error:
        print(f"FAIL LinkEcho starts and prints one JSON line: {type(error).__name__}: {error}", flush=True)
        print(f"interop: {passed} passed, {failed + 1} failed", flush=True)
        return 1
    links = []
    try:
        def printed_line():
            assert set(echo) == {"port", "peerId", "identityKey"}, f"keys {sorted(echo)}"
            assert isinstance(echo["port"], int) and 0 < echo["port"] < 65_536
            assert re.fullmatch("[0-9a-f]{64}", echo["peerId"]) and re.fullmatch("[0-9a-f]{64}", echo["identityKey"])

        check("LinkEcho prints its port, PeerID and identity key as one JSON line", printed_line)

        alice = Peer()

        def first_handshake():
            links.append(handshake(echo["port"], alice, echo))

        def link():
            assert links, "no link: the handshake failed"
            return links[0]

        check("Noise XX with noiseprotocol as initiator: messages of 32, 193, 161 bytes, the responder's "
              "signature over its static key and its PeerID checked before message 3", first_handshake)
        check("a Ping on the control stream is answered with a Pong of the same nonce", lambda: ping_pong(link()))
        check("a ChatMessage on the chat stream is echoed with the same id, sealed bytes reversed",
              lambda: chat_echo(link(), 200, fragmented=False))
        check("a 150,000-byte ChatMessage sent as fragments comes back whole, in fragments",
              lambda: chat_echo(link(), 150_000, fragmented=True))

        def forged_binding_is_closed():
            # The same identity, a new static key, but message 3 signs yet another key.
            mallory = Peer(identity=alice.identity)
            forged = handshake(echo["port"], mallory, echo, signed_static=raw(X25519PrivateKey.generate().public_key()))
            try:
                began = time.monotonic()
                assert closed_by_peer(forged.sock), "LinkEcho sent something instead of closing"
                assert time.monotonic() - began < TIMEOUT
            finally:
                forged.close()

        check("a message 3 signing another static key gets the connection closed", forged_binding_is_closed)

        def first_link_still_works():
            ping_pong(link())
            chat_echo(link(), 64, fragmented=False)

        check("the first link still answers pings and chat afterwards", first_link_still_works)
    finally:
        for link in links:
            link.close()
        status = stop(process)
    def exited_cleanly():
        assert status == 0, f"exit status {status}"

    check("LinkEcho exits 0 when its standard input closes", exited_cleanly)
    print(f"interop: LinkEcho ran for {time.monotonic() - started:.1f} s", flush=True)
    print(f"interop: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: noise_interop.py PATH-TO-LinkEcho")
    sys.exit(main(sys.argv[1]))
