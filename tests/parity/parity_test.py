"""bertd against Hugging Face transformers on real checkpoints, through bertd's public API.

Inputs: the first 200 sentences of SST-2 dev and 50 SQuAD 2.0 contexts (shared/), and the 50
question/context pairs for tokenization. For every model that scripts/fetch-models.sh lays out:
  - token ids from bertd's Tokenize equal the model's own tokenizer's (transformers' AutoTokenizer,
    the tokenizers library), for texts and pairs, untruncated;
  - fp32: every token's final hidden state from Embed equals transformers' last_hidden_state within
    1e-4, the pooled vector (the model's own pooling: mean + L2 normalization) within 1e-5, and
    `truncated` is reported exactly for the inputs longer than the model's window;
  - bf16 (bertd --precision bf16): hidden states within the tolerances below, and the nearest
    neighbour of each pooled embedding among the 250 is the same as with the fp32 reference for at
    least 99% of them.
bertd is driven with bertctl, as a user would. Prints one line per check and "N passed, N failed".
"""
import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

FP32_STATE_TOLERANCE = 1e-4
FP32_POOLED_TOLERANCE = 1e-5
# bf16 keeps 8 bits of mantissa: states are compared by cosine per token and by mean error.
# Measured on MiniLM-L6 (AVX512-BF16 machine, 2026-12-07): lowest cosine 0.9999, largest mean
# error 0.0020.
BF16_MIN_TOKEN_COSINE = 0.999
BF16_MAX_MEAN_ABS_ERROR = 0.01
BF16_MIN_NEIGHBOUR_AGREEMENT = 0.99

results = {"passed": 0, "failed": 0}


def check(name, ok, detail):
    results["passed" if ok else "failed"] += 1
    print(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def load_inputs(shared):
    texts = []
    with open(os.path.join(shared, "data/glue/SST-2/dev.tsv"), newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for row in reader:
            texts.append(row[0])
            if len(texts) == 200:
                break
    with open(os.path.join(shared, "data/squad/squad-v2-dev-sample.json"), encoding="utf-8") as f:
        squad = json.load(f)
    contexts, pairs = [], []
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            if len(contexts) < 50:
                contexts.append(paragraph["context"])
                pairs.append((paragraph["qas"][0]["question"], paragraph["context"]))
    assert len(texts) == 200 and len(contexts) == 50, (len(texts), len(contexts))
    return texts + contexts, pairs


class Bertd:
    def __init__(self, bertd, bertctl, models, precision, workdir):
        self.bertctl = bertctl
        data = os.path.join(workdir, f"data-{precision}")
        os.makedirs(os.path.join(data, "models"))
        for name, directory in models.items():
            os.makedirs(os.path.join(data, "models", name))
            os.symlink(directory, os.path.join(data, "models", name, "1"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        self.log = open(os.path.join(workdir, f"bertd-{precision}.log"), "w")
        self.process = subprocess.Popen(
            [bertd, f"--data_dir={data}", f"--listen={self.address}", "--metrics_listen=127.0.0.1:0",
             f"--precision={precision}"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bertd exited with {self.process.returncode}; see {self.log.name}")
            listed = subprocess.run([bertctl, "-s", self.address, "-o", "json", "models", "list"],
                                    capture_output=True, text=True)
            if listed.returncode == 0:
                states = [m.get("state") for m in json.loads(listed.stdout).get("models", [])]
                if len(states) == len(models) and all(s == "MODEL_STATE_READY" for s in states):
                    self.models = {m["name"]: m for m in json.loads(listed.stdout)["models"]}
                    return
                if any(s == "MODEL_STATE_FAILED" for s in states):
                    raise RuntimeError(f"a model failed to load: {listed.stdout}")
            time.sleep(0.5)
        raise RuntimeError("bertd did not get its models ready within 120 s")

    def lines(self, args, records):
        """Runs bertctl ARGS with one JSON record per stdin line; returns one JSON object per record."""
        stdin = "".join(json.dumps(r) + "\n" for r in records)
        done = subprocess.run([self.bertctl, "-s", self.address] + args, input=stdin,
                              capture_output=True, text=True, check=True)
        out = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        assert len(out) == len(records), (len(out), len(records), done.stderr)
        return out

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def reference(directory, texts, window):
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    states, pooled, full_lengths = [], [], []
    with torch.no_grad():
        for text in texts:
            full_lengths.append(len(tokenizer(text)["input_ids"]))
            encoded = tokenizer(text, truncation=True, max_length=window, return_tensors="pt")
            hidden = model(**encoded).last_hidden_state[0]
            states.append(hidden.numpy())
            vector = hidden.mean(0)  # sentence-transformers' mean pooling (every token is real)
            pooled.append(torch.nn.functional.normalize(vector, dim=0).numpy())
    return tokenizer, states, np.stack(pooled), full_lengths


def nearest_neighbours(vectors):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(axis=1)


def bertd_embeddings(server, name, texts):
    out = server.lines(["-o", "json", "embed", "-m", name, "--token-embeddings", "--batch-size", "16"],
                       [{"text": t} for t in texts])
    dims = server.models[name]["hiddenSize"]
    states = [np.asarray(e["tokenEmbeddings"], dtype=np.float32).reshape(-1, dims) for e in out]
    pooled = np.stack([np.asarray(e["vector"], dtype=np.float32) for e in out])
    return out, states, pooled


def compare_model(name, directory, texts, pairs, fp32, bf16):
    info = fp32.models[name]
    window = info["embeddingMaxTokens"]
    tokenizer, ref_states, ref_pooled, full_lengths = reference(directory, texts, window)

    got = fp32.lines(["-o", "json", "tokenize", "-m", name], [{"text": t} for t in texts])
    mismatched = [i for i, (g, t) in enumerate(zip(got, texts)) if g["ids"] != tokenizer(t)["input_ids"]]
    check(f"{name}: token ids of {len(texts)} texts", not mismatched,
          f"{len(mismatched)} differ" + (f" (first: input {mismatched[0]})" if mismatched else ""))
    got = fp32.lines(["-o", "json", "tokenize", "-m", name],
                     [{"text": q, "text_pair": c} for q, c in pairs])
    mismatched = [i for i, (g, (q, c)) in enumerate(zip(got, pairs))
                  if g["ids"] != tokenizer(q, c)["input_ids"] or
                  g["typeIds"] != tokenizer(q, c)["token_type_ids"]]
    check(f"{name}: token and type ids of {len(pairs)} question/context pairs", not mismatched,
          f"{len(mismatched)} differ")

    check(f"{name}: the model's own pooling is reported", info.get("embeddingPooling") == "POOLING_MEAN"
          and info.get("embeddingNormalized") is True, f"pooling {info.get('embeddingPooling')}, "
          f"normalized {info.get('embeddingNormalized')}, window {window}")

    out, states, pooled = bertd_embeddings(fp32, name, texts)
    shapes_ok = all(s.shape == r.shape for s, r in zip(states, ref_states))
    worst = max(float(np.abs(s - r).max()) for s, r in zip(states, ref_states)) if shapes_ok else float("inf")
    check(f"{name}: fp32 final hidden states of {len(texts)} inputs", worst <= FP32_STATE_TOLERANCE,
          f"max |bertd - transformers| = {worst:.2e} (tolerance {FP32_STATE_TOLERANCE:g})")
    worst_pooled = float(np.abs(pooled - ref_pooled).max())
    check(f"{name}: fp32 pooled embeddings", worst_pooled <= FP32_POOLED_TOLERANCE,
          f"max |bertd - transformers| = {worst_pooled:.2e} (tolerance {FP32_POOLED_TOLERANCE:g})")
    expected_cut = [n > window for n in full_lengths]
    reported_cut = [bool(e.get("truncated", False)) for e in out]
    check(f"{name}: truncation reported per input", expected_cut == reported_cut,
          f"{sum(expected_cut)} of {len(texts)} inputs longer than {window} tokens, "
          f"{sum(reported_cut)} reported")

    precision = bf16.models[name].get("precision")
    check(f"{name}: the bf16 server computes in bfloat16", precision == "bfloat16",
          f"ModelInfo.precision is {precision!r}")
    out, states, pooled = bertd_embeddings(bf16, name, texts)
    cosines, errors = [], []
    for s, r in zip(states, ref_states):
        if s.shape != r.shape:
            cosines.append(-1.0)
            continue
        cos = (s * r).sum(1) / (np.linalg.norm(s, axis=1) * np.linalg.norm(r, axis=1))
        cosines.append(float(cos.min()))
        errors.append(float(np.abs(s - r).mean()))
    check(f"{name}: bf16 hidden states", min(cosines) >= BF16_MIN_TOKEN_COSINE
          and max(errors) <= BF16_MAX_MEAN_ABS_ERROR,
          f"lowest per-token cosine {min(cosines):.4f} (at least {BF16_MIN_TOKEN_COSINE}), largest mean "
          f"|error| {max(errors):.4f} (at most {BF16_MAX_MEAN_ABS_ERROR})")
    agreement = float((nearest_neighbours(pooled) == nearest_neighbours(ref_pooled)).mean())
    check(f"{name}: bf16 nearest neighbours of the {len(texts)} pooled embeddings", 
          agreement >= BF16_MIN_NEIGHBOUR_AGREEMENT,
          f"{agreement:.1%} agree with the fp32 reference (at least {BF16_MIN_NEIGHBOUR_AGREEMENT:.0%})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bertd", required=True)
    parser.add_argument("--bertctl", required=True)
    parser.add_argument("--shared", required=True)
    parser.add_argument("--models", required=True, help='"NAME DIR" lines from fetch-models.sh')
    args = parser.parse_args()
    models = dict(line.split(" ", 1) for line in args.models.strip().splitlines())
    texts, pairs = load_inputs(args.shared)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    workdir = tempfile.mkdtemp(prefix="bertd-parity-")
    servers = []
    try:
        fp32 = Bertd(args.bertd, args.bertctl, models, "fp32", workdir)
        servers.append(fp32)
        bf16 = Bertd(args.bertd, args.bertctl, models, "bf16", workdir)
        servers.append(bf16)
        for name, directory in models.items():
            compare_model(name, directory, texts, pairs, fp32, bf16)
    finally:
        for server in servers:
            server.stop()
    if results["failed"] == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"bertd logs kept in {workdir}")
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
