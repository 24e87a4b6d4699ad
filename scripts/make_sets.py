"""Usage: python make_sets.py OUT_DIR (needs numpy, pillow, scikit-learn, scikit-image).

Builds small image-folder data sets from images bundled with scikit-learn and scikit-image
(no download): digits (10 classes), textures (8 classes, spatially disjoint patches), lfw (face / not face)."""
import os, numpy as np
from PIL import Image
from sklearn.datasets import load_digits
import skimage
rng = np.random.default_rng(0)
import sys
root = sys.argv[1] if len(sys.argv) > 1 else 'sets'
def save(split, name, cls, i, arr):
    d = f'{root}/{name}/{split}/{cls}'; os.makedirs(d, exist_ok=True)
    Image.fromarray(arr).convert('RGB').save(f'{d}/{i:04d}.png')
# digits: 8x8, 0..16 -> 64x64
X, y = load_digits(return_X_y=True)
u = rng.random(len(y))
for i, (x, c) in enumerate(zip(X, y)):
    img = (255 - x.reshape(8, 8) * 255 / 16).astype(np.uint8)
    img = np.array(Image.fromarray(img).resize((64, 64), Image.BILINEAR))
    split = 'train' if u[i] < 0.6 else 'val' if u[i] < 0.8 else 'test'
    save(split, 'digits', f'd{c}', i, img)
# textures: patches from disjoint vertical bands
dd = os.path.join(os.path.dirname(skimage.__file__), 'data')
srcs = ['brick', 'grass', 'gravel', 'moon', 'hubble_deep_field', 'ihc', 'cell', 'retina']
for s in srcs:
    f = [p for p in os.listdir(dd) if p.startswith(s + '.')][0]
    img = np.array(Image.open(os.path.join(dd, f)).convert('RGB'))
    h, w = img.shape[:2]
    bands = {'train': (0, 0.6, 60), 'val': (0.6, 0.8, 20), 'test': (0.8, 1.0, 20)}
    for split, (a, b, n) in bands.items():
        x0, x1 = int(a * w), int(b * w)
        for i in range(n):
            size = int(rng.integers(48, min(128, x1 - x0, h)))
            x = int(rng.integers(x0, x1 - size + 1)); yy = int(rng.integers(0, h - size + 1))
            save(split, 'textures', s, i, img[yy:yy + size, x:x + size])
# lfw subset: 100 faces then 100 non-faces, 25x25 floats
lfw = np.load(os.path.join(dd, 'lfw_subset.npy'))
u = rng.random(len(lfw))
for i, a in enumerate(lfw):
    img = (a * 255).clip(0, 255).astype(np.uint8)
    img = np.array(Image.fromarray(img).resize((100, 100), Image.BILINEAR))
    split = 'train' if u[i] < 0.6 else 'val' if u[i] < 0.8 else 'test'
    save(split, 'lfw', 'face' if i < 100 else 'other', i, img)
