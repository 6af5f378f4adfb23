"""A consumer-group member run as its own process (so a test can `kill -9` it).

    python3 member.py KIND BOOTSTRAP GROUP TOPIC [--instance-id ID] [--session-ms MS]

Prints one line per event, flushed at once:
    ASSIGNED 0,1,2        whenever its assignment changes
    MSG <partition> <offset>
Commits after every batch. On SIGTERM it closes the consumer (leaving the group) and
prints CLOSED.
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clients import make_member  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind")
    ap.add_argument("bootstrap")
    ap.add_argument("group")
    ap.add_argument("topic")
    ap.add_argument("--instance-id")
    ap.add_argument("--session-ms", type=int, default=6000)
    args = ap.parse_args()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    m = make_member(args.kind, args.bootstrap, args.group, args.topic, session_ms=args.session_ms, instance_id=args.instance_id)
    last = None
    while not stop["now"]:
        msgs = m.poll(0.2)
        nxt = {}
        for p, o, _v in msgs:
            print(f"MSG {p} {o}", flush=True)
            nxt[p] = max(nxt.get(p, 0), o + 1)
        if nxt:
            m.commit(nxt)
        a = sorted(m.assignment())
        if a != last:
            print("ASSIGNED " + ",".join(map(str, a)), flush=True)
            last = a
    m.close()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    main()
