"""``swimpy demo``: a real cluster on loopback, a crash, its detection and a rejoin
(real time; the local profile and 2-3 members keep each run to about 5 s)."""

from __future__ import annotations

import json
import re
from typing import Any

from click.testing import CliRunner

from swimpy.demo import command


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(command, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_json_timings() -> None:
    code, out, err = run("--profile", "local", "--members", "3", "--json")
    assert code == 0, err
    r: dict[str, Any] = json.loads(out)  # the whole of stdout is one JSON object
    names = ["demo-1", "demo-2", "demo-3"]
    assert (r["members"], r["profile"], r["names"]) == (3, "local", names)

    # convergence: every member saw every other alive, quickly on loopback
    conv = r["convergence"]
    assert set(conv["by_member"]) == set(names)
    # usually well under a second; a member that missed a transmit-limited broadcast
    # waits for anti-entropy (push/pull), which the demo's limit allows for
    assert 0 <= conv["all_s"] < r["limits_s"]["converge"]
    assert abs(max(conv["by_member"].values()) - conv["all_s"]) <= 0.002

    # the crash of the last member: suspected before (or when) declared dead, by everyone
    crash = r["crash"]
    assert crash["member"] == "demo-3"
    assert set(crash["by_member"]) == {"demo-1", "demo-2"}
    for times in crash["by_member"].values():
        assert times["dead_s"] is not None and times["dead_s"] > 0
        if times["suspect_s"] is not None:  # a dead broadcast may arrive first
            assert 0 < times["suspect_s"] <= times["dead_s"]
    assert crash["first_suspect_s"] is not None
    assert 0 < crash["first_suspect_s"] <= crash["first_dead_s"] <= crash["all_dead_s"]
    # local profile, 3 members: at least the minimum suspicion timeout (3 s) after the
    # first suspicion, well within the longest (18 s)
    assert crash["first_dead_s"] - crash["first_suspect_s"] >= 2.9
    assert crash["all_dead_s"] < 20

    # back under the same name and port, alive again for everyone, with a higher
    # incarnation (it refuted its own death)
    rejoin = r["rejoin"]
    assert rejoin["member"] == "demo-3"
    assert rejoin["port"] == r["ports"]["demo-3"]
    assert set(rejoin["by_member"]) == {"demo-1", "demo-2"}
    assert 0 < rejoin["first_alive_s"] <= rejoin["all_alive_s"] <= rejoin["converged_s"]
    assert rejoin["converged_s"] < r["limits_s"]["rejoin"]
    assert rejoin["incarnation"] >= 1
    assert 0 <= rejoin["member_sees_all_s"] <= rejoin["converged_s"]
    # suspicions of running members (none expected on an idle machine) are counted
    assert isinstance(r["false_suspicions"], int)


def test_human_output() -> None:
    code, out, err = run("--profile", "local", "--members", "2")
    assert code == 0, err
    lines = out.splitlines()
    # running commentary: timestamped lines, in order
    stamped = [line for line in lines if re.match(r"\[\s*\d+\.\d{3}s\] ", line)]
    stamps = [float(line[1:line.index("s]")]) for line in stamped]
    assert stamps == sorted(stamps)
    text = "\n".join(stamped)
    for needle in ("started 2 members on 127.0.0.1", "converged: every member sees every other alive",
                   "killed demo-2", "demo-1 suspects demo-2", "demo-1 declares demo-2 dead",
                   "restarted demo-2 on 127.0.0.1:", "demo-1 sees demo-2 alive again",
                   "every member sees demo-2 alive again"):
        assert needle in text, needle
    assert text.index("suspects demo-2") < text.index("declares demo-2 dead")
    # then the summary
    assert "summary: 2 members, local profile, 127.0.0.1" in out
    assert re.search(r"^    demo-1 +\d+\.\d{3} +\d+\.\d{3}$", out, re.M)
    assert re.search(r"^  false suspicions of running members: \d+$", out, re.M)


def test_timeout_is_a_one_line_error() -> None:
    code, out, err = run("--profile", "local", "--members", "2", "--json", "--timeout", "0.5")
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [
        "Error: timed out after 0.5 s waiting for every member to declare demo-2 dead "
        "(not yet: demo-1)"]


def test_members_range() -> None:
    for bad in ("1", "51"):
        code, _, err = run("--members", bad)
        assert code == 2
        assert "--members" in err
