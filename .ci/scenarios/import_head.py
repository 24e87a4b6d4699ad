#!/usr/bin/env python3
"""A device started from a laptop's head, measured by hand against the release binary on corn4
(README, "A device started from a head trained on a laptop"):

1. `fieldtune train` on the lab pictures of corn4 train (+ val) -- the 256x256 PlantVillage ones,
   without the field photos (PlantDoc) -- as a laptop would, and `fieldtune predict --json` of every
   test image with that head;
2. `fieldtune state import --head` into a new state; the service replays corn4 test with the page's
   MJPEG stream open the whole time: every test image is predicted exactly as `predict` does;
3. the device is taught the field photos of corn4 train and val (what a device in a field sees and
   the laptop's head never saw) by seq over the control socket, then restarted and replays corn4
   test again: accuracy on all of test and on its 57 field photos, before and after (as the
   service says it: "unknown" counts as wrong), and `fieldtune eval` of both heads (closed-set);
4. the service's peak RSS (VmHWM) with the stream open, and the stream's frame counters.

Usage: .ci/scenarios/import_head.py [CORN4_DIR] [WORK_DIR]  (defaults: /work/shared/data/corn4,
a temporary directory). Needs target/release/fieldtune.
"""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target/release/fieldtune")
CORN = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/corn4"
WORK = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="fieldtune-import-")


def run(*args):
    out = subprocess.run([BIN, *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"fieldtune {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def images(folder):
    return sorted(
        os.path.join(folder, c, f) for c in os.listdir(folder) for f in os.listdir(os.path.join(folder, c))
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Device:
    def __init__(self, folder, fps, web=False):
        self.sock = os.path.join(WORK, "control.sock")
        self.port = free_port() if web else None
        args = [BIN, "run", "--fps", str(fps), "--folder", folder, "--state", os.path.join(WORK, "state"),
                "--socket", self.sock]
        if web:
            args += ["--web", f"127.0.0.1:{self.port}"]
        env = dict(os.environ, RUST_LOG="warn")
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)

    def line(self):
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("the service stopped")
        return json.loads(line)

    def ask(self, request):
        for _ in range(600):
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                    s.sendall((json.dumps(request) + "\n").encode())
                    reply = s.makefile().readline()
                    return json.loads(reply)
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.1)
        sys.exit("no control socket")

    def settle(self):
        while not self.ask({"cmd": "status"})["data"]["settled"]:
            time.sleep(0.2)

    def pass_over(self, n):
        """One prediction per image of the folder (n of them): file → (class, probability, truth)."""
        seen = {}
        while len(seen) < n:
            l = self.line()
            seen[os.path.basename(l["origin"])] = (l["class"], l["probability"], l["truth"])
        return seen

    def peak_rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def stream_reader(port, stats, stop):
    """The page's stream: reads every part and counts them."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    s.settimeout(5)
    while not stop.is_set():
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            continue
        if not chunk:
            break
        stats["bytes"] += len(chunk)
        stats["parts"] += chunk.count(b"--fieldtune-frame\r\n")
    s.close()


def accuracy(seen, names=None):
    keys = [k for k in seen if names is None or k in names]
    return sum(seen[k][0] == seen[k][2] for k in keys), len(keys)


def main():
    os.makedirs(WORK, exist_ok=True)
    field = {"test": set(), "train": [], "val": []}
    with open(os.path.join(CORN, "MANIFEST.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if (row["orig_w"], row["orig_h"]) != ("256", "256"):
                if row["split"] == "test":
                    field["test"].add(os.path.basename(row["file"]))
                else:
                    field[row["split"]].append(row["file"])
    # The laptop's data: the lab pictures of train and val (symlinks).
    lab = os.path.join(WORK, "lab")
    shutil.rmtree(lab, ignore_errors=True)
    skip = set(field["train"] + field["val"])
    for split in ("train", "val"):
        for path in images(os.path.join(CORN, split)):
            rel = os.path.relpath(path, CORN)
            if rel in skip:
                continue
            os.makedirs(os.path.join(lab, os.path.dirname(rel)), exist_ok=True)
            os.symlink(path, os.path.join(lab, rel))
    head = os.path.join(WORK, "lab.fth")
    t = time.time()
    run("train", "--data", os.path.join(lab, "train"), "--val", os.path.join(lab, "val"), "--out", head)
    print(f"train on {len(images(os.path.join(lab, 'train')))} + {len(images(os.path.join(lab, 'val')))} "
          f"lab pictures: {time.time() - t:.1f} s")
    test = images(os.path.join(CORN, "test"))
    reference = {}
    for line in run("predict", "--json", "--head", head, *test).splitlines():
        v = json.loads(line)
        p = 0.0 if v["unknown"] else v["top"][0]["probability"]
        reference[os.path.basename(v["image"])] = (None if v["unknown"] else v["class"], p)
    print(run("state", "import", "--head", head, "--into", os.path.join(WORK, "state")).strip())

    # 2. The imported head, as the service serves it, with the page's stream open.
    device = Device(os.path.join(CORN, "test"), 0, web=True)
    stats, stop = {"bytes": 0, "parts": 0}, threading.Event()
    device.line()
    reader = threading.Thread(target=stream_reader, args=(device.port, stats, stop))
    reader.start()
    before = device.pass_over(len(test))
    mismatched = [k for k in reference if before[k][0] != reference[k][0]
                  or abs(before[k][1] - reference[k][1]) > 1e-4]
    rss = device.peak_rss_kib()
    stop.set()
    reader.join()
    with urlopen_metrics(device.port) as text:
        skipped = [l for l in text.splitlines() if l.startswith("fieldtune_web_stream")]
    device.stop()
    print(f"imported head on the device: {len(test) - len(mismatched)} of {len(test)} test images "
          f"predicted exactly as `fieldtune predict` (class, probability within 1e-4)")
    print(f"peak RSS of the service with the stream open: {rss} KiB; stream parts read: "
          f"{stats['parts']} ({stats['bytes']} bytes); {'; '.join(skipped)}")

    # 3. Teach it the field photos of train and val, by seq, as they go by.
    folder = os.path.join(WORK, "field")
    shutil.rmtree(folder, ignore_errors=True)
    for rel in field["train"] + field["val"]:
        to = os.path.join(folder, os.path.basename(os.path.dirname(rel)), os.path.basename(rel))
        os.makedirs(os.path.dirname(to), exist_ok=True)
        shutil.copy(os.path.join(CORN, rel), to)
    taught = len(images(folder))
    device = Device(folder, 5)
    labelled = set()
    while len(labelled) < taught:
        l = device.line()
        name = os.path.basename(l["origin"])
        if name in labelled:
            continue
        reply = device.ask({"cmd": "label", "class": l["truth"], "frame": l["seq"]})
        if reply["ok"]:
            labelled.add(name)
    device.settle()
    device.stop()

    device = Device(os.path.join(CORN, "test"), 0)
    after = device.pass_over(len(test))
    device.stop()
    for what, seen in (("imported head", before), (f"after {len(labelled)} labels", after)):
        r, n = accuracy(seen)
        rf, nf = accuracy(seen, field["test"])
        print(f"{what}: test {100 * r / n:.2f} % ({r}/{n}), field photos {100 * rf / nf:.2f} % ({rf}/{nf})")
    device_head = os.path.join(WORK, "device.fth")
    run("state", "export", os.path.join(WORK, "state"), "--head", device_head)
    test_field = os.path.join(WORK, "test-field")
    shutil.rmtree(test_field, ignore_errors=True)
    for path in test:
        if os.path.basename(path) in field["test"]:
            to = os.path.join(test_field, os.path.basename(os.path.dirname(path)))
            os.makedirs(to, exist_ok=True)
            shutil.copy(path, to)
    for what, h in (("imported head", head), ("device head", device_head)):
        for data in (os.path.join(CORN, "test"), test_field):
            v = json.loads(run("eval", "--data", data, "--head", h, "--json"))
            print(f"eval {what} on {data}: closed-set {100 * v['accuracy']:.2f} %, "
                  f"accepted {100 * v['accepted_accuracy']:.2f} %, unknown {100 * v['unknown_rate']:.2f} %")
    print(f"work directory: {WORK}")


class urlopen_metrics:
    def __init__(self, port):
        self.port = port

    def __enter__(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        s.close()
        return data.decode(errors="replace")

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
