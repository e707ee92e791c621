"""Benchmark: events per second the ESL client parses and routes to per-call queues.

A separate server process (so its sending does not share the client's core) plays
FreeSWITCH: it answers the handshake, then writes the recorded events of a real call
(esl-transcript.txt: CHANNEL_CREATE ... DTMF ... CHANNEL_EXECUTE_COMPLETE ... CHANNEL_DESTROY,
~5.5 KB each) rewritten for many calls, over a real local TCP socket. The client routes each
event to its call's queue and to one listener (as the line counter would be).

Two runs: ``reader_only`` (queues fill, nobody drains them while timing) and ``with_consumers``
(one greenlet per call drains its queue, as the call runners do). Prints JSON.

    /work/venv/bin/python scripts/bench_esl.py [--calls 200] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RECORDED = "esl-transcript.txt"
RECORDED_CALL = b"ae6c553c-0f83-41db-bebf-88de761ec0cd"
END_MARKER_CALL = "bench-end"


def build_stream(calls: int) -> tuple[bytes, int]:
    """Every recorded event of the call, once per call, with the call's Unique-ID rewritten."""
    from tests.support import transcripts

    templates = [
        frame.body
        for frame in transcripts.load(RECORDED).frames()
        if frame.headers.get("Content-Type") == "text/event-json" and RECORDED_CALL in frame.body
    ]
    frames = []
    for _ in range(calls):
        call = str(uuid.uuid4()).encode()
        for body in templates:
            rewritten = body.replace(RECORDED_CALL, call)
            header = b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(rewritten)
            frames.append(header + rewritten)
    return b"".join(frames), len(frames)


def end_marker() -> bytes:
    body = json.dumps({"Event-Name": "CUSTOM", "Unique-ID": END_MARKER_CALL}).encode()
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body


def serve(calls: int, rounds: int) -> None:
    """The server process: handshake, then per 'api go' command the whole stream."""
    stream, _ = build_stream(calls)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print(listener.getsockname()[1], flush=True)
    sock, _ = listener.accept()
    reader = sock.makefile("rb")

    def read_command() -> bytes:
        lines = []
        while (line := reader.readline()) not in (b"\n", b""):
            lines.append(line)
        return b"".join(lines)

    sock.sendall(b"Content-Type: auth/request\n\n")
    read_command()
    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
    read_command()
    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled json\n\n")
    while read_command().startswith(b"api go"):
        sock.sendall(b"Content-Type: api/response\nContent-Length: 3\n\n+OK")
        for _ in range(rounds):
            sock.sendall(stream)
        sock.sendall(end_marker())
    sock.close()


def measure(port: int, drain: bool, total: int) -> dict[str, float]:
    import gevent
    import gevent.queue

    from robocall.esl.client import EslClient

    client = EslClient("127.0.0.1", port, "ClueCon", command_timeout=60.0)
    client.connect()
    seen = 0

    def count(event: object) -> None:
        nonlocal seen
        seen += 1

    client.add_event_listener(count)
    done = client.channel_queue(END_MARKER_CALL)
    queues = {}
    consumers = []

    def drain_forever(queue: gevent.queue.Queue) -> None:
        while True:
            queue.get()

    def register(call: str) -> None:
        queue = client.channel_queue(call)
        queues[call] = queue
        if drain:
            consumers.append(gevent.spawn(drain_forever, queue))

    # Calls are registered as the runner would, before their originate: the Unique-IDs are
    # learnt from the first round by a listener (cheap), so every event after that is routed.
    def learn(event: object) -> None:
        call = event.unique_id  # type: ignore[attr-defined]
        if call and call not in queues and call != END_MARKER_CALL:
            register(call)

    client.add_event_listener(learn)
    client.api("go warmup")
    done.get(timeout=120)
    client.remove_event_listener(learn)
    for queue in queues.values():
        while not queue.empty():
            queue.get()
    seen = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    client.api("go")
    done.get(timeout=300)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    routed = sum(queue.qsize() for queue in queues.values())
    for consumer in consumers:
        consumer.kill()
    client.close()
    return {
        "events": seen - 1,
        "left_in_call_queues": routed,
        "seconds": round(elapsed, 3),
        "events_per_second": round((seen - 1) / elapsed),
        "cpu_seconds": round(cpu, 3),
        "events_per_cpu_second": round((seen - 1) / cpu),
        "expected_events": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.calls, args.rounds)
        return

    from gevent import monkey

    monkey.patch_all()

    stream, per_round = build_stream(args.calls)
    results: dict[str, object] = {
        "calls": args.calls,
        "event_bytes_mean": round(len(stream) / per_round),
        "events_per_round": per_round,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
    }
    for name, drain in (("reader_only", False), ("with_consumers", True)):
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                f"--calls={args.calls}",
                f"--rounds={args.rounds}",
            ],
            stdout=subprocess.PIPE,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            results[name] = measure(port, drain, per_round * args.rounds)
        finally:
            server.wait(timeout=60)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
