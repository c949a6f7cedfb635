#!/usr/bin/env python3
"""Writes the small seed corpus under fuzz/corpus/ (committed; rerun only to change it)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


# Matrix Market
put("matrix_market", "general.mtx", "%%MatrixMarket matrix coordinate real general\n% c\n3 3 4\n1 1 4.5\n2 1 -1\n3 3 1e-3\n1 3 2\n")
put("matrix_market", "symmetric.mtx", "%%MatrixMarket matrix coordinate real symmetric\n3 3 4\n1 1 4\n2 1 -1\n2 2 4\n3 2 -1\n")
put("matrix_market", "pattern.mtx", "%%MatrixMarket matrix coordinate pattern general\n2 2 2\n1 2\n2 1\n")
put("matrix_market", "integer_crlf.mtx", "%%MatrixMarket matrix coordinate integer symmetric\r\n2 2 2\r\n1 1 7\r\n2 1 -3\r\n")
put("matrix_market", "vector.mtx", "%%MatrixMarket matrix array real general\n3 1\n1.5\n-2\n0.1\n")
put("matrix_market", "column.mtx", "%%MatrixMarket matrix coordinate real general\n4 1 2\n2 1 5\n4 1 -1\n")


# .npy
def npy(descr, shape, data, version=1):
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    prefix = 10 if version == 1 else 12
    total = (prefix + len(d) + 1 + 63) // 64 * 64
    d = d + " " * (total - prefix - len(d) - 1) + "\n"
    head = b"\x93NUMPY" + bytes([version, 0])
    head += struct.pack("<H", len(d)) if version == 1 else struct.pack("<I", len(d))
    return head + d.encode() + data


put("npy", "f8_1d.npy", npy("<f8", [3], struct.pack("<3d", 1.0, -2.0, 0.5)))
put("npy", "f4_3d.npy", npy("<f4", [2, 1, 2], struct.pack("<4f", 1, 2, 3, 4)))
put("npy", "i4.npy", npy("<i4", [2], struct.pack("<2i", -7, 9)))
put("npy", "u1_3d.npy", npy("|u1", [2, 2, 2], bytes([0, 1, 2, 1, 0, 2, 1, 1])))
put("npy", "v2.npy", npy("<f8", [1], struct.pack("<d", 3.0), version=2))


# Reference binaries
def refmat(rows, cols, values, offsets, col_idx, fmt):
    out = struct.pack("<5i", rows, cols, len(values), rows, cols)
    out += struct.pack("<%d%s" % (len(values), fmt), *values)
    out += struct.pack("<%di" % len(offsets), *offsets)
    out += struct.pack("<%di" % len(col_idx), *col_idx)
    return out


put("reference_matrix", "f32.bin", refmat(3, 3, [2, -1, -1, 2, -1, -1, 2], [0, 2, 5], [0, 1, 0, 1, 2, 1, 2], "f"))
put("reference_matrix", "f64.bin", refmat(2, 2, [4.0, -1.0, 3.0], [0, 2], [0, 1, 1], "d"))
put("reference_matrix", "empty_rows.bin", refmat(3, 3, [1.0], [0, 0, 1], [2], "f"))
put("reference_vector", "v.bin", struct.pack("<4d", 3, 1.0, -0.5, 2.25))
put("reference_vector", "empty.bin", struct.pack("<d", 0))
