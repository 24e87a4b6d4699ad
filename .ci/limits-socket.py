"""Abuses a running service's control socket (path, pid) as issue 11 did and prints what
happened: oversized lines, 1000 idle clients, non-UTF-8, 1 MiB names, 1000 new classes, escapes.
Only Unix sockets on this machine; stops by itself."""
import json, resource, socket, sys, threading, time

path, pid = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))

def proc(key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            return int(line.split()[1])
def fds():
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s
def reply(s, timeout=30):
    s.settimeout(timeout)
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return json.loads(data) if data.strip() else None
def ask(obj):
    s = connect()
    s.sendall((json.dumps(obj) + "\n").encode())
    r = reply(s)
    s.close()
    return r

for _ in range(600):
    try:
        if ask({"cmd": "status"})["ok"] and ask({"cmd": "status"})["data"]["frames"] > 0:
            break
    except OSError:
        pass
    time.sleep(0.2)
base_fds, base_rss, base_threads = fds(), proc("VmRSS:"), proc("Threads:")
print(f"== baseline: {base_fds} fds, {base_threads} threads, {base_rss} KiB resident, peak {proc('VmHWM:')} KiB")

# Three 100 MB request lines without a newline, at once.
replies = []
def big():
    s = connect()
    def send():
        try:
            for _ in range(100):
                s.sendall(b"x" * (1 << 20))
        except OSError:
            pass
    t = threading.Thread(target=send); t.start()
    replies.append(reply(s)); t.join(); s.close()
ts = [threading.Thread(target=big) for _ in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"== 3 × 100 MB request lines: {[r and r.get('error', '')[:60] for r in replies]}; resident {proc('VmRSS:')} KiB")

# Non-UTF-8, then a request on the same connection.
s = connect(); s.sendall(b"\xff\xfe\x80{}\n"); r1 = reply(s)
s.sendall(b'{"cmd":"status"}\n'); r2 = reply(s); s.close()
print(f"== non-UTF-8 line: {r1['error'][:60]!r}; next request on the same connection ok={r2['ok']}")

# 1000 idle clients.
frames0 = ask({"cmd": "status"})["data"]["frames"]; t0 = time.time()
idle, refused = [], 0
for _ in range(1000):
    s = connect(); idle.append(s)
time.sleep(1)
for s in idle:
    s.setblocking(False)
    try:
        if s.recv(4096).find(b"too many connections") >= 0:
            refused += 1
    except BlockingIOError:
        pass
peak_fds, threads = fds(), proc("Threads:")
time.sleep(4)
for s in idle:
    s.close()
time.sleep(0.5)
r = ask({"cmd": "status"}); frames1 = r["data"]["frames"]; dt = time.time() - t0
print(f"== 1000 idle clients: {refused} refused at once, service at {peak_fds} fds and {threads} threads while they were open; "
      f"{frames1 - frames0} frames in those {dt:.1f} s ({(frames1 - frames0) / dt:.1f} fps); status after: ok={r['ok']}")

# 50 labels with 1 MiB class names.
errs = set()
for _ in range(50):
    s = connect()
    try:
        s.sendall((json.dumps({"cmd": "label", "class": "x" * (1 << 20)}) + "\n").encode())
    except OSError:
        pass
    r = reply(s); s.close()
    errs.add(r and r.get("error", "")[:50])
print(f"== 50 labels with 1 MiB names: {errs}; resident {proc('VmRSS:')} KiB")

# Names with escapes, NUL, bidi override, zero-width space.
for name in ["\x1b]0;pwned\x07", "a\x00b", "evil\u202egpj", "zero\u200bwidth"]:
    r = ask({"cmd": "label", "class": name})
    print(f"== label {name!r}: ok={r['ok']} {r.get('error', '')[:110]!r}")

# 1000 new classes.
made, refusal, t0 = 0, None, time.time()
for i in range(1000):
    r = ask({"cmd": "label", "class": f"class {i}"})
    if r["ok"]:
        made += 1
    else:
        refusal = r["error"]
print(f"== 1000 new classes: {made} created, the rest refused ({refusal[:140]!r}); {time.time() - t0:.1f} s for all 1000 requests")

time.sleep(2)
print(f"== after: {fds()} fds (baseline {base_fds}), {proc('Threads:')} threads, resident {proc('VmRSS:')} KiB, peak {proc('VmHWM:')} KiB")
