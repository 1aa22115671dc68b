"""Deployment benchmark: failed requests during updates, rollback speed, cost of alarms.

    python benchmarks/deployments.py [--bake 3] [--rollbacks 5] [--duration 5]

Under steady load (a Python client with 8 connections, in this process):
1. a full canary, linear and all-at-once update of the digits endpoint: requests answered
   and failed during each (expected: none failed);
2. rollbacks: the green model fails one request in five, a 5xx-rate alarm (1 s period)
   fires, the endpoint goes back to blue. Measured from the alarm's transition to ALARM to
   the table swap (server side, recorded in the deployment's events) and to the last reply
   from green (client side), and the failed requests, every one of which must be green's;
3. the cost of evaluating alarms: wrk at 64 connections against the endpoint with no alarm,
   then with 20 alarms of 1 s period on it, in interleaved rounds (medians).
wrk, the load client, the server and its workers all share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from tests import models  # noqa: E402
from tests.e2e.helpers import Load, canary, digit_rows  # noqa: E402

from gateway import Gateway, cpu_model, wrk  # noqa: E402
from sluice.client import Client  # noqa: E402

NEGATIVE = json.dumps([[-1.0] + [0.0] * 63]).encode()


def policies(bake: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("CANARY 10 %", canary(10, bake, TerminationWaitInSeconds=1)),
        (
            "LINEAR 25 %",
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "LINEAR",
                        "WaitIntervalInSeconds": bake,
                        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                    }
                }
            },
        ),
        (
            "ALL_AT_ONCE",
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": bake,
                    },
                    "TerminationWaitInSeconds": 1,
                }
            },
        ),
    ]


def updates(client: Client, url: str, bake: int) -> list[dict[str, Any]]:
    rows = []
    current = "v1"
    with Load(url, "digits", digit_rows(200)) as load:
        time.sleep(1)
        for i, (name, policy) in enumerate(policies(bake)):
            target = f"v{i + 2}"
            started = time.time()
            deployment = client.update_endpoint("digits", target, policy, wait=True, timeout=600)
            ended = time.time()
            during = load.between(started, ended)
            rows.append(
                {
                    "policy": name,
                    "from": current,
                    "to": target,
                    "outcome": deployment.state,
                    "seconds": round(deployment.duration_s, 2),
                    "requests": len(during),
                    "failed": sum(1 for r in during if r.status != 200),
                    "answered_by_green": sum(1 for r in during if r.config == target),
                }
            )
            print(rows[-1])
            current = target
        time.sleep(0.5)
    rows.append(
        {
            "policy": "whole run",
            "requests": len(load.replies),
            "failed": len(load.failed()),
        }
    )
    return rows


def rollbacks(client: Client, url: str, times: int) -> list[dict[str, Any]]:
    rows = []
    client.put_alarm(
        "digits-5xx",
        metric="Invocation5XXErrors",
        statistic="Average",
        threshold=0.05,
        period_s=1,
        endpoint="digits",
    )
    blue = client.get_endpoint("digits").config
    bodies = digit_rows(40) + [NEGATIVE] * 10
    policy = canary(50, 600)
    policy["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": "digits-5xx"}]}
    for _ in range(times):
        with Load(url, "digits", bodies) as load:
            time.sleep(0.5)
            started = client.update_endpoint("digits", "crashing", policy)
            deployment = client.wait_for_deployment(started.id, 120)
            time.sleep(1.0)
        alarm = next(t for t in deployment.alarm_transitions if t.new_state == "ALARM")
        swap = next(e for e in deployment.events if e.message.startswith("all traffic on blue"))
        alarm_at = alarm.at.timestamp()
        green = [r for r in load.replies if r.config == "crashing" or r.status != 200]
        last_green = max(r.at for r in green)
        blue_failed = [r for r in load.failed() if b"negative pixel values" not in r.body]
        rows.append(
            {
                "outcome": deployment.state,
                "alarm_to_swap_s": round(swap.at.timestamp() - alarm_at, 4),
                "alarm_to_last_green_reply_s": round(last_green - alarm_at, 4),
                "requests": len(load.replies),
                "failed_on_green": len(load.failed()) - len(blue_failed),
                "failed_on_blue": len(blue_failed),
            }
        )
        print(rows[-1])
        assert client.get_endpoint("digits").config == blue
    return rows


def alarm_cost(
    client: Client, url: str, duration: float, rounds: int, body: Path
) -> dict[str, Any]:
    names = [f"bench-{i}" for i in range(20)]
    throughput: dict[str, list[float]] = {"no alarms": [], "20 alarms": []}
    for _ in range(rounds):
        for label in throughput:
            for name in names:
                if label == "20 alarms":
                    metric = (
                        ("ModelLatency", "p99")
                        if int(name[6:]) % 2
                        else ("Invocation5XXErrors", "Average")
                    )
                    client.put_alarm(
                        name,
                        metric=metric[0],
                        statistic=metric[1],
                        threshold=1e9,
                        period_s=1,
                        endpoint="digits",
                    )
                elif name in {a.name for a in client.list_alarms()}:
                    client.delete_alarm(name)
            time.sleep(1.2)
            result = wrk(url + "/endpoints/digits/invocations", 64, duration, body)
            rate = result["requests"] / (result["duration_us"] / 1e6)
            throughput[label].append(rate)
            print(label, f"{rate:,.0f} req/s, {result['non_2xx'] + result['socket_errors']} errors")
    medians = {k: statistics.median(v) for k, v in throughput.items()}
    return {
        "rounds": throughput,
        "median_requests_per_s": medians,
        "cost_percent": round(100 * (1 - medians["20 alarms"] / medians["no alarms"]), 2),
    }


def record_cost_ns() -> float:
    import timeit

    from sluice.gateway.fleet_stats import FleetStats

    stats = FleetStats()
    loops = 200_000
    seconds = timeit.timeit(lambda: stats.record(0.0004, 0.00005, 0), number=loops)
    empty = timeit.timeit(lambda: None, number=loops)
    return (seconds - empty) / loops * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bake", type=int, default=3, help="WaitIntervalInSeconds per step")
    parser.add_argument("--rollbacks", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "deployments.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-deploy-"))
    (work / "home").mkdir()
    server = Gateway(work / "home", auth=False)  # what it measures is not the auth cost
    try:
        logreg = models.write_sklearn(work / "logreg", models.digits_logreg())
        tree = models.write_sklearn(work / "tree", models.digits_tree())
        crashing = models.write_handler(work / "crashing", models.CRASHING)
        body = work / "body.json"
        body.write_bytes(digit_rows(1)[0])
        with Client(server.url) as client:
            for name, path in (("logreg", logreg), ("tree", tree), ("crashing", crashing)):
                client.create_model(name, str(path))
            for i, model in enumerate(("logreg", "tree", "logreg", "tree")):
                client.create_endpoint_config(f"v{i + 1}", [{"name": "A", "model": model}])
            client.create_endpoint_config("crashing", [{"name": "A", "model": "crashing"}])
            client.create_endpoint("digits", "v1", wait=True)
            print("updates under load")
            update_rows = updates(client, server.url, args.bake)
            print("rollbacks on an alarm")
            rollback_rows = rollbacks(client, server.url, args.rollbacks)
            print("cost of evaluating alarms (wrk, 64 connections)")
            cost = alarm_cost(client, server.url, args.duration, args.rounds, body)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    swaps = [r["alarm_to_swap_s"] for r in rollback_rows]
    seen = [r["alarm_to_last_green_reply_s"] for r in rollback_rows]
    summary = {
        "failed_during_updates": sum(
            r["failed"] for r in update_rows if r["policy"] != "whole run"
        ),
        "failed_on_blue_during_rollbacks": sum(r["failed_on_blue"] for r in rollback_rows),
        "alarm_to_swap_s": {"median": statistics.median(swaps), "max": max(swaps)},
        "alarm_to_last_green_reply_s": {"median": statistics.median(seen), "max": max(seen)},
        "alarm_evaluation_cost_percent": cost["cost_percent"],
        "stats_record_ns_per_request": round(record_cost_ns(), 1),
    }
    bars = [
        ("zero failed requests during updates", summary["failed_during_updates"] == 0),
        (
            "zero failed blue requests during rollbacks",
            summary["failed_on_blue_during_rollbacks"] == 0,
        ),
        ("all traffic on blue within 2 s of ALARM", max(swaps) < 2.0),
        ("alarm evaluation costs at most 2 % throughput", cost["cost_percent"] <= 2.0),
    ]
    print(json.dumps(summary, indent=2))
    for name, ok in bars:
        print(f"{'met' if ok else 'NOT MET'}: {name}")
    machine = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": machine,
                "updates": update_rows,
                "rollbacks": rollback_rows,
                "alarm_cost": cost,
                "summary": summary,
                "bars": [{"bar": n, "met": ok} for n, ok in bars],
            },
            indent=2,
        )
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
