"""A minimal DNS A-record lookup against a chosen server (the cluster DNS Service)."""

from __future__ import annotations

import random
import socket
import struct


def resolve_a(name: str, server: str, port: int = 53, timeout: float = 3) -> list[str]:
    query_id = random.randrange(1 << 16)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = (
        struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, port))
        reply, _ = sock.recvfrom(4096)
    reply_id, flags, _, answers, _, _ = struct.unpack(">HHHHHH", reply[:12])
    assert reply_id == query_id, "DNS reply to another query"
    rcode = flags & 0xF
    if rcode:
        raise LookupError(f"{name}: DNS rcode {rcode}")
    offset = 12 + len(question) + 4
    addresses = []
    for _ in range(answers):
        offset = _skip_name(reply, offset)
        rtype, _, _, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return addresses


def _skip_name(message: bytes, offset: int) -> int:
    while True:
        length = message[offset]
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += length + 1
