"""The Hugging Face side of bench/quality.sh (run with the reference venv's python).

  classify   fine-tunes AutoModelForSequenceClassification with transformers' Trainer on a GLUE TSV
             (SST-2: one sentence; MRPC: a sentence pair; STS-B: a sentence pair and a score,
             regression) and evaluates on the dev file
  stsb-st    STS-B dev Spearman of sentence-transformers' embeddings (cosine vs. the gold score)
  stsb-score the same Spearman for vectors computed elsewhere (bertctl embed's JSON lines)
  versions   the library versions, one JSON object

Every command prints one JSON object on stdout; progress and library chatter go to stderr.
"""
import argparse
import json
import os
import sys
import time

START = time.time()  # wall time of the whole command, imports included, as bertctl's is timed
# The result is the only thing on stdout: Trainer prints its logs there, so they go to stderr.
RESULT = sys.stdout
sys.stdout = sys.stderr

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# GLUE columns by header name; MRPC's header starts with a byte order mark (read as utf-8-sig).
# STS-B (no header in shared/) is read by read_stsb, its score as the label of a regression.
TASKS = {
    "sst2": {"text": "sentence", "text_pair": None, "label": "label"},
    "mrpc": {"text": "#1 String", "text_pair": "#2 String", "label": "Quality"},
    "stsb": {"regression": True},
}


def emit(result):
    print(json.dumps(result), file=RESULT, flush=True)


def read_tsv(path):
    """GLUE TSV: tab-separated, no quoting (a '"' is a literal character), a header line."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = [line.rstrip("\r\n") for line in f]
    lines = [line for line in lines if line]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def read_stsb(path):
    """STS-B as in shared/: no header; sentence1, sentence2 and the score in columns 8, 9, 10
    (1-based) of 10."""
    pairs = []
    with open(path, encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\r\n").split("\t")
            if line.strip() == "":
                continue
            if len(fields) != 10:
                sys.exit(f"{path}: line {number}: expected 10 fields, got {len(fields)}")
            pairs.append((fields[7], fields[8], float(fields[9])))
    return pairs


def spearman(first, second, scores):
    """Spearman's rho (average ranks for ties) between the cosine of each pair and the gold score."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"spearman": float(spearmanr(cosine, scores).correlation),
            "pearson": float(pearsonr(cosine, scores)[0]), "pairs": len(scores)}


def classify(args):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainingArguments, set_seed)

    columns = TASKS[args.task]
    regression = columns.get("regression", False)
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    class Encoded(torch.utils.data.Dataset):
        def __init__(self, path):
            if regression:
                pairs = read_stsb(path)
                first, second = [p[0] for p in pairs], [p[1] for p in pairs]
                labels = [p[2] for p in pairs]  # floats: Trainer's model takes them for MSE
            else:
                rows = read_tsv(path)
                first = [r[columns["text"]] for r in rows]
                second = [r[columns["text_pair"]] for r in rows] if columns["text_pair"] else None
                labels = [int(r[columns["label"]]) for r in rows]
            # Truncated to max_seq_length (pairs longest-first), not padded: DataCollatorWithPadding
            # pads each batch to its longest example.
            self.encoded = tokenizer(first, second, truncation=True, max_length=args.max_seq_length)
            self.labels = labels

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            item = {k: v[i] for k, v in self.encoded.items()}
            item["label"] = self.labels[i]
            return item

    train, dev = Encoded(args.train), Encoded(args.dev)
    set_seed(args.seed)  # the new classifier head is initialized under the seed, as Trainer would
    if regression:
        # One output trained with MSE, as run_glue does for STS-B.
        model = AutoModelForSequenceClassification.from_pretrained(
            args.model, num_labels=1, problem_type="regression")
    else:
        model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)

    def regression_metrics(prediction):
        from scipy.stats import pearsonr, spearmanr

        predicted = np.asarray(prediction.predictions, dtype=np.float64).reshape(-1)
        gold = np.asarray(prediction.label_ids, dtype=np.float64).reshape(-1)
        return {"pearson": float(pearsonr(predicted, gold)[0]),
                "spearmanr": float(spearmanr(predicted, gold).correlation)}

    def metrics(prediction):
        predicted = np.argmax(prediction.predictions, axis=-1)
        gold = prediction.label_ids
        tp = int(((predicted == 1) & (gold == 1)).sum())
        fp = int(((predicted == 1) & (gold == 0)).sum())
        fn = int(((predicted == 0) & (gold == 1)).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        return {"accuracy": float((predicted == gold).mean()), "f1": f1}

    training_args = TrainingArguments(
        output_dir=args.output_dir,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        num_train_epochs=args.epochs,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        max_grad_norm=1.0,
        seed=args.seed,
        use_cpu=True,
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=20,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=dev,
                      data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=regression_metrics if regression else metrics)
    trained = trainer.train()
    evaluated = trainer.evaluate()
    if regression:
        scores = {"pearson": evaluated["eval_pearson"], "spearmanr": evaluated["eval_spearmanr"]}
    else:
        scores = {"accuracy": evaluated["eval_accuracy"], "f1": evaluated["eval_f1"]}
    emit({
        **scores,
        "eval_loss": evaluated["eval_loss"], "steps": trained.global_step,
        "train_loss": trained.training_loss, "train_rows": len(train), "dev_rows": len(dev),
        "train_seconds": trained.metrics["train_runtime"],
        "eval_seconds": evaluated["eval_runtime"], "wall_seconds": time.time() - START,
    })


def stsb_st(args):
    import torch

    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    pairs = read_stsb(args.stsb)
    model = SentenceTransformer(args.model, device="cpu")
    encode = dict(batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
    first = model.encode([p[0] for p in pairs], **encode)
    second = model.encode([p[1] for p in pairs], **encode)
    result = spearman(first, second, [p[2] for p in pairs])
    result["wall_seconds"] = time.time() - START
    emit(result)


def stsb_score(args):
    pairs = read_stsb(args.stsb)
    vectors = []
    with open(args.vectors, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                vectors.append(json.loads(line)["vector"])
    if len(vectors) != 2 * len(pairs):
        sys.exit(f"{args.vectors}: {len(vectors)} vectors for {len(pairs)} pairs (expected "
                 f"{2 * len(pairs)}: every first sentence, then every second)")
    emit(spearman(vectors[:len(pairs)], vectors[len(pairs):], [p[2] for p in pairs]))


def versions(_):
    import importlib.metadata as metadata

    out = {}
    for name in ("torch", "transformers", "accelerate", "sentence-transformers", "tokenizers",
                 "safetensors", "scipy", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    emit(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("classify")
    c.add_argument("--task", choices=sorted(TASKS), required=True)
    c.add_argument("--model", required=True, help="model directory (a BertModel checkpoint)")
    c.add_argument("--train", required=True)
    c.add_argument("--dev", required=True)
    c.add_argument("--output-dir", required=True)
    c.add_argument("--learning-rate", type=float, default=5e-5)
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--eval-batch-size", type=int, default=64)
    c.add_argument("--epochs", type=float, default=1)
    c.add_argument("--max-seq-length", type=int, default=128)
    c.add_argument("--weight-decay", type=float, default=0.01)
    c.add_argument("--warmup-ratio", type=float, default=0.06)
    c.add_argument("--seed", type=int, default=42)
    c.add_argument("--threads", type=int, default=os.cpu_count())
    c.set_defaults(run=classify)
    s = commands.add_parser("stsb-st")
    s.add_argument("--model", required=True)
    s.add_argument("--stsb", required=True)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--threads", type=int, default=os.cpu_count())
    s.set_defaults(run=stsb_st)
    v = commands.add_parser("stsb-score")
    v.add_argument("--stsb", required=True)
    v.add_argument("--vectors", required=True, help="JSON lines with a 'vector' field")
    v.set_defaults(run=stsb_score)
    commands.add_parser("versions").set_defaults(run=versions)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
