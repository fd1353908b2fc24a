// Hugging Face tokenizers (npm `tokenizers`, the Rust library) reference for bench/run_all.sh:
// BERT uncased WordPiece from a vocab.txt, [CLS]/[SEP] added, over every line of a text file.
// Usage: node reference_tokenizer.js VOCAB TEXTS SECONDS [IDS_OUT]  -> one JSON line.
// Run it on one core (taskset) with RAYON_NUM_THREADS=1 so encodeBatch does not fan out.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const [vocabPath, textPath, secondsArg, idsOut] = process.argv.slice(2);
  const vocab = {};
  fs.readFileSync(vocabPath, 'utf8').split('\n').forEach((token, i) => {
    if (token.length > 0 && !(token in vocab)) vocab[token] = i;
  });
  const special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const json = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: special.map((content) => ({
      id: vocab[content], content, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
                  strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', vocab['[SEP]']],
                      cls: ['[CLS]', vocab['[CLS]']] },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
             max_input_chars_per_word: 100, vocab },
  };
  const tokenizer = Tokenizer.fromString(JSON.stringify(json));
  const texts = fs.readFileSync(textPath, 'utf8').split('\n').filter((l) => l.length > 0);
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  const first = await tokenizer.encodeBatch(texts);  // warm-up, and the ids to compare
  if (idsOut) fs.writeFileSync(idsOut, first.map((e) => e.getIds().join(' ')).join('\n') + '\n');
  const seconds = Number(secondsArg);
  let passes = 0;
  const start = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
  while (passes < 1 || elapsed() < seconds) {
    await tokenizer.encodeBatch(texts);
    ++passes;
  }
  const total = elapsed();
  console.log(JSON.stringify({
    impl: 'hf-tokenizers', version: require('tokenizers/package.json').version,
    texts: texts.length, bytes, passes, mb_per_s: (bytes * passes) / total / 1e6,
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
