#!/usr/bin/python3
"""Hostile input against every dcdm subcommand.

Makes good files first (a 16^3 system, an 8^3 dataset, a one-epoch training checkpoint, a
simulation checkpoint), then hostile ones beside them in a temporary folder: files truncated
at several offsets, headers that lie about their sizes, NaN values, FIFOs where files are
read, an --out below a regular file, absurd option values, unknown methods and method
settings, and checkpoints, shards and models with one byte changed. Each case runs the built
`dcdm` with a time limit and an address-space limit and must

  * exit with status 2 (not 0, not 1 = internal error, not a signal, not the time limit),
  * name the culprit (the file or the option) in its output.

A few control cases run good input under the same limits and must exit 0, so that a failure
is not the limits' doing.

    scripts/hostile-suite.py [--dcdm build/dcdm] [--jobs 2] [--keep] [--verbose]

Prints one line per failing case and a summary "hostile-suite: N cases, H held, F failed";
exit status 0 when every case held.
"""
import argparse
import concurrent.futures
import math
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

TIME_LIMIT_S = 20
MEMORY_LIMIT_BYTES = 6 << 30  # address space (ulimit -v); LibTorch maps about 1.5 GiB at start


def limit_child():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    os.setsid()  # a process group of its own, so that the time limit also ends gnuplot/ffmpeg


def run(dcdm, args, cwd):
    """(exit status or 'signal N' or 'timeout', seconds, combined output)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    p = subprocess.Popen([dcdm] + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, preexec_fn=limit_child)
    try:
        out, _ = p.communicate(timeout=TIME_LIMIT_S)
        rc = p.returncode if p.returncode >= 0 else f"signal {-p.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        rc = "timeout"
    return rc, time.monotonic() - t0, out.decode("utf-8", "replace")


def must(dcdm, args, cwd):
    rc, _, out = run(dcdm, args, cwd)
    if rc != 0:
        sys.exit(f"hostile-suite: set-up failed: dcdm {' '.join(args)} -> {rc}\n{out}")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def npy(descr, shape, payload):
    """A .npy v1.0 file whose header says `descr` and `shape` (true or not) over `payload`."""
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def flipped(data, at):
    b = bytearray(data)
    b[at] ^= 0x20
    return bytes(b)


class Suite:
    def __init__(self, dcdm, root):
        self.dcdm = dcdm
        self.root = root
        self.cases = []  # (name, args, expected rc, culprit substring)

    def p(self, *parts):
        return os.path.join(self.root, *parts)

    def bad(self, name, args, culprit):
        self.cases.append((name, args, 2, culprit))

    def good(self, name, args):
        self.cases.append((name, args, 0, ""))

    # ---------------------------------------------------------------- fixtures
    def make_fixtures(self):
        d, p = self.dcdm, self.p
        must(d, ["export", "--scene", "box", "--n", "16", "--out", p("sys")], self.root)
        must(d, ["dataset", "--scene", "box", "--n", "8", "--ritz", "20", "--samples", "8", "--shard-size", "4",
                 "--quiet", "--out", p("ds")], self.root)
        must(d, ["train", "--data", p("ds"), "--out", p("m.dcdm"), "--epochs", "1", "--batch", "2", "--no-plot",
                 "--progress", "lines"], self.root)
        must(d, ["train", "--arch", "flagnet", "--data", p("ds"), "--out", p("f.dcdm"), "--steps", "2",
                 "--validate-every", "1"], self.root)
        must(d, ["simulate", "--n", "8", "--frames", "2", "--export-every", "2", "--quiet", "--no-png",
                 "--out", p("run")], self.root)
        write(p("a_file"), b"x")
        os.mkfifo(p("fifo.npy"))
        os.mkfifo(p("fifo.mtx"))
        os.mkfifo(p("fifo.dcdm"))

    # ---------------------------------------------------------------- cases
    def truncations(self):
        p = self.p
        mtx = p("sys", "A.mtx")
        b_npy, a_bin, b_bin = read(p("sys", "b.npy")), read(p("sys", "A.bin")), read(p("sys", "b.bin"))
        header_end = 10 + struct.unpack("<H", b_npy[8:10])[0]
        for cut in (0, 6, 9, 40, header_end, header_end + 100, len(b_npy) - 1):
            f = p(f"b_cut{cut}.npy")
            write(f, b_npy[:cut])
            self.bad(f"solve: b.npy cut at byte {cut}", ["solve", "--matrix", mtx, "--rhs", f], f)
        for cut in (0, 3, 5, 4097, len(a_bin) // 2, len(a_bin) - 3):
            f = p(f"A_cut{cut}.bin")
            write(f, a_bin[:cut])
            self.bad(f"solve: A.bin cut at byte {cut}", ["solve", "--matrix", f], f)
        for cut in (0, 5, len(b_bin) // 2, len(b_bin) - 1):
            f = p(f"b_cut{cut}.bin")
            write(f, b_bin[:cut])
            self.bad(f"solve: b.bin cut at byte {cut}", ["solve", "--matrix", mtx, "--rhs", f], f)
        text = read(mtx)
        lines = text.split(b"\n")
        size_line = next(i for i, l in enumerate(lines) if l and not l.startswith(b"%"))
        size_at = sum(len(l) + 1 for l in lines[:size_line])
        middle = sum(len(l) + 1 for l in lines[:len(lines) // 2])
        for name, cut in (("in the banner", 10), ("in the size line", size_at + 3),
                          ("at a line start", middle), ("in an entry", middle + 4)):
            f = p(f"A_cut{cut}.mtx")
            write(f, text[:cut])
            self.bad(f"solve: A.mtx cut {name}", ["solve", "--matrix", f], f)
            self.bad(f"import: A.mtx cut {name}", ["import", f, "--out", p(f"imp{cut}")], f)
        f = p("b_cut_info.npy")
        write(f, b_npy[:header_end + 7])
        self.bad("info: truncated b.npy", ["info", f], f)
        # A system folder whose b.npy is short.
        shutil.copytree(p("sys"), p("sys_cut"))
        write(p("sys_cut", "b.npy"), b_npy[:len(b_npy) // 2])
        self.bad("solve --system: folder with a short b.npy", ["solve", "--system", p("sys_cut")],
                 p("sys_cut", "b.npy"))
        self.bad("bench --systems: folder with a short b.npy",
                 ["bench", "--systems", p("sys_cut"), "--methods", "cg", "--no-plots", "--out", p("bench_cut")],
                 p("sys_cut"))
        self.bad("eval --systems: folder with a short b.npy",
                 ["eval", "--systems", p("sys_cut"), "--methods", "cg,ic0"], p("sys_cut"))
        self.bad("dataset --system: folder with a short b.npy",
                 ["dataset", "--system", p("sys_cut"), "--ritz", "10", "--samples", "2", "--out", p("ds_cut")],
                 p("sys_cut"))

    def lying_headers(self):
        p = self.p
        mtx = p("sys", "A.mtx")
        small = struct.pack("<4096d", *([1.0] * 4096))
        for name, data in (("shape 10^12", npy("<f8", (10 ** 12,), small)),
                           ("shape (2^62, 4)", npy("<f8", (2 ** 62, 4), small)),
                           ("negative shape", npy("<f8", (-4096,), small)),
                           ("4096 float32 over 4096 doubles' bytes", npy("<f4", (4096,), small[:100])),
                           ("dtype complex", npy("<c16", (4096,), small * 2)),
                           ("header length past the end", b"\x93NUMPY\x01\x00\xff\xff{'descr'")):
            f = p("lie_" + "".join(c if c.isalnum() else "_" for c in name) + ".npy")
            write(f, data)
            self.bad(f"solve: .npy {name}", ["solve", "--matrix", mtx, "--rhs", f], f)
        self.bad("info: .npy shape 10^12", ["info", p("lie_shape_10_12.npy")], p("lie_shape_10_12.npy"))
        text = read(mtx).decode()
        lines = text.split("\n")
        i = next(k for k, l in enumerate(lines) if l and not l.startswith("%"))
        rows, cols, nnz = lines[i].split()
        for name, size_line in (("nnz 10^12", f"{rows} {cols} 1000000000000"),
                                ("10^9 rows", f"1000000000 1000000000 {nnz}"),
                                ("10^10 rows", f"10000000000 10000000000 {nnz}"),
                                ("more entries than rows*cols", f"2 2 {nnz}"),
                                ("negative size", f"-{rows} {cols} {nnz}")):
            f = p("lie_" + "".join(c if c.isalnum() else "_" for c in name) + ".mtx")
            write(f, "\n".join(lines[:i] + [size_line] + lines[i + 1:]).encode())
            self.bad(f"solve: .mtx {name}", ["solve", "--matrix", f], f)
        entry = lines[i + 1].split()
        f = p("lie_index.mtx")
        write(f, "\n".join(lines[:i + 1] + [f"{int(rows) + 5} {entry[1]} {entry[2]}"] + lines[i + 2:]).encode())
        self.bad("solve: .mtx entry outside the matrix", ["solve", "--matrix", f], f)
        a_bin = read(p("sys", "A.bin"))
        f = p("lie_huge.bin")
        write(f, struct.pack("<i", 2 ** 31 - 1) + a_bin[4:])
        self.bad("solve: A.bin claiming 2^31-1 rows", ["solve", "--matrix", f], f)
        # A system folder whose system.json lies about the grid.
        shutil.copytree(p("sys"), p("sys_lie"))
        meta = read(p("sys", "system.json")).decode().replace("16", "17", 3)
        write(p("sys_lie", "system.json"), meta.encode())
        self.bad("solve --system: system.json with another grid", ["solve", "--system", p("sys_lie")], p("sys_lie"))

    def non_finite(self):
        p = self.p
        mtx = p("sys", "A.mtx")
        b = bytearray(read(p("sys", "b.npy")))
        header_end = 10 + struct.unpack("<H", b[8:10])[0]
        for name, value in (("NaN", math.nan), ("inf", math.inf)):
            f = p(f"b_{name}.npy")
            bb = bytearray(b)
            bb[header_end + 8 * 100:header_end + 8 * 101] = struct.pack("<d", value)
            write(f, bytes(bb))
            self.bad(f"solve: {name} in b.npy", ["solve", "--matrix", mtx, "--rhs", f], f)
            self.bad(f"solve --x0: {name} in the initial guess",
                     ["solve", "--matrix", mtx, "--x0", f], f)
        lines = read(mtx).decode().split("\n")
        i = next(k for k, l in enumerate(lines) if l and not l.startswith("%"))
        e = lines[i + 1].split()
        f = p("A_nan.mtx")
        write(f, "\n".join(lines[:i + 1] + [f"{e[0]} {e[1]} nan"] + lines[i + 2:]).encode())
        self.bad("solve: NaN in A.mtx", ["solve", "--matrix", f], f)
        self.bad("import: NaN in A.mtx", ["import", f, "--out", p("imp_nan")], f)
        # A dataset whose shard holds a NaN (and a manifest checksum to match: written by a
        # faulty run, not damaged since).
        shutil.copytree(p("ds"), p("ds_nan"))
        shard = p("ds_nan", "shard-00001.npy")
        s = bytearray(read(shard))
        h = 10 + struct.unpack("<H", s[8:10])[0]
        s[h + 4 * 600:h + 4 * 601] = struct.pack("<f", math.nan)  # sample 5 (512 values a sample)
        write(shard, bytes(s))
        import json
        import zlib
        m = json.loads(read(p("ds_nan", "manifest.json")))
        for entry in m["shards"]:
            if entry["file"] == "shard-00001.npy":
                entry["crc32"] = "%08x" % zlib.crc32(bytes(s))
        write(p("ds_nan", "manifest.json"), json.dumps(m, indent=2).encode())
        self.bad("train: NaN in a shard", ["train", "--data", p("ds_nan"), "--out", p("t_nan.dcdm"), "--epochs", "1",
                                          "--no-plot"], shard)
        # A density volume with a NaN for render.
        dens = p("run", "frame_0002", "density.npy")
        dd = bytearray(read(dens))
        h = 10 + struct.unpack("<H", dd[8:10])[0]
        dd[h + 40:h + 44] = struct.pack("<f", math.nan)
        write(p("density_nan.npy"), bytes(dd))
        self.bad("render: NaN in a density .npy", ["render", p("density_nan.npy"), "--size", "32", "--out",
                                                   p("r_nan.png")], p("density_nan.npy"))

    def fifos(self):
        p = self.p
        mtx = p("sys", "A.mtx")
        fifo_npy, fifo_mtx, fifo_model = p("fifo.npy"), p("fifo.mtx"), p("fifo.dcdm")
        self.bad("solve: FIFO as --rhs", ["solve", "--matrix", mtx, "--rhs", fifo_npy], fifo_npy)
        self.bad("solve: FIFO as --matrix", ["solve", "--matrix", fifo_mtx], fifo_mtx)
        self.bad("solve: FIFO as --model", ["solve", "--scene", "box", "--n", "16", "--method", "dcdm-relax",
                                           "--model", fifo_model], fifo_model)
        self.bad("info: FIFO", ["info", fifo_npy], fifo_npy)
        self.bad("import: FIFO", ["import", fifo_mtx, "--out", p("imp_fifo")], fifo_mtx)
        self.bad("model info: FIFO", ["model", "info", fifo_model], fifo_model)
        self.bad("render: FIFO", ["render", fifo_npy, "--out", p("r_fifo.png")], fifo_npy)
        self.bad("export: FIFO as --rhs", ["export", "--scene", "box", "--n", "16", "--rhs", fifo_npy, "--out",
                                          p("exp_fifo")], fifo_npy)
        shutil.copytree(p("ds"), p("ds_fifo"))
        os.remove(p("ds_fifo", "manifest.json"))
        os.mkfifo(p("ds_fifo", "manifest.json"))
        self.bad("train: FIFO as manifest.json", ["train", "--data", p("ds_fifo"), "--out", p("t_fifo.dcdm"),
                                                 "--no-plot"], p("ds_fifo", "manifest.json"))
        shutil.copytree(p("run"), p("run_fifo"))
        os.remove(p("run_fifo", "checkpoint.bin"))
        os.mkfifo(p("run_fifo", "checkpoint.bin"))
        self.bad("simulate --resume: FIFO as checkpoint.bin",
                 ["simulate", "--n", "8", "--frames", "4", "--export-every", "2", "--quiet", "--no-png", "--resume",
                  "--out", p("run_fifo")], p("run_fifo", "checkpoint.bin"))

    def unwritable_outputs(self):
        p = self.p
        blocked = p("a_file", "sub")
        self.bad("export: --out below a file", ["export", "--scene", "box", "--n", "16", "--out", blocked], blocked)
        self.bad("simulate: --out below a file", ["simulate", "--n", "8", "--frames", "1", "--out", blocked], blocked)
        self.bad("dataset: --out below a file", ["dataset", "--scene", "box", "--n", "8", "--ritz", "10",
                                                "--samples", "2", "--out", blocked], blocked)
        self.bad("train: --out below a file", ["train", "--data", p("ds"), "--epochs", "1", "--no-plot", "--out",
                                              os.path.join(blocked, "m.dcdm")], blocked)
        self.bad("bench: --out below a file", ["bench", "--scenes", "box", "--n", "8", "--methods", "cg",
                                              "--no-plots", "--out", blocked], blocked)
        self.bad("import: --out below a file", ["import", p("sys", "A.mtx"), "--out", blocked], blocked)
        self.bad("solve: --json below a file", ["solve", "--system", p("sys"), "--json",
                                               os.path.join(blocked, "r.json")], blocked)
        self.bad("solve: --x-out below a file", ["solve", "--system", p("sys"), "--x-out",
                                                os.path.join(blocked, "x.npy")], blocked)
        self.bad("render: --out below a file", ["render", p("run", "frame_0002"), "--size", "32", "--out",
                                               os.path.join(blocked, "r.png")], blocked)
        self.bad("model init: --out below a file", ["model", "init", "--out", os.path.join(blocked, "m.dcdm")],
                 blocked)

    def absurd_options(self):
        p = self.p
        out = ["--out", p("absurd_out")]
        for args, culprit in (
                (["solve", "--scene", "box", "--n", "0"], "--n"),
                (["solve", "--scene", "box", "--n", "100000"], "--n"),
                (["solve", "--scene", "box", "--dims", "0,16,16"], "--dims"),
                (["solve", "--scene", "box", "--dims", "99999,99999,99999"], "--dims"),
                (["solve", "--scene", "box", "--dims", "16,16"], "--dims"),
                (["solve", "--scene", "box", "--n", "16", "--rtol", "-1"], "--rtol"),
                (["solve", "--scene", "box", "--n", "16", "--max-iterations", "-1"], "--max-iterations"),
                (["solve", "--scene", "box", "--n", "16", "--rtol", "nan"], "--rtol"),
                (["solve", "--scene", "box", "--n", "16", "--dcdm-k", "1000"], "--dcdm-k"),
                (["solve", "--scene", "box", "--n", "16", "--method", "dpcg", "--dpcg-k", "100000"], "--dpcg-k"),
                (["solve", "--scene", "box", "--n", "64", "--method", "dpcg", "--dpcg-k", "300"], "--dpcg-k"),
                (["solve", "--scene", "nosuch", "--n", "16"], "nosuch"),
                (["solve", "--scene", "box", "--n", "16", "--param", "nosuch=1"], "nosuch"),
                (["export", "--scene", "box", "--n", "3"] + out, "--n"),
                (["simulate", "--n", "16", "--frames", "0"] + out, "--frames"),
                (["simulate", "--n", "2000", "--frames", "1"] + out, "--n"),
                (["simulate", "--n", "16", "--rtol", "0"] + out, "--rtol"),
                (["dataset", "--scene", "box", "--n", "8", "--ritz", "0", "--samples", "2"] + out, "--ritz"),
                (["dataset", "--scene", "box", "--n", "8", "--ritz", "100000", "--samples", "2"] + out, "--ritz"),
                (["dataset", "--scene", "box", "--n", "8", "--ritz", "10", "--samples", "0"] + out, "--samples"),
                (["dataset", "--scene", "box", "--n", "8", "--ritz", "10", "--samples", "2", "--theta", "999"] + out,
                 "--theta"),
                (["train", "--data", p("ds"), "--batch", "0", "--out", p("t.dcdm")], "--batch"),
                (["train", "--data", p("ds"), "--epochs", "0", "--out", p("t.dcdm")], "--epochs"),
                (["train", "--data", p("ds"), "--lr", "-1", "--out", p("t.dcdm")], "--lr"),
                (["train", "--data", p("ds"), "--val-fraction", "1.5", "--out", p("t.dcdm")], "--val-fraction"),
                (["bench", "--scenes", "box", "--n", "8", "--repeat", "0"] + out, "--repeat"),
                (["bench", "--scenes", "box", "--n", "0"] + out, "--n"),
                (["render", p("run", "frame_0002"), "--size", "0", "--out", p("r0.png")], "--size"),
                (["render", p("run", "frame_0002"), "--size", "100000x100000", "--out", p("r1.png")], "--size"),
                (["eval", "--scenes", "box", "--n", "0", "--methods", "cg,ic0"], "--n"),
                (["demo", "--n", "2"] + out, "--n"),
                (["model", "init", "--arch", "nosuch", "--out", p("mi.dcdm")], "nosuch")):
            self.bad(f"{args[0]}: {culprit} {' '.join(a for a in args[1:] if not a.startswith(self.root))}",
                     args, culprit)

    def unknown_methods(self):
        p = self.p
        scene = ["solve", "--scene", "box", "--n", "16"]
        for method in ("nosuch", "cg:foo=1", "mgpcg:omega=abc", "mgpcg:nosuch=1", "mgpcg:sweeps=-1",
                       "dpcg:k=3", "dcdm-relax:" + p("a_file")):
            culprit = p("a_file") if method.startswith("dcdm-relax") else method.split(":")[-1].split("=")[0]
            self.bad(f"solve --method {method.replace(self.root, '.')}", scene + ["--method", method], culprit)
        self.bad("solve: --model without a model method", scene + ["--model", "relaxnet"], "--model")
        self.bad("bench --methods with an unknown one", ["bench", "--scenes", "box", "--n", "8", "--methods",
                                                         "cg,nosuch", "--no-plots", "--out", p("b_m")], "nosuch")
        self.bad("simulate --solver with a bad setting", ["simulate", "--n", "8", "--frames", "1", "--solver",
                                                          "mgpcg:omega=x", "--out", p("s_m")], "omega")
        self.bad("eval --methods unknown", ["eval", "--scenes", "box", "--n", "8", "--methods", "cg,nosuch"],
                 "nosuch")
        self.bad("train --arch unknown", ["train", "--data", p("ds"), "--arch", "nosuch", "--out", p("t_a.dcdm")],
                 "nosuch")

    def damaged_state(self):
        p = self.p
        # Simulation checkpoint: a changed byte, a truncation, a different run in the folder.
        for name, edit in (("one byte changed", lambda b: flipped(b, len(b) - 700)),
                           ("cut in half", lambda b: b[:len(b) // 2]),
                           ("cut to 10 bytes", lambda b: b[:10])):
            folder = p("run_" + name.replace(" ", "_"))
            shutil.copytree(p("run"), folder)
            ckpt = os.path.join(folder, "checkpoint.bin")
            write(ckpt, edit(read(ckpt)))
            self.bad(f"simulate --resume: checkpoint.bin {name}",
                     ["simulate", "--n", "8", "--frames", "4", "--export-every", "2", "--quiet", "--no-png",
                      "--resume", "--out", folder], ckpt)
        self.bad("simulate --resume: a folder of another run (seed)",
                 ["simulate", "--n", "8", "--frames", "4", "--export-every", "2", "--quiet", "--no-png", "--resume",
                  "--seed", "9", "--out", p("run")], "seed")
        # Training checkpoint.
        good = read(p("m.dcdm.ckpt"))
        for name, data in (("one byte changed", flipped(good, len(good) // 2)),
                           ("without its checksum trailer", good[:-12]),
                           ("cut in half", good[:len(good) // 2])):
            ckpt = p("ckpt_" + name.replace(" ", "_"))
            write(ckpt, data)
            self.bad(f"train --resume: checkpoint {name}",
                     ["train", "--data", p("ds"), "--out", p("m.dcdm"), "--checkpoint", ckpt, "--epochs", "2",
                      "--batch", "2", "--no-plot", "--resume"], ckpt)
        good = read(p("f.dcdm.ckpt"))
        for name, data in (("one byte changed", flipped(good, len(good) // 2)),
                           ("without its checksum trailer", good[:-12])):
            ckpt = p("fckpt_" + name.replace(" ", "_"))
            write(ckpt, data)
            self.bad(f"train --arch flagnet --resume: checkpoint {name}",
                     ["train", "--arch", "flagnet", "--data", p("ds"), "--out", p("f.dcdm"), "--checkpoint", ckpt,
                      "--steps", "4", "--validate-every", "1", "--resume"], ckpt)
        self.bad("train --arch flagnet --resume: a checkpoint of another run (batch)",
                 ["train", "--arch", "flagnet", "--data", p("ds"), "--out", p("f.dcdm"), "--steps", "4",
                  "--validate-every", "1", "--batch", "3", "--resume"], "batch")
        self.bad("train --resume: a checkpoint of another run (lr)",
                 ["train", "--data", p("ds"), "--out", p("m.dcdm"), "--epochs", "2", "--batch", "2", "--lr", "0.01",
                  "--no-plot", "--resume"], "lr")
        # Dataset: a changed byte in a shard (read by train, resumed by dataset), a garbage manifest.
        shutil.copytree(p("ds"), p("ds_flip"))
        shard = p("ds_flip", "shard-00000.npy")
        write(shard, flipped(read(shard), 300))
        self.bad("train: a shard with one byte changed", ["train", "--data", p("ds_flip"), "--out", p("t_f.dcdm"),
                                                         "--epochs", "1", "--no-plot"], shard)
        os.remove(p("ds_flip", "shard-00001.npy"))  # so that the resume has work to do
        self.bad("dataset (resume): a shard with one byte changed",
                 ["dataset", "--scene", "box", "--n", "8", "--ritz", "20", "--samples", "8", "--shard-size", "4",
                  "--quiet", "--out", p("ds_flip")], shard)
        self.bad("dataset (resume): a folder of another recipe (seed)",
                 ["dataset", "--scene", "box", "--n", "8", "--ritz", "20", "--samples", "8", "--shard-size", "4",
                  "--seed", "7", "--quiet", "--out", p("ds")], "seed")
        shutil.copytree(p("ds"), p("ds_garbage"))
        write(p("ds_garbage", "manifest.json"), b'{"format": "dcdm-ritz-dataset", "version": ')
        self.bad("train: a garbage manifest.json", ["train", "--data", p("ds_garbage"), "--out", p("t_g.dcdm"),
                                                   "--no-plot"], p("ds_garbage", "manifest.json"))
        import json
        m = json.loads(read(p("ds", "manifest.json")))
        for name, edit in (("version as text", lambda j: j.update(version="two")),
                           ("checksum as a number", lambda j: j["shards"][0].update(crc32=5)),
                           ("shards as an object", lambda j: j.update(shards={"a": 1}))):
            folder = p("ds_" + name.replace(" ", "_"))
            shutil.copytree(p("ds"), folder)
            j = json.loads(json.dumps(m))
            edit(j)
            write(os.path.join(folder, "manifest.json"), json.dumps(j).encode())
            self.bad(f"train: manifest.json with {name}",
                     ["train", "--data", folder, "--out", p("t_" + name.replace(" ", "_") + ".dcdm"), "--no-plot"],
                     os.path.join(folder, "manifest.json"))
            os.remove(os.path.join(folder, "shard-00001.npy"))
            self.bad(f"dataset (resume): manifest.json with {name}",
                     ["dataset", "--scene", "box", "--n", "8", "--ritz", "20", "--samples", "8", "--shard-size", "4",
                      "--quiet", "--out", folder], os.path.join(folder, "manifest.json"))
        # A --system folder that changed under its dataset: same recipe, other cells.
        must(self.dcdm, ["export", "--scene", "box", "--n", "8", "--out", p("sys8")], self.root)
        must(self.dcdm, ["dataset", "--system", p("sys8"), "--ritz", "20", "--samples", "8", "--shard-size", "4",
                         "--quiet", "--out", p("ds_sys8")], self.root)
        shutil.rmtree(p("sys8"))
        must(self.dcdm, ["export", "--scene", "sphere", "--n", "8", "--out", p("sys8")], self.root)
        os.remove(p("ds_sys8", "shard-00001.npy"))
        self.bad("dataset (resume): the --system folder now holds another domain",
                 ["dataset", "--system", p("sys8"), "--ritz", "20", "--samples", "8", "--shard-size", "4", "--quiet",
                  "--out", p("ds_sys8")], "cells.npy")
        shutil.copytree(p("run"), p("run_badjson"))
        write(p("run_badjson", "run.json"), b"[1, 2")
        self.bad("simulate --resume: a garbage run.json",
                 ["simulate", "--n", "8", "--frames", "4", "--export-every", "2", "--quiet", "--no-png", "--resume",
                  "--out", p("run_badjson")], p("run_badjson", "run.json"))
        # Model files: a changed byte (the archive's CRC-32), a truncation, not a model at all.
        model = read(p("m.dcdm"))
        for name, data in (("one byte changed", flipped(model, len(model) // 2)),
                           ("cut in half", model[:len(model) // 2]),
                           ("text", b"not a model\n")):
            f = p("model_" + name.replace(" ", "_") + ".dcdm")
            write(f, data)
            self.bad(f"model info: model file {name}", ["model", "info", f], f)
            self.bad(f"solve --model: model file {name}",
                     ["solve", "--scene", "box", "--n", "16", "--method", "dcdm", "--model", f], f)
        self.bad("render: a frame folder without density.npy", ["render", p("sys"), "--out", p("r_s.png")],
                 p("sys"))

    def controls(self):
        p = self.p
        self.good("control: solve a good system", ["solve", "--system", p("sys"), "--quiet"])
        self.good("control: solve with dpcg --dpcg-k 40 at 16^3", ["solve", "--system", p("sys"), "--method", "dpcg",
                                                                  "--dpcg-k", "40", "--quiet"])
        self.good("control: resume the simulation", ["simulate", "--n", "8", "--frames", "3", "--export-every", "2",
                                                     "--quiet", "--no-png", "--resume", "--out", p("run_ok")])
        self.good("control: resume the training", ["train", "--data", p("ds"), "--out", p("m_ok.dcdm"),
                                                   "--checkpoint", p("m_ok.dcdm.ckpt"), "--epochs", "2", "--batch",
                                                   "2", "--no-plot", "--resume", "--progress", "lines"])
        self.good("control: model info", ["model", "info", p("m.dcdm")])
        # A training checkpoint of format version 1 (before the checksum trailer) still resumes.
        v1 = read(p("m.dcdm.ckpt"))[:-12].replace(b'"version":2', b'"version":1')
        write(p("m_v1.dcdm.ckpt"), v1)
        self.good("control: resume a version-1 training checkpoint",
                  ["train", "--data", p("ds"), "--out", p("m_v1.dcdm"), "--checkpoint", p("m_v1.dcdm.ckpt"),
                   "--epochs", "2", "--batch", "2", "--no-plot", "--resume", "--progress", "lines"])
        self.good("control: resume the flagnet training", ["train", "--arch", "flagnet", "--data", p("ds"), "--out",
                                                           p("f_ok.dcdm"), "--checkpoint", p("f_ok.dcdm.ckpt"),
                                                           "--steps", "4", "--validate-every", "1", "--resume"])

    def build(self):
        self.make_fixtures()
        shutil.copytree(self.p("run"), self.p("run_ok"))
        shutil.copy(self.p("m.dcdm.ckpt"), self.p("m_ok.dcdm.ckpt"))
        shutil.copy(self.p("f.dcdm.ckpt"), self.p("f_ok.dcdm.ckpt"))
        for part in (self.truncations, self.lying_headers, self.non_finite, self.fifos, self.unwritable_outputs,
                     self.absurd_options, self.unknown_methods, self.damaged_state, self.controls):
            part()


def check(dcdm, root, case):
    name, args, expected, culprit = case
    rc, seconds, out = run(dcdm, args, root)
    problems = []
    if rc != expected:
        problems.append(f"exit {rc}, expected {expected}")
    if expected == 2 and culprit and culprit not in out:
        problems.append(f"the message does not name '{culprit.replace(root, '.')}'")
    if "internal error" in out:
        problems.append("internal error")
    return name, args, problems, seconds, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--dcdm", default=os.path.join(here, "..", "build", "dcdm"), help="the dcdm executable")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--verbose", action="store_true", help="print every case with its output's last line")
    a = ap.parse_args()
    dcdm = os.path.abspath(a.dcdm)
    if not os.access(dcdm, os.X_OK):
        sys.exit(f"hostile-suite: {dcdm}: no dcdm executable (build the dcdm target or pass --dcdm)")
    root = tempfile.mkdtemp(prefix="dcdm-hostile-")
    t0 = time.monotonic()
    try:
        suite = Suite(dcdm, root)
        suite.build()
        failed = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            for name, args, problems, seconds, out in pool.map(lambda c: check(dcdm, root, c), suite.cases):
                last = out.strip().splitlines()[-1] if out.strip() else ""
                if problems:
                    failed += 1
                    print(f"FAILED {name}: {'; '.join(problems)} ({seconds:.1f} s)\n  dcdm "
                          f"{' '.join(args).replace(root, '.')}\n  {last.replace(root, '.')}")
                elif a.verbose:
                    print(f"held   {name} ({seconds:.1f} s): {last.replace(root, '.')}")
        n = len(suite.cases)
        print(f"hostile-suite: {n} cases, {n - failed} held, {failed} failed ({time.monotonic() - t0:.0f} s; "
              f"limits {TIME_LIMIT_S} s, {MEMORY_LIMIT_BYTES >> 30} GiB address space)")
        return 0 if failed == 0 else 1
    finally:
        if a.keep:
            print(f"hostile-suite: files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
