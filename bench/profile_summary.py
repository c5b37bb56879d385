"""Summarize a py-spy ``--format raw`` (folded stacks) profile of a deviceflow worker.

    python bench/profile_summary.py PROFILE.folded [--top 25]

Prints where the samples go: by layer (a package or file pattern, first match from the leaf up
wins, so "self" time is attributed to the code that actually ran), then the functions with the
most inclusive and most self samples. Idle samples (the event loop waiting in epoll) are counted
separately so the shares are of busy time.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

# Layer of a frame, by its file path; the first pattern that matches wins.
LAYERS: list[tuple[str, str]] = [
    ("deviceflow.protocol", r"\(deviceflow/protocol/"),
    ("deviceflow.storage", r"\(deviceflow/storage/"),
    ("deviceflow.server.service", r"\(deviceflow/server/(service|polling)\.py"),
    ("deviceflow.server.web", r"\(deviceflow/server/web/"),
    ("deviceflow (other)", r"\(deviceflow/"),
    ("hmac / hashlib / secrets", r"\((hmac|hashlib|secrets|random)\.py"),
    ("sqlalchemy", r"\(sqlalchemy/"),
    ("aiosqlite", r"\(aiosqlite/"),
    ("asyncpg", r"\(asyncpg/"),
    ("limits / redis", r"\((limits|redis)/"),
    ("starlette", r"\(starlette/"),
    ("uvicorn", r"\(uvicorn/"),
    ("granian", r"\(granian/"),
    ("logging", r"\(logging/"),
    ("json", r"\(json/"),
    ("asyncio event loop (incl. uvloop C code)", r"\(asyncio/"),
    ("threading / queue", r"\((threading|queue)\.py|\(concurrent/"),
    ("stdlib (other)", r"\([a-z_]+\.py:"),
]
IDLE = re.compile(
    r"select \(selectors\.py|^poll \(|epoll|wait \(threading|get \(queue\.py"
    r"|_connection_worker_thread \(aiosqlite/core\.py:59\)"
)


def frame_layer(frame: str) -> str:
    for name, pattern in LAYERS:
        if re.search(pattern, frame):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", default="", help="only stacks whose thread matches this")
    args = parser.parse_args()

    total = 0
    idle = 0
    by_layer: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    with open(args.profile, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0] if frames and frames[0].startswith(("process", "thread", "Thread")) \
            else ""
        if args.thread and args.thread not in thread:
            continue
        threads[thread] += count
        total += count
        leaf = frames[-1]
        # py-spy --idle is off by default: a sample whose leaf is a wait is still idle time.
        if IDLE.search(leaf):
            idle += count
            continue
        # The layer of the deepest frame that is Python code we can name.
        layer = "other"
        for frame in reversed(frames):
            layer = frame_layer(frame)
            if layer != "other":
                break
        by_layer[layer] += count
        self_time[leaf] += count
        for frame in set(frames):
            inclusive[frame] += count

    busy = total - idle
    print(f"samples: {total}  idle: {idle}  busy: {busy}")
    if len(threads) > 1:
        print("threads:", ", ".join(f"{t or '?'}={n}" for t, n in threads.most_common()))
    print("\nbusy samples by layer (self time):")
    for layer, n in by_layer.most_common():
        print(f"  {n / max(busy, 1):6.1%}  {layer}")
    print(f"\ntop {args.top} inclusive (share of busy):")
    for frame, n in inclusive.most_common(args.top + 10)[: args.top + 10]:
        if IDLE.search(frame) or frame.startswith(("process", "thread", "Thread")):
            continue
        print(f"  {n / max(busy, 1):6.1%}  {frame[:140]}")
    print(f"\ntop {args.top} self:")
    for frame, n in self_time.most_common(args.top):
        print(f"  {n / max(busy, 1):6.1%}  {frame[:140]}")


if __name__ == "__main__":
    sys.exit(main())
