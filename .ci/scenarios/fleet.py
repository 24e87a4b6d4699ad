#!/usr/bin/env python3
"""Two devices of one fleet group and a mosquitto broker on this machine, measured by hand against
the release binary (README, "Fleet learning"):

1. mosquitto on a free port of 127.0.0.1; devices A and B (`fieldtune run`, the desktop board with
   `[mqtt]` and `[fleet] group = "scenario"`, their own state directories) replay the same folder
   (corn4 test by default) in the same shuffled order at 10 frames a second;
2. B's accuracy on the replayed frames before (it knows no class);
3. A is taught LABELS frames by seq with their folder's class over its control socket; for each
   label, the time from sending it to B holding one more sample (B's `status`, polled every 5 ms)
   and to B's first prediction line after that (the first prediction of B's changed head);
4. B's accuracy on the same replayed frames after, and the bytes A put on the wire per label.

Usage: .ci/scenarios/fleet.py [FOLDER] [LABELS] (defaults: /work/shared/data/corn4/test, 40).
Needs target/release/fieldtune and mosquitto (/usr/sbin/mosquitto).
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target/release/fieldtune")
FOLDER = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/corn4/test"
LABELS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
WORK = tempfile.mkdtemp(prefix="fieldtune-fleet-")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(sock, req):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall((json.dumps(req) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data)
    if not reply.get("ok"):
        sys.exit(f"{req}: {reply}")
    return reply.get("data")


class Device:
    def __init__(self, name, port):
        self.dir = os.path.join(WORK, name)
        os.makedirs(self.dir)
        with open(os.path.join(ROOT, "boards/desktop.toml")) as f:
            desktop = f.read()
        board = os.path.join(self.dir, "board.toml")
        with open(board, "w") as f:
            f.write(desktop + f'\n[mqtt]\nbroker = "mqtt://127.0.0.1:{port}"\nclient_id = "{name}"\n'
                    'discovery = false\n\n[fleet]\ngroup = "scenario"\n')
        self.sock = os.path.join(self.dir, "control.sock")
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [BIN, "run", "--board", board, "--folder", FOLDER, "--fps", "10", "--web", "none",
             "--predictions", "stdout", "--state", os.path.join(self.dir, "state"), "--socket", self.sock],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(os.path.join(self.dir, "log"), "w"), text=True)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            value = json.loads(line)
            value["seen"] = time.monotonic()
            with self.cond:
                self.lines.append(value)
                self.cond.notify_all()

    def next_line(self, after):
        """The first prediction line seen after monotonic time `after`."""
        with self.cond:
            while True:
                for line in self.lines:
                    if line["seen"] > after:
                        return line
                self.cond.wait(60)

    def samples(self):
        return sum(c["samples"] for c in request(self.sock, {"cmd": "status"})["classes"])

    def accuracy(self, frames):
        start = time.monotonic()
        right = 0
        for _ in range(frames):
            line = self.next_line(start)
            start = line["seen"]
            right += line["class"] is not None and line["class"] == line["truth"]
        return right / frames


def main():
    port = free_port()
    conf = os.path.join(WORK, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", conf],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    a, b = Device("cam-a", port), Device("cam-b", port)
    try:
        for d in (a, b):
            while not os.path.exists(d.sock):
                time.sleep(0.1)
            d.next_line(time.monotonic())
        frames = len([f for c in os.listdir(FOLDER) for f in os.listdir(os.path.join(FOLDER, c))])
        before = b.accuracy(min(frames, 200))
        to_merge, to_prediction = [], []
        labelled = set()
        while len(to_merge) < LABELS:
            line = a.next_line(time.monotonic())
            if line["origin"] in labelled:
                continue
            labelled.add(line["origin"])
            had = b.samples()
            sent = time.monotonic()
            request(a.sock, {"cmd": "label", "class": line["truth"], "frame": line["seq"]})
            while b.samples() == had:
                time.sleep(0.005)
            merged = time.monotonic()
            predicted = b.next_line(merged)["seen"]
            to_merge.append((merged - sent) * 1000)
            to_prediction.append((predicted - sent) * 1000)
        time.sleep(3)  # the retrain that follows the last labels
        after = b.accuracy(min(frames, 200))
        status = request(a.sock, {"cmd": "status"})["fleet"]
        q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
        print(json.dumps({
            "folder": FOLDER,
            "labels": LABELS,
            "b_accuracy_before": round(before, 3),
            "b_accuracy_after": round(after, 3),
            "label_to_merged_ms": {"median": round(statistics.median(to_merge), 1),
                                   "p90": round(q(to_merge, 0.9), 1), "max": round(max(to_merge), 1)},
            "label_to_first_changed_prediction_ms": {"median": round(statistics.median(to_prediction), 1),
                                                     "p90": round(q(to_prediction, 0.9), 1),
                                                     "max": round(max(to_prediction), 1)},
            "bytes_per_label": status["published_bytes"] / max(1, status["published"]),
            "a_fleet": status,
            "b_fleet": request(b.sock, {"cmd": "status"})["fleet"],
        }, indent=2))
    finally:
        for p in (a.proc, b.proc, broker):
            p.terminate()
            p.wait()
        shutil.rmtree(WORK, ignore_errors=True)


main()
