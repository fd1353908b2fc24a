#!/usr/bin/python3
"""PyTorch eager reference for bench/run_all.sh: a BERT encoder written with torch.nn (the same
computation as Hugging Face's BertModel), random weights, timed the way a user would run it from
Python. Also exports the same model to ONNX for the ONNX Runtime reference.

Prints one JSON object per run on stdout.
"""
import argparse
import json
import math
import time

import torch
from torch import nn


class Layer(nn.Module):
    def __init__(self, hidden, heads, inter):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.inter = nn.Linear(hidden, inter)
        self.out = nn.Linear(inter, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)
        # Hugging Face's BertLayer drops out attention probabilities and both sublayer outputs
        # (p = 0.1); in eval mode these are no-ops.
        self.dropout = nn.Dropout(0.1)

    def forward(self, x, mask_bias):
        b, t, h = x.shape
        d = h // self.heads

        def split(y):
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + mask_bias
        probs = self.dropout(torch.softmax(scores, -1))
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, h)
        x = self.attn_norm(self.dropout(self.attn_out(ctx)) + x)
        return self.out_norm(self.dropout(self.out(nn.functional.gelu(self.inter(x)))) + x)


class Bert(nn.Module):
    def __init__(self, hidden=768, layers=12, heads=12, inter=3072, vocab=30522, positions=512,
                 labels=2):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(positions, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList([Layer(hidden, heads, inter) for _ in range(layers)])
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, labels)
        self.dropout = nn.Dropout(0.1)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, input_ids, attention_mask, token_type_ids):
        t = input_ids.shape[1]
        positions = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.norm(self.word(input_ids) + self.position(positions) +
                      self.token_type(token_type_ids))
        x = self.dropout(x)
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -1e9
        for layer in self.layers:
            x = layer(x, mask_bias)
        return self.classifier(self.dropout(torch.tanh(self.pooler(x[:, 0]))))


def inputs(batch, seq):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (batch, seq), generator=g)
    return ids, torch.ones_like(ids), torch.zeros_like(ids)


def timed(fn, seconds, min_iters=2):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sum(times) / len(times), len(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["forward", "train", "export"], required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", default="bert-base.onnx")
    parser.add_argument("--shape", choices=["base", "tiny"], default="base")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = dict(hidden=768, layers=12, heads=12, inter=3072) if args.shape == "base" else \
        dict(hidden=128, layers=2, heads=2, inter=512)
    model = Bert(**shape)
    ids, mask, types = inputs(args.batch, args.seq)
    result = {"impl": "pytorch-eager", "torch": torch.__version__, "threads": args.threads,
              "batch": args.batch, "seq": args.seq, "mode": args.mode, "shape": args.shape}
    if args.mode == "export":
        model.eval()
        torch.onnx.export(model, (ids, mask, types), args.out, opset_version=14,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["logits"],
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                        ["input_ids", "attention_mask", "token_type_ids"]})
        result["path"] = args.out
    elif args.mode == "forward":
        model.eval()
        with torch.inference_mode():
            mean, iters = timed(lambda: model(ids, mask, types), args.seconds)
        result.update(seconds_per_batch=mean, iterations=iters,
                      seq_per_s=args.batch / mean, tokens_per_s=args.batch * args.seq / mean)
    else:
        # One fine-tuning step: forward, cross-entropy, backward, AdamW update.
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        labels = torch.zeros(args.batch, dtype=torch.long)

        def step():
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(ids, mask, types), labels)
            loss.backward()
            optimizer.step()

        mean, iters = timed(step, args.seconds)
        result.update(seconds_per_step=mean, iterations=iters,
                      tokens_per_s=args.batch * args.seq / mean)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
