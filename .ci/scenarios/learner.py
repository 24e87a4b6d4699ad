#!/usr/bin/env python3
"""What the device knows, measured through the release binary as a person would use it.

    python3 .ci/scenarios/learner.py [--data ../shared/data/corn4/test] [--per-class 12] [--window 150]

1. `fieldtune run --folder DATA --fps 20` replays the images (paced as a camera is: unpaced, the
   service outruns a person, and the frames named by seq have left its ring before the label);
   the first PER_CLASS frames of each class are labelled with `fieldtune label CLASS --frame
   SEQ` (the frame's true class).
2. Once the service has settled (no retrain running, none due), accuracy on the next WINDOW
   replayed frames ("before").
3. `fieldtune train` on exactly the labelled images, judged on the same WINDOW images.
4. SIGKILL, restart on the same state: accuracy on the same WINDOW frames (the replay order is the
   same), and the class counts before and after.
5. Ten more labels of one class in a row, then accuracy on the other classes' frames of a window,
   before the retrain that follows (the online steps alone).
Prints one JSON object. Needs target/release/fieldtune (cargo build --release). Not part of the
test suite: it takes minutes and needs the full data set.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target/release/fieldtune"


def fieldtune(*args, check=True):
    out = subprocess.run([str(BIN), *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise SystemExit(f"fieldtune {' '.join(args)} failed: {out.stderr}")
    return out


class Service:
    def __init__(self, work, data, state):
        self.predictions = work / f"predictions-{time.time_ns()}.jsonl"
        self.socket = work / "control.sock"
        self.proc = subprocess.Popen(
            [str(BIN), "run", "--folder", str(data), "--state", str(state),
             "--socket", str(self.socket), "--fps", "20", "--predictions", str(self.predictions)],
            stdout=subprocess.DEVNULL, stderr=open(work / "service.log", "a"),
            env={**os.environ, "RUST_LOG": "info"})
        self.offset = 0
        self.lines = []

    def read(self):
        """New prediction lines."""
        if not self.predictions.exists():
            return []
        with open(self.predictions) as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        self.offset += len(complete.encode())
        new = [json.loads(l) for l in complete.splitlines() if l.strip()]
        self.lines.extend(new)
        return new

    def wait_lines(self, n, timeout=600):
        deadline = time.time() + timeout
        got = []
        while len(got) < n:
            if time.time() > deadline:
                raise SystemExit("timed out waiting for predictions")
            got.extend(self.read())
            time.sleep(0.02)
        return got

    def ask(self, *args, check=True):
        return fieldtune(*args, "--socket", str(self.socket), check=check)

    def status(self):
        return json.loads(self.ask("status", "--json").stdout)

    def settle(self):
        """Waits until no retrain is running and none came for a few seconds."""
        last, quiet_since = None, time.time()
        while True:
            s = self.status()
            key = (s["retrains"], s["retraining"])
            if key != last:
                last, quiet_since = key, time.time()
            if not s["retraining"] and time.time() - quiet_since > 3:
                return s
            time.sleep(0.2)

    def kill(self, sig):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)


def accuracy(lines, keep=lambda l: True):
    chosen = [l for l in lines if keep(l)]
    right = sum(1 for l in chosen if l["class"] == l["truth"])
    return right / max(1, len(chosen)), len(chosen)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/corn4/test"))
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--window", type=int, default=150)
    args = parser.parse_args()
    data = Path(args.data).resolve()
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    work = Path(tempfile.mkdtemp(prefix="fieldtune-scenario-"))
    state = work / "state"
    result = {"data": str(data), "per_class": args.per_class, "window": args.window}

    service = Service(work, data, state)
    labelled = {}  # origin -> class
    counts = {c: 0 for c in classes}
    while any(v < args.per_class for v in counts.values()):
        for line in service.wait_lines(1):
            truth = line["truth"]
            if counts[truth] < args.per_class and line["origin"] not in labelled:
                out = service.ask("label", truth, "--frame", str(line["seq"]), check=False)
                if out.returncode == 0:
                    counts[truth] += 1
                    labelled[line["origin"]] = truth
    service.settle()
    start = service.wait_lines(1)[-1]["seq"]
    window = [l for l in service.wait_lines(args.window * 2) if l["origin"] not in labelled]
    window = window[: args.window]
    seqs = {l["seq"] for l in window}
    result["before_kill_accuracy"], _ = accuracy(window)
    status_before = service.status()
    result["window_first_seq"] = min(seqs)

    # fieldtune train on exactly the labelled images, judged on the same window.
    train_dir, judge_dir = work / "labelled", work / "window"
    for origin, cls in labelled.items():
        (train_dir / cls).mkdir(parents=True, exist_ok=True)
        (train_dir / cls / Path(origin).name).symlink_to(origin)
    for l in window:
        (judge_dir / l["truth"]).mkdir(parents=True, exist_ok=True)
        target = judge_dir / l["truth"] / Path(l["origin"]).name
        if not target.exists():
            target.symlink_to(l["origin"])
    head = work / "head.fth"
    fieldtune("train", "--data", str(train_dir), "--out", str(head), "--no-cache")
    ev = json.loads(fieldtune("eval", "--data", str(judge_dir), "--head", str(head), "--json",
                              "--no-cache").stdout)
    result["fieldtune_train_accuracy"] = ev.get("accuracy")
    result["fieldtune_train_accepted_accuracy"] = ev.get("accepted_accuracy")

    # SIGKILL, restart: the same frames again.
    service.kill(signal.SIGKILL)
    service = Service(work, data, state)
    status_after = None
    after = []
    while True:
        new = service.wait_lines(1)
        after.extend(l for l in new if l["seq"] in seqs)
        if max(l["seq"] for l in new) > max(seqs):
            break
    status_after = service.status()
    result["after_kill_accuracy"], result["after_kill_frames"] = accuracy(after)
    result["counts_before"] = {c["name"]: c["samples"] for c in status_before["classes"]}
    result["counts_after"] = {c["name"]: c["samples"] for c in status_after["classes"]}

    # Ten labels of one class in a row: the other classes stay predicted by the online head.
    service.settle()
    pressed = classes[0]
    probe = [l for l in service.wait_lines(args.window) if l["origin"] not in labelled]
    before_others, n = accuracy(probe, lambda l: l["truth"] != pressed)
    given = 0
    for line in service.wait_lines(400):
        if given == 10:
            break
        if line["truth"] == pressed and line["origin"] not in labelled:
            if service.ask("label", pressed, "--frame", str(line["seq"]), check=False).returncode == 0:
                labelled[line["origin"]] = pressed
                given += 1
    probe = [l for l in service.wait_lines(args.window) if l["origin"] not in labelled]
    after_others, m = accuracy(probe, lambda l: l["truth"] != pressed)
    result["ten_labels_of_one_class"] = {
        "class": pressed, "other_classes_before": before_others, "frames_before": n,
        "other_classes_after": after_others, "frames_after": m,
        "retraining_meanwhile": service.status()["retraining"]}
    service.kill(signal.SIGTERM)
    result["work_dir"] = str(work)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
