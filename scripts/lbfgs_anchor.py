"""The LBFGS anchor of issue 16: scikit-learn's LogisticRegression (lbfgs) on the very features
fieldtune computed, exported with `fieldtune embed DIR --export OUT`.

Usage: python lbfgs_anchor.py FEATS_DIR [FEATS_DIR ...]
Each FEATS_DIR holds train/, val/, test/ as written by `--export`. Features are standardised on
the training rows; C is chosen on val from a small grid, then the model is refitted on train+val
(as `fieldtune train --val` does) and scored on test. Prints one line per data set.
"""
import sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def load(d):
    classes = open(f"{d}/classes.txt").read().split("\n")
    classes = [c for c in classes if c]
    labels = np.array([int(v) for v in open(f"{d}/labels.txt").read().split()])
    x = np.fromfile(f"{d}/features.f32", dtype="<f4").reshape(len(labels), -1)
    return x, labels, classes


for root in sys.argv[1:]:
    (xt, yt, ct), (xv, yv, cv), (xs, ys, cs) = (load(f"{root}/{s}") for s in ("train", "val", "test"))
    assert ct == cv == cs, "class lists differ"
    sc = StandardScaler().fit(xt)
    best = None
    for c in (0.001, 0.01, 0.1, 1.0):
        m = LogisticRegression(C=c, max_iter=3000).fit(sc.transform(xt), yt)
        acc = m.score(sc.transform(xv), yv)
        if best is None or acc > best[0]:
            best = (acc, c)
    xa, ya = np.vstack([xt, xv]), np.concatenate([yt, yv])
    sc = StandardScaler().fit(xa)
    m = LogisticRegression(C=best[1], max_iter=3000).fit(sc.transform(xa), ya)
    d = LogisticRegression(C=1.0, max_iter=3000).fit(sc.transform(xa), ya)
    print(f"{root}: lbfgs test {100 * m.score(sc.transform(xs), ys):.2f} % (C={best[1]} by val {100 * best[0]:.2f} %), "
          f"C=1 {100 * d.score(sc.transform(xs), ys):.2f} %, {len(ct)} classes, {len(yt)}/{len(yv)}/{len(ys)}")
