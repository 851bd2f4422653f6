"""A swimpy member in a process of its own, for tests and benchmarks that need real
processes (a SIGKILL that is a real crash, a restart under the same name and port, CPU and
memory measured per process). Until ``swimpy agent`` exists this is the smallest such
program; it is not an agent (no control API, no signals handling beyond the default).

    python -m swimpy.runtime.child --name n1 --bind 127.0.0.1:7950 --join 127.0.0.1:7946 \\
        --tag role=web --status-file n1.json

Every ``--status-interval`` seconds it writes (atomically) a JSON file with its address,
its view of every member (name, addr, port, status, incarnation, tags) and its statistics.
It reads commands from stdin, one per line: ``leave`` (graceful leave, then keep running),
``tags k=v ...`` (replace the tags), ``exit``. EOF on stdin is ignored, so it can run
detached.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import trio

from swimpy import profiles
from swimpy.core.member import Member
from swimpy.runtime.node import JoinError, Node, open_node

log = logging.getLogger("swimpy.child")


def _member_json(m: Member) -> dict[str, Any]:
    return {"name": m.name, "addr": m.addr, "port": m.port, "status": m.state.name.lower(),
            "incarnation": m.incarnation, "tags": dict(m.tags)}


def _write_status(node: Node, path: str) -> None:
    stats = node.statistics()
    data = {
        "name": node.name,
        "pid": os.getpid(),
        "address": list(node.address),
        "members": [_member_json(m) for m in node.all_members()],
        "statistics": stats.as_dict(),
        "keys": [base64.b64encode(k).decode() for k in node.keyring.list()],
    }
    tmp = f"{path}.tmp"
    # one write of the whole text: json.dump writes each small chunk through the file
    # object, several times the CPU for a file the benchmarks rewrite every few seconds
    text = json.dumps(data)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


async def _commands(node: Node) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buf = b""
    while True:
        data = await stdin.receive_some(4096)
        if not data:
            await trio.sleep_forever()
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "leave":
                await node.leave()
                log.info("left")
            elif words[0] == "tags":
                await node.update_tags(dict(w.split("=", 1) for w in words[1:]))
            elif words[0] == "exit":
                raise SystemExit(0)


async def run(args: argparse.Namespace) -> None:
    host, _, port = args.bind.rpartition(":")
    data: dict[str, Any] = {"profile": args.profile, "name": args.name,
                            "bind_addr": host.strip("[]"), "bind_port": int(port)}
    if args.key:
        data["secret_keys"] = args.key
    for item in args.set:
        k, _, v = item.partition("=")
        try:  # numbers and booleans as JSON, durations ("2s") and the rest as text
            data[k] = json.loads(v)
        except json.JSONDecodeError:
            data[k] = v
    config = profiles.from_mapping(data, source="--set")
    tags = dict(t.split("=", 1) for t in args.tag)
    async with open_node(config, tags=tags) as node, trio.open_nursery() as nursery:
        if args.status_file:
            async def report() -> None:
                while True:
                    _write_status(node, args.status_file)
                    await trio.sleep(args.status_interval)
            nursery.start_soon(report)
        if not args.no_stdin:
            nursery.start_soon(_commands, node)
        if args.join:
            try:
                n = await node.join(args.join, retry_interval=0.5, retry_max=args.join_retries)
                log.info("joined through %d seeds", n)
            except JoinError as exc:
                log.error("%s", exc)
        await trio.sleep_forever()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m swimpy.runtime.child")
    p.add_argument("--name", required=True)
    p.add_argument("--bind", required=True, help="HOST:PORT for UDP and TCP")
    p.add_argument("--profile", default="lan")
    p.add_argument("--join", action="append", default=[])
    p.add_argument("--join-retries", type=int, default=20)
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--key", help="base64 encryption key")
    p.add_argument("--set", action="append", default=[], help="FIELD=VALUE profile override")
    p.add_argument("--status-file")
    p.add_argument("--status-interval", type=float, default=0.1)
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(run, args)


if __name__ == "__main__":
    main()
