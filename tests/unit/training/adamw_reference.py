#!/usr/bin/env python3
"""Independent reference for bertd's optimizer: PyTorch's own AdamW, LambdaLR schedule and
clip_grad_norm_, built the way the Hugging Face Trainer builds them.

Input (torch.save dict): "param/<name>" initial values, "grad/<step>/<name>" gradients for each
update, and "settings" as a 1-d tensor [lr, weight_decay, beta1, beta2, eps, max_grad_norm,
warmup_steps, total_steps, steps, schedule] (schedule: 0 linear, 1 cosine, 2 constant,
3 constant_with_warmup).
Output (torch.save dict): "param/<name>" after the updates, "lr/<step>" learning rate used.
"""
import math
import sys

import torch


def lr_lambda(schedule, warmup, total):
    def factor(step):
        if schedule == 2:
            return 1.0
        if step < warmup:
            return float(step) / float(max(1, warmup))
        if schedule == 3:
            return 1.0
        progress = float(step - warmup) / float(max(1, total - warmup))
        if schedule == 0:
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return factor


def main(input_path, output_path):
    data = torch.load(input_path)
    s = data["settings"].tolist()
    lr, weight_decay, beta1, beta2, eps, max_norm = s[:6]
    warmup, total, steps, schedule = (int(x) for x in s[6:10])
    names = sorted(k[len("param/"):] for k in data if k.startswith("param/"))
    params = {n: data["param/" + n].clone().requires_grad_(True) for n in names}
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {"params": [params[n] for n in names if not any(nd in n for nd in no_decay)],
         "weight_decay": weight_decay},
        {"params": [params[n] for n in names if any(nd in n for nd in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2), eps=eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(schedule, warmup, total))
    out = {}
    for step in range(steps):
        for n in names:
            params[n].grad = data["grad/%d/%s" % (step, n)].clone()
        torch.nn.utils.clip_grad_norm_([params[n] for n in names], max_norm)
        out["lr/%d" % step] = torch.tensor([optimizer.param_groups[0]["lr"]], dtype=torch.float64)
        optimizer.step()
        scheduler.step()
    for n in names:
        out["param/" + n] = params[n].detach()
    torch.save(out, output_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
