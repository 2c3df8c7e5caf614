#!/usr/bin/env python3
"""Runs the Rust benchmark (``examples/bench.rs``) and the PyTorch one
(``scripts/bench_pytorch.py``) one after the other -- never at the same time -- or reads two saved
outputs, and prints a markdown table comparing them plus the performance issue's targets.

By default the two are interleaved case by case (Rust case 1, PyTorch case 1, Rust case 2, ...),
so that on a shared machine a burst of load from elsewhere hits both sides of a ratio alike;
``--no-interleave`` runs each benchmark once over all cases instead.

Usage (from the repository root; any Python 3 works, PyTorch is run with ``--python``)::

    # run both, 1 thread each (the default), saving the raw outputs
    python3 scripts/compare_bench.py --threads 1 --out-dir out/bench
    # compare two saved outputs
    python3 scripts/compare_bench.py --rust out/bench/rust.txt --torch out/bench/torch.txt

``--threads``, ``--reps``, ``--only`` and ``--shape`` are passed to both benchmarks. Columns:
case, recurrent median ms, PyTorch median ms, ratio = PyTorch time / recurrent time (> 1 means
recurrent is faster), the same ratio of the minimum times (less sensitive to load from other
processes), recurrent GFLOP/s. The ``gemm 2048`` row compares ndarray's GEMM with PyTorch's BLAS.
Each run's load average (``/proc/loadavg``) before and after is printed; on a shared machine
re-run when it is high.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_PYTHON = REPO / ".venv-torch" / "bin" / "python"

# (case, minimum ratio PyTorch/recurrent) from the performance issue.
TARGETS = [
    ("lstm S2 fwd+bwd", 1.25),
    ("lstm S3 fwd+bwd", 1.0),
    ("lstm S1 infer", 5.0),
    ("gru S2 fwd+bwd", 1.5),
    ("gru S3 fwd+bwd", 1.5),
    ("rnn S2 fwd+bwd", 1.5),
    ("rnn S3 fwd+bwd", 1.5),
]
# S3 LSTM must also reach this fraction of the GEMM peak (ndarray's gemm 2048).
GEMM_FRACTION = 0.70


def parse(text):
    """Maps 'name shape mode' (or 'gemm 2048') to a dict of its key=value numbers."""
    cases = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        keys = [w for w in words if "=" in w]
        label = " ".join(w for w in words if "=" not in w)
        try:
            cases[label] = {k: float(v) for k, v in (w.split("=", 1) for w in keys)}
        except ValueError:
            print(f"warning: cannot parse line {line!r}", file=sys.stderr)
    return cases


def loadavg():
    try:
        return pathlib.Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return ["?"] * 3


def run(cmd, what):
    before = loadavg()
    print(f"# running {what}: {' '.join(map(str, cmd))}", file=sys.stderr)
    res = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    after = loadavg()
    if res.returncode != 0:
        sys.exit(f"{what} failed with exit code {res.returncode}")
    return res.stdout + f"# loadavg before: {' '.join(before)}; after: {' '.join(after)}\n"


CASES = [(net, shape) for shape in ("S1", "S2", "S3") for net in ("lstm", "gru", "rnn")]
CASES += [("bilstm2", "S2"), ("gemm", None)]


def build_rust():
    """Builds the Rust benchmark once and returns the executable's path, so that nothing is
    rebuilt between cases (even if the sources change meanwhile)."""
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "build", "--release", "--example", "bench", "--message-format=json"]
    print(f"# building: {' '.join(cmd)}", file=sys.stderr)
    res = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        sys.exit("cargo build failed")
    for line in res.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "bench":
            if msg.get("executable"):
                return msg["executable"]
    sys.exit("cargo did not report the bench executable")


def comments(text, prefix):
    seen, out = set(), []
    for line in text.splitlines():
        if line.startswith("#") and line not in seen:
            seen.add(line)
            out.append(f"{prefix} {line.lstrip('# ').rstrip()}")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="threads for both (default 1)")
    p.add_argument("--reps", type=int, help="repetitions per case for both")
    p.add_argument("--only", help="comma-separated case names for both (lstm,gru,rnn,bilstm2,gemm)")
    p.add_argument("--shape", help="comma-separated shapes for both (S1,S2,S3)")
    p.add_argument("--rust", help="read the Rust output from this file instead of running it")
    p.add_argument("--torch", help="read the PyTorch output from this file instead of running it")
    p.add_argument("--python", default=str(DEFAULT_PYTHON), help="Python with torch installed")
    p.add_argument(
        "--input-grad",
        action="store_true",
        help="both sides also compute the gradient of the input data (dX)",
    )
    p.add_argument(
        "--no-interleave",
        dest="interleave",
        action="store_false",
        help="run each benchmark once over all cases instead of alternating case by case",
    )
    p.add_argument("--out-dir", help="save the raw outputs as rust.txt and torch.txt here")
    args = p.parse_args()

    common = ["--threads", str(args.threads)]
    if args.reps is not None:
        common += ["--reps", str(args.reps)]
    if args.only:
        common += ["--only", args.only]
    if args.shape:
        common += ["--shape", args.shape]
    if args.input_grad:
        common.append("--input-grad")

    torch_cmd = [args.python, "scripts/bench_pytorch.py"]
    if args.rust or args.torch or not args.interleave:
        if args.rust:
            rust = pathlib.Path(args.rust).read_text()
        else:
            rust = run([build_rust(), *common], "recurrent")
        if args.torch:
            torch_out = pathlib.Path(args.torch).read_text()
        else:
            torch_out = run([*torch_cmd, *common], "PyTorch")
    else:
        exe = build_rust()
        only = None if args.only is None else set(args.only.split(","))
        shapes = None if args.shape is None else set(args.shape.split(","))
        rust, torch_out = "", ""
        for net, shape in CASES:
            if only is not None and net not in only:
                continue
            if shapes is not None and shape is not None and shape not in shapes:
                continue
            if shape is None and shapes is not None and (only is None or net not in only):
                continue
            sel = ["--threads", str(args.threads), "--only", net]
            if shape is not None:
                sel += ["--shape", shape]
            if args.reps is not None:
                sel += ["--reps", str(args.reps)]
            if args.input_grad:
                sel.append("--input-grad")
            rust += run([exe, *sel], "recurrent")
            torch_out += run([*torch_cmd, *sel], "PyTorch")
    if args.out_dir:
        out = pathlib.Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "rust.txt").write_text(rust)
        (out / "torch.txt").write_text(torch_out)

    r, t = parse(rust), parse(torch_out)
    print("\n".join(comments(rust, "recurrent:")))
    print("\n".join(comments(torch_out, "PyTorch:")))
    print()
    print(
        "| case | recurrent median ms | PyTorch median ms | ratio (PyTorch / recurrent) "
        "| ratio of min times | recurrent GFLOP/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label in list(r) + [k for k in t if k not in r]:
        rc, tc = r.get(label), t.get(label)
        rm = f"{rc['median_ms']:.3f}" if rc else "-"
        tm = f"{tc['median_ms']:.3f}" if tc else "-"
        ratio = f"{tc['median_ms'] / rc['median_ms']:.2f}x" if rc and tc else "-"
        rmin = f"{tc['min_ms'] / rc['min_ms']:.2f}x" if rc and tc else "-"
        gf = f"{rc['gflops']:.1f}" if rc else "-"
        print(f"| {label} | {rm} | {tm} | {ratio} | {rmin} | {gf} |")

    print()
    print("| target | measured | status |")
    print("|---|---:|---|")
    for label, want in TARGETS:
        if label in r and label in t:
            ratio = t[label]["median_ms"] / r[label]["median_ms"]
            status = "met" if ratio >= want else "not met"
            print(f"| {label} >= {want:g}x PyTorch | {ratio:.2f}x | {status} |")
        else:
            print(f"| {label} >= {want:g}x PyTorch | - | not measured |")
    s3, gemm = r.get("lstm S3 fwd+bwd"), r.get("gemm 2048")
    if s3 and gemm:
        frac = s3["gflops"] / gemm["gflops"]
        status = "met" if frac >= GEMM_FRACTION else "not met"
        print(
            f"| lstm S3 fwd+bwd >= {GEMM_FRACTION:.0%} of GEMM peak (recurrent::runtime::matmul 2048, "
            f"{gemm['gflops']:.1f} GFLOP/s) | {frac:.0%} | {status} |"
        )
    else:
        print(f"| lstm S3 fwd+bwd >= {GEMM_FRACTION:.0%} of GEMM peak | - | not measured |")
    tgemm, ts3 = t.get("gemm 2048"), t.get("lstm S3 fwd+bwd")
    if s3 and tgemm:
        print()
        print(
            f"lstm S3 fwd+bwd: recurrent {s3['gflops']:.1f} GFLOP/s = "
            f"{s3['gflops'] / tgemm['gflops']:.0%} of PyTorch's gemm 2048 "
            f"({tgemm['gflops']:.1f} GFLOP/s)"
            + (f"; PyTorch's LSTM reaches {ts3['gflops'] / tgemm['gflops']:.0%}" if ts3 else "")
        )


if __name__ == "__main__":
    main()
