"""GFLOP/s of OpenBLAS (numpy's bundled build) and MKL (torch.mm) on the shapes of
examples/gemm_bench.rs, same threads, best of REPS: one JSON object a (program, shape).

Usage: python blas_bench.py --threads 2   (run with scripts/peers/setup.sh's venv)
"""
import argparse
import json
import os
import time

SHAPES = [  # (rows, d_in, d_out, weight stored transposed as a tied output head is)
    (1024, 576, 1536, False), (1024, 1536, 576, False), (1024, 576, 49152, True),
    (1, 576, 1536, False), (1, 1536, 576, False), (1, 576, 49152, True),
]


def best(f, reps: int) -> float:
    f()  # warm-up: thread pools started, buffers allocated
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    threads = ap.parse_args().threads
    # OpenBLAS reads its thread count when it loads.
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    np_blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    versions = {"numpy": {"version": np.__version__, "blas": f"{np_blas['name']} {np_blas['version']}"},
                "torch": {"version": torch.__version__, "blas": "MKL" if torch.backends.mkl.is_available() else "?"}}
    for m, k, n, transposed in SHAPES:
        reps = 5 if m * n * k > 1 << 28 else 20
        x = np.full((m, k), 0.5, dtype=np.float32)
        w = np.full((n, k) if transposed else (k, n), 0.25, dtype=np.float32)
        wv = w.T if transposed else w
        t_np = best(lambda: x @ wv, reps)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        twv = tw.t() if transposed else tw
        t_torch = best(lambda: torch.mm(tx, twv), reps)
        for program, t in (("OpenBLAS (numpy)", t_np), ("MKL (torch.mm)", t_torch)):
            print(json.dumps({"program": program, "m": m, "k": k, "n": n, "transposed": transposed,
                              "gflops": round(2 * m * n * k / t / 1e9, 2), "seconds": round(t, 6),
                              "versions": versions}))


if __name__ == "__main__":
    main()
