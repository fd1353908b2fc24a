"""Hugging Face tokenizers reference for bench/run_all.sh (PyPI `tokenizers`, the Rust library
through its Python bindings, pinned in run_all.sh): BERT uncased WordPiece from a vocab.txt,
[CLS]/[SEP] added, over every line of a text file.

Usage: python reference_tokenizer.py VOCAB TEXTS SECONDS [IDS_OUT]  -> one JSON line on stdout.
Run it on one core (taskset) with RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false so that
encode_batch does not fan out, with the interpreter of the venv run_all.sh creates.
"""
import json
import sys
import time

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, \
    processors

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def read_lines(path):
    # Split on "\n" only (a "\r" stays part of the line); invalid UTF-8 becomes U+FFFD.
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return f.read().split("\n")


def build(vocab_path):
    # A token's id is its line number; blank lines take an id but no token; the first of
    # duplicate lines wins.
    vocab = {}
    for i, token in enumerate(read_lines(vocab_path)):
        if token and token not in vocab:
            vocab[token] = i
    missing = [t for t in SPECIAL if t not in vocab]
    if missing:
        sys.exit(f"reference_tokenizer: {vocab_path} lacks {' '.join(missing)}")
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", vocab["[SEP]"]),  # (sep, cls)
                                                   ("[CLS]", vocab["[CLS]"]))
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    # Already in the vocabulary, so they keep their ids; special: never split, skipped on decode.
    tok.add_special_tokens([AddedToken(t, single_word=False, lstrip=False, rstrip=False,
                                       normalized=False, special=True) for t in SPECIAL])
    return tok


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: reference_tokenizer.py VOCAB TEXTS SECONDS [IDS_OUT]")
    vocab_path, text_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ids_out = sys.argv[4] if len(sys.argv) == 5 else None
    tokenizer = build(vocab_path)
    texts = [line for line in read_lines(text_path) if line]
    size = sum(len(t.encode("utf-8")) for t in texts)

    first = tokenizer.encode_batch(texts)  # warm-up, and the ids to compare
    if ids_out:
        with open(ids_out, "w", encoding="utf-8", newline="") as f:
            f.write("\n".join(" ".join(map(str, e.ids)) for e in first) + "\n")
    passes = 0
    start = time.perf_counter_ns()
    while passes < 1 or (time.perf_counter_ns() - start) / 1e9 < seconds:
        tokenizer.encode_batch(texts)
        passes += 1
    total = (time.perf_counter_ns() - start) / 1e9
    print(json.dumps({
        "impl": "hf-tokenizers", "version": tokenizers.__version__,
        "texts": len(texts), "bytes": size, "passes": passes,
        "mb_per_s": size * passes / total / 1e6,
    }), flush=True)


if __name__ == "__main__":
    main()
