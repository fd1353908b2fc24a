"""ONNX Runtime reference for bench/run_all.sh: runs the model exported by reference_torch.py
(random bert-base weights) with ONNX Runtime's Python bindings (PyPI `onnxruntime`, pinned in
run_all.sh), all graph optimizations, N intra-op threads, one inter-op thread, CPU only.

Usage: python reference_ort.py MODEL.onnx BATCH SEQ THREADS SECONDS  -> one JSON line on stdout.
Run it with the interpreter of the venv run_all.sh creates (not /usr/bin/python3).
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    if len(sys.argv) != 6:
        sys.exit("usage: reference_ort.py MODEL.onnx BATCH SEQ THREADS SECONDS")
    model = sys.argv[1]
    batch, seq, threads = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    seconds = float(sys.argv[5])

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, sess_options=options,
                                   providers=["CPUExecutionProvider"])

    # Same token ids as every other forward reference of run_all.sh: 1000 + (i * 7919) % 29000
    # over the flattened [batch, seq] tensor; no padding; one segment.
    n = batch * seq
    ids = (1000 + (np.arange(n, dtype=np.int64) * 7919) % 29000).reshape(batch, seq)
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones((batch, seq), dtype=np.int64),
        "token_type_ids": np.zeros((batch, seq), dtype=np.int64),
    }

    session.run(None, feeds)  # warm-up
    times = []
    start = time.perf_counter_ns()
    while len(times) < 2 or (time.perf_counter_ns() - start) / 1e9 < seconds:
        t0 = time.perf_counter_ns()
        session.run(None, feeds)
        times.append((time.perf_counter_ns() - t0) / 1e9)
    mean = sum(times) / len(times)
    print(json.dumps({
        "impl": "onnxruntime-python", "version": ort.__version__,
        "threads": threads, "batch": batch, "seq": seq, "seconds_per_batch": mean,
        "iterations": len(times), "seq_per_s": batch / mean, "tokens_per_s": batch * seq / mean,
    }), flush=True)


if __name__ == "__main__":
    main()
