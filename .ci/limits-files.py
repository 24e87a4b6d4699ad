"""Writes the bad inputs of .ci/limits-trials into DIR (images, odd folders, boards), or with
`mjpeg` streams an MJPEG with a 200 MB frame of entropy-coded data to stdout."""
import os, struct, sys, zlib

def png(path, width, height, rows=None):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    comp = zlib.compressobj(9)
    body = b""
    row = b"\0" + b"\x50" * (3 * width)
    for _ in range(height if rows is None else rows):
        body += comp.compress(row)
    body += comp.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", body) + chunk(b"IEND", b""))

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
jpeg = open(os.path.join(root, "tests/data/reference/china.jpg"), "rb").read()
t = sys.argv[1]
if len(sys.argv) > 2 and sys.argv[2] == "mjpeg":
    out = sys.stdout.buffer
    out.write(jpeg)
    out.write(bytes([0xFF, 0xD8, 0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]))
    block = b"\x22" * (1 << 20)
    for _ in range(200):
        out.write(block)
    out.write(b"\xff\xd9" + jpeg)
    sys.exit(0)
os.makedirs(f"{t}/img", exist_ok=True)
png(f"{t}/img/tall.png", 1, 100000)
png(f"{t}/img/thin.png", 1, 4000)
png(f"{t}/img/wide.png", 8000, 2)
# 20000×20000 whose rows compress to ~1 MB: only the first rows are written, the header says all.
png(f"{t}/img/huge.png", 20000, 20000, rows=400)
with open(f"{t}/img/cut.jpg", "wb") as f:
    f.write(jpeg[: len(jpeg) // 2] + b"\xff\xd9")
progressive = open(os.path.join(root, "tests/data/progressive/leaf-420.jpg"), "rb").read()
with open(f"{t}/img/cut-progressive.jpg", "wb") as f:
    f.write(progressive[: len(progressive) // 2] + b"\xff\xd9")
os.mkfifo(f"{t}/fifo.toml")
odd = f"{t}/odd"
for c in ["Blight", "Healthy"]:
    os.makedirs(f"{odd}/{c}", exist_ok=True)
    src = os.path.join(root, "tests/data/corn4-mini/train", c)
    for name in sorted(os.listdir(src))[:2]:
        with open(os.path.join(src, name), "rb") as a, open(f"{odd}/{c}/{name}", "wb") as b:
            b.write(a.read())
os.mkfifo(f"{odd}/Blight/fifo.jpg")
os.symlink(f"{t}/absent.jpg", f"{odd}/Blight/dangling.jpg")
os.symlink(f"{odd}/Blight/loop-b.jpg", f"{odd}/Blight/loop-a.jpg")
os.symlink(f"{odd}/Blight/loop-a.jpg", f"{odd}/Blight/loop-b.jpg")
os.makedirs(f"{t}/one/Blight", exist_ok=True)
for name in sorted(os.listdir(f"{odd}/Blight"))[:2]:
    if name.endswith(".jpg") and name.startswith("Corn"):
        with open(f"{odd}/Blight/{name}", "rb") as a, open(f"{t}/one/Blight/{name}", "wb") as b:
            b.write(a.read())
desc = open(os.path.join(root, "models/efficientnet_lite0.toml")).read()
desc = desc.replace('file = "efficientnet_lite0_features.onnx"', f'file = "{root}/models/efficientnet_lite0_features.onnx"')
open(f"{t}/badname.toml", "w").write(desc.replace('name = "input"', 'name = "image"'))
open(f"{t}/stdin.toml", "w").write('name = "stdin"\n[source]\nkind = "stdin"\n[control]\nsocket = "none"\n[output]\npredictions = "stdout"\n')
