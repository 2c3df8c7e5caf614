#!/usr/bin/env python3
"""PyTorch (CPU) timings of the performance issue's reference shapes, in the same line format
as the Rust benchmark ``examples/bench.rs``, so ``scripts/compare_bench.py`` can compare them.

Usage (from the repository root)::

    .venv-torch/bin/python scripts/bench_pytorch.py [--only lstm[,gru,...]] [--shape S2[,S3]]
                                                    [--reps N] [--threads N] [--input-grad]

``--only`` picks networks (lstm, gru, rnn, bilstm2, gemm), ``--shape`` picks shapes (S1, S2, S3);
both default to everything, as in the Rust benchmark.

Cases (f32, time-major, single layer, unidirectional unless noted):

======  =====  ===  =====  ======  ==========================================
shape   batch  seq  input  hidden  mode
======  =====  ===  =====  ======  ==========================================
S1      1      100  32     64      ``infer``: ``torch.no_grad()``, ``eval()``; and ``stream``:
                                   the same 100 steps as 100 calls, state carried
S2      32     100  128    256     ``fwd+bwd``
S3      64     50   512    512     ``fwd+bwd``
======  =====  ===  =====  ======  ==========================================

for ``torch.nn.LSTM`` (``lstm``), ``GRU`` (``gru``) and ``RNN`` with tanh (``rnn``), plus a
2-layer bidirectional LSTM (``bilstm2``) at S2, and ``gemm 2048`` (``torch.mm`` of two 2048x2048
f32 matrices, i.e. the BLAS PyTorch was built with). ``fwd+bwd`` is the forward pass followed by
``(out * d_out).sum().backward()`` into every parameter's ``.grad``; by default the input does not
require a gradient, so PyTorch skips ``dX`` of the first layer (the Rust crate always computes it).
``--input-grad`` makes the input require a gradient too, for a like-for-like amount of work.

Output, one line per case (lines starting with ``#`` are comments)::

    lstm S2 fwd+bwd median_ms=12.345 min_ms=11.900 gflops=34.5

FLOPs count only the matrix products: ``2*T*B*G*H*(I+H)`` per layer and direction forward
(G = 4 LSTM, 3 GRU, 1 RNN), twice that for backward; gflops is computed from the median.

``--threads`` calls ``torch.set_num_threads`` (and ``set_num_interop_threads``). The default is
**1**, matching the Rust crate, which is single-threaded for now; pass the same value to both
sides (``compare_bench.py --threads N`` does).

Repetitions: ``--reps N`` fixes them for every case; by default each case gets about 6 s of timed
repetitions (at least 5, at most 2000), after a warm-up of at least one call and ~0.3 s.
"""

import argparse
import math
import platform
import sys
import time

import torch

BUDGET_S = 6.0
WARMUP_S = 0.3

# name, batch, seq, input, hidden, train
SHAPES = [
    ("S1", 1, 100, 32, 64, False),
    ("S2", 32, 100, 128, 256, True),
    ("S3", 64, 50, 512, 512, True),
]
GATES = {"lstm": 4, "gru": 3, "rnn": 1, "bilstm2": 4}
MODULES = {
    "lstm": torch.nn.LSTM,
    "gru": torch.nn.GRU,
    "rnn": torch.nn.RNN,
    "bilstm2": torch.nn.LSTM,
}


def time_it(reps, fn):
    """Warm-up, then timed repetitions; returns sorted times in milliseconds."""
    start = time.perf_counter()
    warm = 0
    while warm == 0 or time.perf_counter() - start < WARMUP_S:
        fn()
        warm += 1
    per_call = (time.perf_counter() - start) / warm
    if reps is None:
        reps = min(max(math.ceil(BUDGET_S / per_call), 5), 2000)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times


def median(sorted_times):
    n = len(sorted_times)
    if n % 2 == 1:
        return sorted_times[n // 2]
    return 0.5 * (sorted_times[n // 2 - 1] + sorted_times[n // 2])


def report(label, times, flops):
    med = median(times)
    print(
        f"{label} median_ms={med:.3f} min_ms={times[0]:.3f} gflops={flops / (med * 1e-3) / 1e9:.2f}"
    )
    print(f"# {label}: reps={len(times)}")
    sys.stdout.flush()


def forward_flops(gates, batch, seq, inp, hidden, layers, dirs):
    total = 0.0
    for layer in range(layers):
        i = inp if layer == 0 else dirs * hidden
        total += dirs * 2.0 * seq * batch * gates * hidden * (i + hidden)
    return total


def bench_case(name, shape, layers, bidirectional, reps, input_grad):
    sname, batch, seq, inp, hidden, train = shape
    torch.manual_seed(0)
    dirs = 2 if bidirectional else 1
    net = MODULES[name](inp, hidden, num_layers=layers, bidirectional=bidirectional)
    x = torch.randn(seq, batch, inp)
    fwd = forward_flops(GATES[name], batch, seq, inp, hidden, layers, dirs)
    if train:
        net.train()
        d_out = torch.randn(seq, batch, dirs * hidden)
        if input_grad:
            x.requires_grad_(True)

        # Gradients accumulate across repetitions, as in the Rust benchmark.
        def step():
            out, _ = net(x)
            (out * d_out).sum().backward()

        times = time_it(reps, step)
        report(f"{name} {sname} fwd+bwd", times, 3.0 * fwd)
    else:
        net.eval()

        def infer():
            with torch.no_grad():
                net(x)

        times = time_it(reps, infer)
        report(f"{name} {sname} infer", times, fwd)
        if bidirectional or layers != 1:
            return
        steps = [x[t : t + 1] for t in range(seq)]

        # The same sequence one step at a time, the state carried between calls (real-time use).
        def stream():
            with torch.no_grad():
                state = None
                for xt in steps:
                    _, state = net(xt, state)

        times = time_it(reps, stream)
        report(f"{name} {sname} stream", times, fwd)


def bench_gemm(n, reps):
    torch.manual_seed(0)
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    c = torch.empty(n, n)
    times = time_it(reps, lambda: torch.mm(a, b, out=c))
    report(f"gemm {n}", times, 2.0 * n**3)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help="comma-separated names: lstm,gru,rnn,bilstm2,gemm")
    p.add_argument("--shape", help="comma-separated shapes: S1,S2,S3")
    p.add_argument("--reps", type=int, help="timed repetitions per case (default: ~6 s each)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument(
        "--input-grad",
        action="store_true",
        help="make the input require a gradient (PyTorch then also computes dX of layer 0)",
    )
    args = p.parse_args()
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be at least 1")
    only = None if args.only is None else {s.strip() for s in args.only.split(",")}
    shapes = None if args.shape is None else {s.strip() for s in args.shape.split(",")}

    def wanted(name, shape):
        return (only is None or name in only) and (shapes is None or shape in shapes)

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:
        pass  # can only be set once, before any parallel work
    torch.set_grad_enabled(True)

    print("# PyTorch scripts/bench_pytorch.py (f32, time-major, CPU)")
    print(f"# torch={torch.__version__} python={platform.python_version()}")
    print(f"# cpu: {cpu_model()}")
    print(f"# threads={torch.get_num_threads()} input_grad={args.input_grad}")
    print(f"# mkldnn_available={torch.backends.mkldnn.is_available()}")
    if args.reps is None:
        print(f"# reps: about {BUDGET_S} s of repetitions per case (5..=2000)")
    else:
        print(f"# reps={args.reps} per case")
    for shape in SHAPES:
        for name in ("lstm", "gru", "rnn"):
            if wanted(name, shape[0]):
                bench_case(name, shape, 1, False, args.reps, args.input_grad)
    if wanted("bilstm2", "S2"):
        bench_case("bilstm2", SHAPES[1], 2, True, args.reps, args.input_grad)
    # The GEMM reference has no shape: --shape alone skips it, --only gemm keeps it.
    if (only is not None and "gemm" in only) or (only is None and shapes is None):
        bench_gemm(2048, args.reps)


if __name__ == "__main__":
    main()
