"""``swimpy agent`` and the commands that talk to a running agent (``members``, ``join``,
``leave``, ``info``, ``keys``, ``monitor``, ``tags``), modelled on ``serf``'s.

Every command that prints data takes ``--json``, whose output is exactly the control
API's payload. Errors are one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from swimpy.agent.settings import DEFAULT_RPC_ADDR, SettingsError

rpc_option = click.option("--rpc-addr", default=DEFAULT_RPC_ADDR, show_default=True,
                          metavar="HOST:PORT", help="the agent's control API")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="print the control API's JSON")


def _call(rpc_addr: str, method: str, path: str, body: Any = None) -> Any:
    from swimpy.agent.client import ClientError, request

    try:
        return request(rpc_addr, method, path, body)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------- the agent

@click.command("agent")
@click.option("--node", help="node name (default: the host name)")
@click.option("--profile", type=click.Choice(["lan", "wan", "local"]),
              help="timing profile and default port (8301, 8302, 7946)  [default: lan]")
@click.option("--bind", metavar="HOST:PORT", help="address for gossip (UDP and TCP)")
@click.option("--advertise", metavar="HOST:PORT", help="address to tell the others")
@click.option("--join", "start_join", multiple=True, metavar="HOST:PORT",
              help="join at start; failing to is fatal (repeatable)")
@click.option("--retry-join", multiple=True, metavar="HOST:PORT",
              help="join at start, retrying until one attempt succeeds (repeatable)")
@click.option("--retry-interval", metavar="DURATION",
              help="time between retry-join attempts  [default: 30s]")
@click.option("--retry-max", type=click.IntRange(min=0),
              help="retry-join attempts before giving up (0: forever)  [default: 0]")
@click.option("--encrypt", metavar="BASE64KEY", help="gossip encryption key")
@click.option("--keyring-file", metavar="PATH",
              help="Serf's keyring file (JSON array of base64 keys); changes are saved")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="a tag (repeatable)")
@click.option("--rpc-addr", metavar="HOST:PORT",
              help=f"control API address  [default: {DEFAULT_RPC_ADDR}]")
@click.option("--log-level", type=click.Choice(["trace", "debug", "info", "warn", "error"],
                                               case_sensitive=False),
              help="[default: info]")
@click.option("--log-json/--no-log-json", default=None, help="log lines as JSON objects")
@click.option("--event-handler", "event_handlers", multiple=True,
              metavar="[EVENTS=]SCRIPT", help="script to run on member events (repeatable)")
@click.option("--snapshot", "snapshot_path", metavar="PATH",
              help="remember members here and rejoin them after a restart")
@click.option("--dc", metavar="NAME", help="datacenter: also run a WAN pool as NAME.DC")
@click.option("--wan-bind", metavar="HOST:PORT", help="the WAN pool's address (with --dc)")
@click.option("--wan-advertise", metavar="HOST:PORT", help="the WAN pool's advertised address")
@click.option("--wan-join", multiple=True, metavar="HOST:PORT", help="join the WAN pool")
@click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="TOML settings (Serf's key names); flags override it")
def agent_command(config_file: str | None, tags: tuple[str, ...],
                  event_handlers: tuple[str, ...], encrypt: str | None,
                  retry_interval: str | None, **flags: Any) -> None:
    """Run a member until SIGINT or SIGTERM, then leave gracefully.

    Unlike serf agent (which leaves only on SIGINT by default) a SIGTERM also leaves, so a
    service manager stopping the agent makes it 'left', not 'failed'."""
    from swimpy.agent import settings as st

    try:
        base = st.load_file(config_file) if config_file else st.AgentSettings()
        changes: dict[str, Any] = {"node_name": flags.pop("node"), **flags}
        changes["tags"] = st.parse_tags(tags)
        if encrypt is not None:
            changes["encrypt_key"] = st.decode_key(encrypt, "--encrypt", "")
        if retry_interval is not None:
            changes["retry_interval"] = st._seconds(retry_interval, "--retry-interval", "")
        if event_handlers:
            changes["event_handlers"] = tuple(
                st.EventHandler.parse(h, "--event-handler", "") for h in event_handlers)
        for key in ("start_join", "retry_join", "wan_join"):
            changes[key] = tuple(changes[key])
        if config_file is not None:
            changes["source"] = config_file
        settings = st.merge(base, changes)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    run_agent(settings)


def run_agent(settings: Any) -> None:
    import logging

    import trio

    from swimpy.agent.agent import Agent, AgentError
    from swimpy.agent.logs import JsonFormatter, LogBroadcaster, level_number

    level = level_number(settings.log_level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(JsonFormatter() if settings.log_json else logging.Formatter(
        "%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    logs = LogBroadcaster(base_level=level)
    root = logging.getLogger("swimpy")
    root.addHandler(handler)
    root.addHandler(logs)
    root.setLevel(level)
    root.propagate = False
    agent = Agent(settings, logs)
    try:
        trio.run(agent.run)
    except* AgentError as group:
        raise click.ClickException(str(group.exceptions[0])) from None
    except* KeyboardInterrupt:
        pass
    if agent.exit_code:
        sys.exit(agent.exit_code)


# ---------------------------------------------------------------------------- commands

@click.command("members")
@click.option("--status", type=click.Choice(["alive", "suspect", "dead", "left"]),
              help="only members with this status")
@click.option("--tag", "tag_filters", multiple=True, metavar="KEY=REGEX",
              help="only members whose tag KEY matches REGEX (repeatable)")
@click.option("--wan", is_flag=True, help="the WAN pool (an agent started with --dc)")
@json_option
@rpc_option
def members_command(status: str | None, tag_filters: tuple[str, ...], wan: bool,
                    as_json: bool, rpc_addr: str) -> None:
    """List the members the agent knows (failed and left ones while retained)."""
    filters: list[tuple[str, re.Pattern[str]]] = []
    for f in tag_filters:
        key, sep, pattern = f.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{f!r} is not KEY=REGEX", param_hint="--tag")
        try:
            filters.append((key, re.compile(f"^(?:{pattern})$")))
        except re.error as exc:
            raise click.BadParameter(f"{pattern!r}: {exc}", param_hint="--tag") from None
    members = _call(rpc_addr, "GET", "/v1/agent/members" + ("?wan=1" if wan else ""))
    members = [m for m in members
               if (status is None or m["status"] == status)
               and all(k in m["tags"] and rx.match(m["tags"][k]) for k, rx in filters)]
    if as_json:
        _print_json(members)
        return
    rows = [(m["name"], _hostport(m["addr"], m["port"]), m["status"],
             ",".join(f"{k}={v}" for k, v in sorted(m["tags"].items()))) for m in members]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    for r in rows:
        click.echo("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@click.command("join")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--wan", is_flag=True, help="join through the WAN pool")
@json_option
@rpc_option
def join_command(addresses: tuple[str, ...], wan: bool, as_json: bool, rpc_addr: str) -> None:
    """Tell the agent to join a cluster through ADDRESSES (host:port)."""
    result = _call(rpc_addr, "PUT", "/v1/agent/join", {"addresses": list(addresses), "wan": wan})
    if as_json:
        _print_json(result)
    else:
        click.echo(f"Successfully joined cluster by contacting {result['contacted']} nodes.")


@click.command("leave")
@rpc_option
def leave_command(rpc_addr: str) -> None:
    """Leave the cluster gracefully and stop the agent."""
    _call(rpc_addr, "PUT", "/v1/agent/leave")
    click.echo("Graceful leave complete")


@click.command("info")
@json_option
@rpc_option
def info_command(as_json: bool, rpc_addr: str) -> None:
    """The agent's own member, profile and statistics."""
    info = _call(rpc_addr, "GET", "/v1/agent/self")
    if as_json:
        _print_json(info)
        return
    me = info.get("member") or {}
    click.echo("agent:")
    for key in ("name", "status", "incarnation"):
        click.echo(f"\t{key} = {me.get(key)}")
    click.echo(f"\taddress = {info['address']}")
    click.echo(f"\tprofile = {info['profile']}")
    click.echo(f"\tencrypted = {str(info['encrypted']).lower()}")
    click.echo(f"\tversion = {info['version']}")
    tags = me.get("tags") or {}
    if tags:
        click.echo("tags:")
        for k, v in sorted(tags.items()):
            click.echo(f"\t{k} = {v}")
    for pool, data in sorted(info["pools"].items()):
        click.echo(f"{pool}:")
        click.echo(f"\tname = {data['name']}")
        click.echo(f"\taddress = {data['address']}")
        for k, v in sorted(data["statistics"].items()):
            click.echo(f"\t{k} = {v}")


@click.command("keys")
@click.option("--list", "do_list", is_flag=True, help="list the installed keys")
@click.option("--install", metavar="KEY", help="install a key")
@click.option("--use", metavar="KEY", help="make an installed key the primary")
@click.option("--remove", metavar="KEY", help="remove a key (not the primary)")
@click.option("--verify", metavar="IN,OUT", help="gossip verification, e.g. off,off or on,on: "
              "whether to refuse plain incoming messages, and to encrypt outgoing ones "
              "(for turning encryption on in a live cluster; docs/agent.md)")
@json_option
@rpc_option
def keys_command(do_list: bool, install: str | None, use: str | None, remove: str | None,
                 verify: str | None, as_json: bool, rpc_addr: str) -> None:
    """Manage the local agent's encryption keys."""
    ops = [(op, k) for op, k in (("install", install), ("use", use), ("remove", remove))
           if k is not None]
    if len(ops) + int(do_list) + int(verify is not None) != 1:
        raise click.UsageError("give exactly one of --list, --install, --use, --remove, "
                               "--verify")
    if verify is not None:
        words = [w.strip().lower() for w in verify.split(",")]
        flags = {"on": True, "off": False}
        if len(words) != 2 or not all(w in flags for w in words):
            raise click.BadParameter(f"{verify!r} is not IN,OUT with on/off",
                                     param_hint="--verify")
        result = _call(rpc_addr, "PUT", "/v1/agent/keyring/verify",
                       {"incoming": flags[words[0]], "outgoing": flags[words[1]]})
        if as_json:
            _print_json(result)
        else:
            click.echo(f"verify_incoming = {str(result['verify_incoming']).lower()}, "
                       f"verify_outgoing = {str(result['verify_outgoing']).lower()}")
        return
    if do_list:
        result = _call(rpc_addr, "GET", "/v1/agent/keyring")
    else:
        op, key = ops[0]
        result = _call(rpc_addr, "PUT", f"/v1/agent/keyring/{op}", {"key": key})
    if as_json:
        _print_json(result)
        return
    if not do_list:
        done = {"install": "installed the key", "use": "made the key the primary",
                "remove": "removed the key"}[ops[0][0]]
        click.echo(f"Successfully {done}.")
        return
    if not result["keys"]:
        click.echo("no keys installed: gossip is not encrypted")
    for k in result["keys"]:
        click.echo(f"{k}{'  (primary)' if k == result['primary'] else ''}")


@click.command("monitor")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["trace", "debug", "info", "warn", "error"],
                                case_sensitive=False))
@rpc_option
def monitor_command(log_level: str, rpc_addr: str) -> None:
    """Stream the agent's log lines until interrupted."""
    from swimpy.agent.client import ClientError, stream_lines

    try:
        for line in stream_lines(rpc_addr, f"/v1/agent/monitor?log_level={log_level}"):
            click.echo(line)
            sys.stdout.flush()  # a stream: each line as it comes, also into a pipe
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@click.command("tags")
@click.option("--set", "to_set", multiple=True, metavar="KEY=VALUE", help="set a tag")
@click.option("--delete", "to_delete", multiple=True, metavar="KEY", help="delete a tag")
@json_option
@rpc_option
def tags_command(to_set: tuple[str, ...], to_delete: tuple[str, ...], as_json: bool,
                 rpc_addr: str) -> None:
    """Update the node's tags live (without options: show them)."""
    from swimpy.agent.settings import parse_tags

    if not to_set and not to_delete:
        result = _call(rpc_addr, "GET", "/v1/agent/tags")
    else:
        try:
            new = parse_tags(to_set, "--set")
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        result = _call(rpc_addr, "PUT", "/v1/agent/tags",
                       {"set": new, "delete": list(to_delete)})
    if as_json:
        _print_json(result)
        return
    for k, v in sorted(result["tags"].items()):
        click.echo(f"{k}={v}")


#: commands the ``swimpy`` group adds (``swimpy.cli``)
COMMANDS: list[click.Command] = [agent_command, members_command, join_command, leave_command,
                                 info_command, keys_command, monitor_command, tags_command]
