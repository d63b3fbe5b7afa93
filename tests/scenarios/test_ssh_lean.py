"""scenarios/ssh_lean.py against real asyncssh: a client and server on 127.0.0.1 in this process.

Key auth sends its signature in the first request (the server sees one signed request, not a
query and then a signed one); no empty SSH_MSG_IGNORE goes before packets under AES-GCM, and
one still does under a CBC cipher; connections not marked keep asyncssh's own flow."""
from __future__ import annotations

import asyncssh
import pytest
from asyncssh.constants import MSG_IGNORE
from asyncssh.packet import String

from scenarios import ssh_lean


class _Server(asyncssh.SSHServer):
    """Accepts one client key; records, per key auth request, whether it carried a signature."""

    def __init__(self, log: list[bool]):
        self.log = log

    def connection_made(self, conn):
        original = conn.validate_public_key

        async def validate(username, key_data, msg, signature):
            self.log.append(bool(signature))
            return await original(username, key_data, msg, signature)
        conn.validate_public_key = validate

    def begin_auth(self, username):
        return True

    def public_key_auth_supported(self):
        return True


def _client(sent: list[int], lean: bool):
    class Client(asyncssh.SSHClient):
        def connection_made(self, conn):
            original = conn.send_packet

            def record(pkttype, *args, handler=None):
                sent.append(pkttype)
                return original(pkttype, *args, handler=handler)
            conn.send_packet = record
            if lean:
                ssh_lean.no_ignore_padding(conn)
                ssh_lean.key_auth_first(conn)
    return Client


@pytest.fixture
async def server(tmp_path):
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "authorized_keys").write_bytes(client_key.export_public_key())
    log: list[bool] = []
    srv = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key],
                                authorized_client_keys=str(tmp_path / "authorized_keys"),
                                encryption_algs=["aes128-gcm@openssh.com", "aes128-cbc"],
                                server_factory=lambda: _Server(log), process_factory=_echo)
    port = srv.sockets[0].getsockname()[1]
    yield port, client_key, log
    srv.close()
    await srv.wait_closed()


async def _echo(process):
    process.stdout.write("ok\n")
    process.exit(0)


async def _run(port, key, lean: bool, ciphers=("aes128-gcm@openssh.com",)) -> list[int]:
    sent: list[int] = []
    async with asyncssh.connect("127.0.0.1", port, known_hosts=None, client_keys=[key], config=[],
                                encryption_algs=list(ciphers), client_factory=_client(sent, lean)) as conn:
        result = await conn.run("anything", check=True)
        assert result.stdout == "ok\n"
    return sent


async def test_key_signed_in_the_first_request(server):
    port, key, log = server
    await _run(port, key, lean=True)
    assert ssh_lean._SIGN_FIRST_READY
    assert log == [True]              # one request, signed: no "would this key do?" query


async def test_unmarked_connection_keeps_asyncssh_flow(server):
    port, key, log = server
    sent = await _run(port, key, lean=False)
    assert log == [False, True]       # asyncssh's query, then the signed request
    assert MSG_IGNORE in sent         # and its ignore packet before each encrypted one


async def test_no_empty_ignore_under_gcm(server):
    port, key, _log = server
    sent = await _run(port, key, lean=True)
    assert sent and MSG_IGNORE not in sent


async def test_ignore_kept_under_cbc(server):
    port, key, _log = server
    sent = await _run(port, key, lean=True, ciphers=("aes128-cbc",))
    assert MSG_IGNORE in sent


def test_only_empty_ignores_dropped_and_other_internals_left_alone():
    class Conn:
        _enc_alg_cs = b"aes128-gcm@openssh.com"

        def __init__(self):
            self.sent = []

        def send_packet(self, pkttype, *args, handler=None):
            self.sent.append((pkttype, args))
    c = Conn()
    ssh_lean.no_ignore_padding(c)
    c.send_packet(MSG_IGNORE, String(b""))
    c.send_packet(MSG_IGNORE, String(b"x"))       # a deliberate ignore (keepalive-like): kept
    c.send_packet(94, String(b"data"))
    assert c.sent == [(MSG_IGNORE, (String(b"x"),)), (94, (String(b"data"),))]
    plain = object()
    ssh_lean.no_ignore_padding(plain)               # no such internals: nothing set, no error
    assert not hasattr(plain, "send_packet")


def test_asyncssh_log_lines_still_reach_a_handler_that_wants_them(caplog):
    """The level is checked before asyncssh formats a line: dropped below the level, logged as
    before (arguments made text) at it."""
    from asyncssh.logging import logger
    assert ssh_lean._LEVEL_CHECK_FIRST

    class Loud:
        def __str__(self):
            raise AssertionError("formatted although nobody logs at this level")
    with caplog.at_level("WARNING", logger="asyncssh"):
        logger.info("quiet %s", [Loud()])          # asyncssh joins a list into text
    with caplog.at_level("DEBUG", logger="asyncssh"):
        logger.info("algorithms %s for %s", [b"aes128-gcm@openssh.com", "x"], ("127.0.0.1", 22))
    assert [r.getMessage() for r in caplog.records] == ["algorithms aes128-gcm@openssh.com,x for 127.0.0.1, port 22"]
