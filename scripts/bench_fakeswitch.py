"""Benchmark: how many calls per second FakeSwitch carries, so benchmarks know it is not the limit.

FakeSwitch runs in its own process (as a lab FreeSWITCH would), scripted durations sped up by
``--time-scale``. robocall's own ESL client (robocall.esl) originates ``--calls`` calls at
once (up to the switch's sessions-per-second budget, raised here), and on each CHANNEL_PARK
plays ``silence_stream://1000`` and hangs up. Measured: wall time from the first originate to
the last CHANNEL_HANGUP_COMPLETE, calls/s and events/s received. Prints JSON.

    /work/venv/bin/python scripts/bench_fakeswitch.py [--calls 300] [--time-scale 0.01]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAKE = """
import sys
from gevent import monkey; monkey.patch_all()
import gevent
from robocall.testing import FakeSwitch
fake = FakeSwitch(time_scale=float(sys.argv[1]), sessions_per_second=100000,
                  max_sessions=100000).start()
print(fake.port, flush=True)
gevent.wait()
"""


def main() -> None:
    """Start the fake in a child process, drive calls through it, print the measurements."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from robocall.esl import commands
    from robocall.esl.client import EslClient
    from robocall.esl.protocol import Event

    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--time-scale", type=float, default=0.01)
    args = parser.parse_args()

    child = subprocess.Popen([sys.executable, "-c", FAKE, str(args.time_scale)],
                             stdout=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        client = EslClient("127.0.0.1", port, "ClueCon", command_timeout=60)
        client.connect()
        counted = {"events": 0}
        client.add_event_listener(lambda event: counted.__setitem__("events",
                                                                   counted["events"] + 1))

        def call() -> bool:
            leg = str(uuid.uuid4())
            queue = client.channel_queue(leg)
            client.bgapi(commands.originate(
                uuid=leg, dial_string="sofia/gateway/robocall/+6580000001",
                caller_id_number="6582674904", timeout_seconds=30, call_id=leg,
                request_id="bench"))
            while True:
                event = queue.get(timeout=120)
                if not isinstance(event, Event):
                    return False
                if event.name == "CHANNEL_PARK":
                    client.execute(leg, "playback", "silence_stream://1000").wait(120)
                    client.hangup(leg)
                elif event.name == "CHANNEL_HANGUP_COMPLETE":
                    client.release_channel(leg)
                    return True

        started = time.perf_counter()
        cpu_started = time.process_time()
        results = gevent.joinall([gevent.spawn(call) for _ in range(args.calls)], raise_error=True)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        client.close()
        print(json.dumps({
            "benchmark": "fakeswitch_calls",
            "calls": args.calls,
            "completed": sum(1 for g in results if g.value),
            "time_scale": args.time_scale,
            "seconds": round(elapsed, 3),
            "calls_per_second": round(args.calls / elapsed, 1),
            "events_received": counted["events"],
            "events_per_second": round(counted["events"] / elapsed, 1),
            # This process only (the fake runs in its own): the client's cost of one call.
            "client_cpu_ms_per_call": round(cpu * 1000 / args.calls, 3),
        }))
    finally:
        child.terminate()
        child.wait(timeout=10)


if __name__ == "__main__":
    main()
