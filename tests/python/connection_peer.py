#!/usr/bin/env python3
"""A real CPython peer for tests/test_python_interop.cpp.

    connection_peer.py listen <unix-path>    Listener; prints "ready" once listening
    connection_peer.py connect <unix-path>   Client

Either way, for each size in SIZES it receives a message, checks it is pattern(size), and answers
with every byte plus one (mod 256), so both directions carry checked content. No authkey: Python
3.11 authenticates with the legacy MD5 challenge, which a later issue covers.
"""
import sys
from multiprocessing.connection import Client, Listener

SIZES = [0, 1, 64 * 1024, 100 * 1024 * 1024]
PLUS_ONE = bytes((b + 1) % 256 for b in range(256))


def pattern(size):
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def talk(conn):
    for size in SIZES:
        msg = conn.recv_bytes()
        if msg != pattern(size):
            print(f"python: message of {len(msg)} bytes is not pattern({size})", file=sys.stderr)
            sys.exit(3)
        conn.send_bytes(msg.translate(PLUS_ONE))
    conn.close()


def main():
    mode, address = sys.argv[1], sys.argv[2]
    if mode == "listen":
        with Listener(address, family="AF_UNIX") as listener:
            print("ready", flush=True)
            with listener.accept() as conn:
                talk(conn)
    else:
        with Client(address, family="AF_UNIX") as conn:
            talk(conn)


if __name__ == "__main__":
    main()
