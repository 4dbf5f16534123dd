"""The unixctl server against the real ovs-appctl and against raw sockets."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket

import pytest

from ovsbpfd.unixctl import JsonSplitter, UnixctlError, UnixctlServer

APPCTL = shutil.which("ovs-appctl")


def test_splitter_cuts_concatenated_and_partial_messages() -> None:
    s = JsonSplitter()
    assert s.feed(b'{"a": "}{"}  {"b": [1, {"c"') == [b'{"a": "}{"}']
    assert s.feed(b': "\\""}]}') == [b'{"b": [1, {"c": "\\""}]}']
    assert s.feed(b"\n[1]") == [b"[1]"]


def test_splitter_rejects_scalar_garbage() -> None:
    with pytest.raises(ValueError):
        JsonSplitter().feed(b"hello")


async def _appctl(path: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        APPCTL, "-T", "5", "-t", path, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def _server(tmp_path) -> UnixctlServer:
    server = UnixctlServer(str(tmp_path / "test.ctl"), "ovsbpfd (Open vSwitch) 9.9.9")

    def echo(args: list[str]) -> str:
        return " ".join(args)

    async def slow(args: list[str]) -> str:
        await asyncio.sleep(0.01)
        return "slow done"

    def fail(args: list[str]) -> str:
        raise UnixctlError("no such bridge")

    def crash(args: list[str]) -> str:
        raise RuntimeError("boom")

    server.register("echo", "WORD...", 1, 3, echo)
    server.register("slow", "", 0, 0, slow)
    server.register("fail", "", 0, 0, fail)
    server.register("crash", "", 0, 0, crash)
    return server


@pytest.mark.skipif(APPCTL is None, reason="ovs-appctl not installed")
def test_ovs_appctl_talks_to_server(tmp_path) -> None:
    async def scenario() -> None:
        server = _server(tmp_path)
        await server.start()
        path = server.path
        try:
            rc, out, _ = await _appctl(path, "version")
            assert (rc, out) == (0, "ovsbpfd (Open vSwitch) 9.9.9\n")
            rc, out, _ = await _appctl(path, "list-commands")
            assert rc == 0
            assert out.startswith("The available commands are:\n")
            assert "  echo                    WORD...\n" in out
            rc, out, _ = await _appctl(path, "echo", "a", "b")
            assert (rc, out) == (0, "a b\n")  # every reply ends a line, as in OVS
            rc, out, _ = await _appctl(path, "slow")
            assert (rc, out) == (0, "slow done\n")
            rc, _, err = await _appctl(path, "echo")
            assert rc == 2
            assert '"echo" command requires at least 1 arguments' in err
            rc, _, err = await _appctl(path, "echo", "1", "2", "3", "4")
            assert rc == 2 and '"echo" command takes at most 3 arguments' in err
            rc, _, err = await _appctl(path, "nope")
            assert rc == 2 and '"nope" is not a valid command' in err
            rc, _, err = await _appctl(path, "fail")
            assert rc == 2 and err.startswith("no such bridge\n")
            rc, _, err = await _appctl(path, "crash")
            assert rc == 2 and "internal error" in err
            rc, out, _ = await _appctl(path, "version")
            assert rc == 0  # still serving after all of that
        finally:
            await server.stop()
        assert not (tmp_path / "test.ctl").exists()

    asyncio.run(scenario())


def test_raw_socket_garbage_split_and_pipelined(tmp_path) -> None:
    async def scenario() -> None:
        server = _server(tmp_path)
        await server.start()
        loop = asyncio.get_running_loop()
        try:
            def talk(chunks: list[bytes], n_replies: int) -> list[dict]:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect(server.path)
                    for c in chunks:
                        s.sendall(c)
                    buf = JsonSplitter()
                    got: list[bytes] = []
                    while len(got) < n_replies:
                        data = s.recv(65536)
                        if not data:
                            break
                        got += buf.feed(data)
                    return [json.loads(g) for g in got]

            # Two requests, the first split in the middle, the second pipelined.
            req1 = json.dumps({"method": "echo", "params": ["x"], "id": 1}).encode()
            req2 = json.dumps({"method": "echo", "params": [5], "id": 2}).encode()
            replies = await loop.run_in_executor(
                None, talk, [req1[:7], req1[7:] + req2], 2
            )
            assert replies[0] == {"result": "x\n", "error": None, "id": 1}
            assert replies[1]["result"] is None
            assert replies[1]["error"] == '"echo" command has non-string argument\n'

            # Garbage closes only that connection.
            closed = await loop.run_in_executor(None, talk, [b"garbage!"], 1)
            assert closed == []
            replies = await loop.run_in_executor(
                None, talk, [json.dumps({"method": "version", "params": [], "id": 7}).encode()], 1
            )
            assert replies[0]["id"] == 7 and "9.9.9" in replies[0]["result"]
        finally:
            await server.stop()

    asyncio.run(scenario())
