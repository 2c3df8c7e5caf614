#!/usr/bin/env python3
"""Runs the Rust benchmark (``examples/bench.rs``) and the PyTorch one
(``scripts/bench_pytorch.py``) one after the other -- never at the same time -- or reads two saved
outputs, and prints a markdown table comparing them plus the performance issue's targets.

By default the two are interleaved case by case (Rust case 1, PyTorch case 1, Rust case 2, ...),
so that on a shared machine a burst of load from elsewhere hits both sides of a ratio alike;
``--no-interleave`` runs each benchmark once over all cases instead.

Usage (from the repository root; any Python 3 works, PyTorch is run with ``--python``)::

    # run both on all cores (the default), saving the raw outputs
    python3 scripts/compare_bench.py --out-dir out/bench
    # 1 thread each; the crate's AVX2 path against PyTorch limited to AVX2
    python3 scripts/compare_bench.py --threads 1 --isa avx2
    # just the rows to paste into docs/PERFORMANCE.md
    python3 scripts/compare_bench.py --shape S2,S3 --markdown
    # 1 thread and all cores in one interleaved run: the 1->N speed-up of both sides per case
    python3 scripts/compare_bench.py --scaling --shape S2,S3
    # compare two saved outputs
    python3 scripts/compare_bench.py --rust out/bench/rust.txt --torch out/bench/torch.txt
    # before and after a change: a bench executable built from the earlier commit, interleaved
    # case by case with the current one and PyTorch
    python3 scripts/compare_bench.py --baseline /tmp/before/release/examples/bench

``--reps``, ``--only`` and ``--shape`` are passed to both benchmarks. ``--threads N`` gives both
sides N threads; without it (or with 0) both use all cores: the crate its default
(``set_num_threads(0)``), PyTorch ``torch.set_num_threads`` with the number of CPUs this process may
run on (``bench_pytorch.py`` itself defaults to 1, so the count is passed explicitly).

``--isa`` picks the instruction set of both sides:

* ``native`` (default): the crate's best path (``--isa native``); PyTorch as installed.
* ``avx512``: the crate's AVX-512 path; PyTorch as installed (its best, AVX-512 on such a CPU).
* ``avx2``: the crate's AVX2 path; PyTorch with ``MKL_ENABLE_INSTRUCTIONS=AVX2``,
  ``ONEDNN_MAX_CPU_ISA=AVX2`` and ``ATEN_CPU_CAPABILITY=avx2`` (its own vectorised kernels).
* ``portable``: the crate's portable path; **PyTorch keeps its best instruction set**. The crate's
  portable path is not an SSE-only build: its products go to ``matrixmultiply``, which picks
  AVX/FMA kernels at run time, so there is no like-for-like PyTorch setting. The report says so;
  ``--torch-isa sse`` limits PyTorch to ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``,
  ``ONEDNN_MAX_CPU_ISA=SSE41``, ``ATEN_CPU_CAPABILITY=default`` if wanted.

``--torch-isa native|avx2|sse`` overrides PyTorch's side alone. MKL honours
``MKL_ENABLE_INSTRUCTIONS`` only on Intel CPUs; the report header shows what PyTorch says it uses
(ATen's CPU capability and oneDNN's ISA, queried with the same environment), the crate's ISA and
both thread counts.

Columns: case, recurrent median ms, PyTorch median ms, ratio = PyTorch time / recurrent time (> 1
means recurrent is faster), the same ratio of the minimum times (less sensitive to load from other
processes), recurrent GFLOP/s. The ``gemm 2048`` row compares the crate's GEMM
(``recurrent::runtime::matmul``) with PyTorch's BLAS. ``--markdown`` prints only
``| case | recurrent ms | PyTorch ms | ratio |`` rows (medians) under a one-line caption.
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


def run(cmd, what, env=None):
    before = loadavg()
    shown = " ".join(f"{k}={v}" for k, v in (env or {}).items() if os.environ.get(k) != v)
    shown = shown + " " if shown else ""
    print(f"# running {what}: {shown}{' '.join(map(str, cmd))}", file=sys.stderr)
    res = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False, env=env)
    after = loadavg()
    if res.returncode != 0:
        sys.exit(f"{what} failed with exit code {res.returncode}")
    return res.stdout + f"# loadavg before: {' '.join(before)}; after: {' '.join(after)}\n"


CASES = [(net, shape) for shape in ("S1", "S2", "S3") for net in ("lstm", "gru", "rnn")]
CASES += [("bilstm2", "S2"), ("gemm", None)]

# Environment of the PyTorch subprocess per --torch-isa (the variables are removed for "native").
TORCH_ISA_VARS = (
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
)
TORCH_ISA_ENV = {
    "native": {},
    "avx2": {
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    },
    "sse": {
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "ATEN_CPU_CAPABILITY": "default",
    },
}
# PyTorch's setting for each --isa unless --torch-isa says otherwise.
TORCH_ISA_FOR = {"native": "native", "avx512": "native", "avx2": "avx2", "portable": "native"}


def all_cores():
    """CPUs this process may run on (what Rust's available_parallelism also counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def envs(args):
    """Environments of the crate's and PyTorch's subprocesses."""
    rust_env = dict(os.environ)
    rust_env.pop("RECURRENT_ISA", None)
    if args.isa != "native":
        rust_env["RECURRENT_ISA"] = args.isa  # the bench's --isa sets it too
    torch_env = {k: v for k, v in os.environ.items() if k not in TORCH_ISA_VARS}
    torch_env.update(TORCH_ISA_ENV[args.torch_isa])
    return rust_env, torch_env


PROBE = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
print("torch", torch.__version__)
print("aten", torch.backends.cpu.get_cpu_capability())
print("threads", torch.get_num_threads())
with torch.no_grad():
    torch.nn.LSTM(8, 8).eval()(torch.randn(2, 1, 8))  # a oneDNN primitive: prints its ISA
"""


def torch_probe(python, threads, env):
    """PyTorch's version, ATen CPU capability, thread count and oneDNN ISA under `env`."""
    env = dict(env, ONEDNN_VERBOSE="1")
    res = subprocess.run(
        [python, "-c", PROBE, str(threads)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    info = {}
    for line in res.stdout.splitlines():
        if ",isa:" in line:
            info["onednn"] = line.split(",isa:", 1)[1].strip()
        elif " " in line and not line.startswith("onednn_verbose"):
            key, value = line.split(" ", 1)
            info[key] = value.strip()
    if res.returncode != 0:
        info["error"] = (res.stderr.strip().splitlines() or ["?"])[-1]
    return info


def rust_settings(text):
    """The crate benchmark's `# isa=... threads=...` header, or '?'."""
    for line in text.splitlines():
        if line.startswith("# isa="):
            return line[2:].strip()
    return "?"


def header(args, rust_text, torch_text, probe, torch_threads):
    """Report lines saying what ran on each side."""
    lines = [f"# recurrent: {rust_settings(rust_text)}"]
    if probe is None:
        found = [
            line[2:].strip()
            for line in torch_text.splitlines()
            if line.startswith(("# torch=", "# threads="))
        ]
        lines.append(f"# PyTorch (from a file, ISA not recorded): {'; '.join(found[:2]) or '?'}")
        return lines
    if "error" in probe:
        lines.append(f"# PyTorch: probe failed: {probe['error']}")
        return lines
    set_env = " ".join(f"{k}={v}" for k, v in TORCH_ISA_ENV[args.torch_isa].items())
    lines.append(
        f"# PyTorch: torch {probe.get('torch', '?')}, isa={args.torch_isa} (ATen cpu capability "
        f"{probe.get('aten', '?')}, oneDNN {probe.get('onednn', '?')}; "
        + (f"env {set_env}" if set_env else "no ISA limits")
        + f") threads={probe.get('threads', torch_threads)}"
    )
    if args.isa == "portable" and args.torch_isa == "native":
        lines.append(
            "# note: --isa portable limits the crate only; PyTorch still uses its best instruction "
            "set (the crate's portable products use matrixmultiply's run-time AVX/FMA kernels, so "
            "no PyTorch setting is like for like; --torch-isa sse limits PyTorch to SSE4)"
        )
    return lines


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


def selected_cases(args):
    only = None if args.only is None else set(args.only.split(","))
    shapes = None if args.shape is None else set(args.shape.split(","))
    for net, shape in CASES:
        if only is not None and net not in only:
            continue
        if shapes is not None and shape is not None and shape not in shapes:
            continue
        if shape is None and shapes is not None and (only is None or net not in only):
            continue
        yield net, shape


def case_flags(args, net, shape):
    sel = ["--only", net]
    if shape is not None:
        sel += ["--shape", shape]
    if args.reps is not None:
        sel += ["--reps", str(args.reps)]
    if args.input_grad:
        sel.append("--input-grad")
    return sel


def run_interleaved(args, exe, torch_cmd, envs_, thread_counts):
    """Runs case by case, alternating the crate and PyTorch, for each (rust, torch) thread count;
    returns {(rust_threads, torch_threads): (rust_text, torch_text)}."""
    rust_env, torch_env = envs_
    out = {tc: ("", "") for tc in thread_counts}
    for net, shape in selected_cases(args):
        sel = case_flags(args, net, shape)
        for rt, tt in thread_counts:
            rust, torch_out = out[(rt, tt)]
            rust += run([exe, "--threads", str(rt), "--isa", args.isa, *sel], "recurrent", rust_env)
            torch_out += run([*torch_cmd, "--threads", str(tt), *sel], "PyTorch", torch_env)
            out[(rt, tt)] = (rust, torch_out)
    return out


def print_scaling(r1, rn, t1, tn, n, markdown):
    """1 -> n thread speed-up of both sides per case."""
    print()
    print(
        f"| case | recurrent 1T ms | recurrent {n}T ms | recurrent speed-up | PyTorch 1T ms "
        f"| PyTorch {n}T ms | PyTorch speed-up | ratio 1T | ratio {n}T |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label in r1:
        cells = []
        for a, b in ((r1, rn), (t1, tn)):
            x, y = a.get(label), b.get(label)
            cells += [f"{x['median_ms']:.3f}" if x else "-", f"{y['median_ms']:.3f}" if y else "-"]
            cells.append(f"{x['median_ms'] / y['median_ms']:.2f}x" if x and y else "-")
        for a, b in ((r1, t1), (rn, tn)):
            x, y = a.get(label), b.get(label)
            cells.append(f"{y['median_ms'] / x['median_ms']:.2f}x" if x and y else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    if not markdown:
        print()
        print(f"speed-up = median time at 1 thread / at {n} threads; ratio = PyTorch / recurrent")


def print_baseline(b, r, t, markdown):
    """Before (the baseline executable) and after, each against PyTorch."""
    print()
    print(
        "| case | before ms | after ms | before / after | PyTorch ms "
        "| ratio before (PyTorch / recurrent) | ratio after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label in r:
        x, y, z = b.get(label), r.get(label), t.get(label)
        cells = [f"{c['median_ms']:.3f}" if c else "-" for c in (x, y)]
        cells.append(f"{x['median_ms'] / y['median_ms']:.3f}" if x and y else "-")
        cells.append(f"{z['median_ms']:.3f}" if z else "-")
        for c in (x, y):
            cells.append(f"{z['median_ms'] / c['median_ms']:.2f}x" if c and z else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    if not markdown:
        print()
        print("before / after > 1: the current build is faster than the baseline (medians)")


def comments(text, prefix):
    seen, out = set(), []
    for line in text.splitlines():
        if line.startswith("#") and line not in seen:
            seen.add(line)
            out.append(f"{prefix} {line.lstrip('# ').rstrip()}")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--threads", type=int, default=0, help="threads for both (default 0 = all cores)"
    )
    p.add_argument(
        "--isa",
        choices=["native", "avx512", "avx2", "portable"],
        default="native",
        help="instruction set of both sides (default native; see the module docstring)",
    )
    p.add_argument(
        "--torch-isa",
        choices=sorted(TORCH_ISA_ENV),
        help="PyTorch's instruction set alone (default: follows --isa; portable -> native)",
    )
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
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print only markdown rows (case | recurrent ms | PyTorch ms | ratio) to paste",
    )
    p.add_argument(
        "--scaling",
        action="store_true",
        help="run 1 thread and --threads (default all cores) interleaved; print both speed-ups",
    )
    p.add_argument(
        "--baseline",
        help="a bench executable built from another commit: run it too, interleaved (before, "
        "after, PyTorch per case), and print before/after and both ratios",
    )
    p.add_argument("--out-dir", help="save the raw outputs as rust.txt and torch.txt here")
    args = p.parse_args()
    if args.threads < 0:
        p.error("--threads must be >= 0")
    if args.torch_isa is None:
        args.torch_isa = TORCH_ISA_FOR[args.isa]
    if args.scaling and (args.rust or args.torch or not args.interleave):
        p.error("--scaling runs both benchmarks interleaved; it cannot read files")
    if args.baseline and (args.rust or args.torch or not args.interleave or args.scaling):
        p.error("--baseline runs interleaved; it cannot read files or be combined with --scaling")

    n = args.threads or all_cores()
    # The crate gets 0 for "all cores" (its own default), PyTorch the explicit count.
    rust_threads, torch_threads = args.threads, n
    envs_ = envs(args)
    rust_env, torch_env = envs_
    torch_cmd = [args.python, "scripts/bench_pytorch.py"]
    need_torch = not args.torch
    probe = torch_probe(args.python, torch_threads, torch_env) if need_torch else None

    if args.scaling:
        exe = build_rust()
        runs = run_interleaved(args, exe, torch_cmd, envs_, [(1, 1), (rust_threads, torch_threads)])
        (r1_text, t1_text), (rn_text, tn_text) = runs[(1, 1)], runs[(rust_threads, torch_threads)]
        if args.out_dir:
            out = pathlib.Path(args.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            for name, text in [
                ("rust-1.txt", r1_text),
                ("torch-1.txt", t1_text),
                (f"rust-{n}.txt", rn_text),
                (f"torch-{n}.txt", tn_text),
            ]:
                (out / name).write_text(text)
        for line in header(args, rn_text, tn_text, probe, torch_threads):
            print("- " + line.lstrip("# ") if args.markdown else line)
        if not args.markdown:
            print("\n".join(comments(r1_text + rn_text, "recurrent:")))
            print("\n".join(comments(t1_text + tn_text, "PyTorch:")))
        r1, rn, t1, tn = map(parse, (r1_text, rn_text, t1_text, tn_text))
        print_scaling(r1, rn, t1, tn, n, args.markdown)
        return

    if args.baseline:
        exe = build_rust()
        base_text, rust_text, torch_text = "", "", ""
        for net, shape in selected_cases(args):
            sel = case_flags(args, net, shape)
            rflags = ["--threads", str(rust_threads), "--isa", args.isa, *sel]
            base_text += run([args.baseline, *rflags], "recurrent (baseline)", rust_env)
            rust_text += run([exe, *rflags], "recurrent", rust_env)
            torch_text += run([*torch_cmd, "--threads", str(torch_threads), *sel], "PyTorch", torch_env)
        if args.out_dir:
            out = pathlib.Path(args.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / "baseline.txt").write_text(base_text)
            (out / "rust.txt").write_text(rust_text)
            (out / "torch.txt").write_text(torch_text)
        for line in header(args, rust_text, torch_text, probe, torch_threads):
            print("- " + line.lstrip("# ") if args.markdown else line)
        print(("- " if args.markdown else "# ") + f"baseline: {args.baseline}")
        if not args.markdown:
            print("\n".join(comments(rust_text, "recurrent:")))
            print("\n".join(comments(torch_text, "PyTorch:")))
        print_baseline(parse(base_text), parse(rust_text), parse(torch_text), args.markdown)
        return

    common = ["--threads", str(rust_threads), "--isa", args.isa]
    tcommon = ["--threads", str(torch_threads)]
    for flags in (common, tcommon):
        if args.reps is not None:
            flags += ["--reps", str(args.reps)]
        if args.only:
            flags += ["--only", args.only]
        if args.shape:
            flags += ["--shape", args.shape]
        if args.input_grad:
            flags.append("--input-grad")

    if args.rust or args.torch or not args.interleave:
        if args.rust:
            rust = pathlib.Path(args.rust).read_text()
        else:
            rust = run([build_rust(), *common], "recurrent", rust_env)
        if args.torch:
            torch_out = pathlib.Path(args.torch).read_text()
        else:
            torch_out = run([*torch_cmd, *tcommon], "PyTorch", torch_env)
    else:
        exe = build_rust()
        runs = run_interleaved(args, exe, torch_cmd, envs_, [(rust_threads, torch_threads)])
        rust, torch_out = runs[(rust_threads, torch_threads)]
    if args.out_dir:
        out = pathlib.Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "rust.txt").write_text(rust)
        (out / "torch.txt").write_text(torch_out)

    r, t = parse(rust), parse(torch_out)
    if args.markdown:
        for line in header(args, rust, torch_out, probe, torch_threads):
            print("- " + line.lstrip("# "))
        print()
        print("| case | recurrent ms | PyTorch ms | ratio (PyTorch / recurrent) |")
        print("|---|---:|---:|---:|")
        for label in list(r) + [k for k in t if k not in r]:
            rc, tc = r.get(label), t.get(label)
            rm = f"{rc['median_ms']:.3f}" if rc else "-"
            tm = f"{tc['median_ms']:.3f}" if tc else "-"
            ratio = f"{tc['median_ms'] / rc['median_ms']:.2f}x" if rc and tc else "-"
            print(f"| {label} | {rm} | {tm} | {ratio} |")
        return
    for line in header(args, rust, torch_out, probe, torch_threads):
        print(line)
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
