#!/usr/bin/python3
"""A dcdm system folder (dcdm export) as the plain peer programs read it: coef7.bin, 7 doubles a
cell (centre, -x, +x, -y, +y, -z, +z; x fastest), non-fluid cells as identity rows, and b64.bin,
the right-hand side in double with zeros on those rows. Usage: to_coef7.py FOLDER N (an N^3 grid)."""
import sys

import numpy as np
import scipy.io

d, n = sys.argv[1], int(sys.argv[2])
A = scipy.io.mmread(d + '/A.mtx').tocsr()
b = np.load(d + '/b.npy').astype(np.float64).ravel()
N = A.shape[0]
coef = np.zeros((N, 7))
coef[:, 0] = A.diagonal()
for s, o in enumerate([-1, 1, -n, n, -n * n, n * n]):
    dg = A.diagonal(o)  # A[i, i + o]
    if o > 0:
        coef[:N - o, s + 1] = dg
    else:
        coef[-o:, s + 1] = dg
inactive = coef[:, 0] <= 0
coef[inactive, 0] = 1.0
coef[inactive, 1:] = 0
b = b.copy()
b[inactive] = 0
coef.tofile(d + '/coef7.bin')
b.tofile(d + '/b64.bin')
print(f"{N} cells, {inactive.sum()} identity rows, ||b|| = {np.linalg.norm(b)}")
