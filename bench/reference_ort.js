// ONNX Runtime reference for bench/run_all.sh: runs the model exported by reference_torch.py
// (random bert-base weights) with onnxruntime-node, default graph optimizations, N intra-op threads.
// Usage: node reference_ort.js MODEL.onnx BATCH SEQ THREADS SECONDS  -> one JSON line.
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const [model, batchArg, seqArg, threadsArg, secondsArg] = process.argv.slice(2);
  const batch = Number(batchArg), seq = Number(seqArg), threads = Number(threadsArg);
  const seconds = Number(secondsArg);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const n = batch * seq;
  const ids = new BigInt64Array(n), mask = new BigInt64Array(n), types = new BigInt64Array(n);
  for (let i = 0; i < n; ++i) {
    ids[i] = BigInt(1000 + ((i * 7919) % 29000));
    mask[i] = 1n;
  }
  const feeds = {
    input_ids: new ort.Tensor('int64', ids, [batch, seq]),
    attention_mask: new ort.Tensor('int64', mask, [batch, seq]),
    token_type_ids: new ort.Tensor('int64', types, [batch, seq]),
  };
  await session.run(feeds);  // warm-up
  const times = [];
  const start = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
  while (times.length < 2 || elapsed() < seconds) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(JSON.stringify({
    impl: 'onnxruntime-node', version: require('onnxruntime-node/package.json').version,
    threads, batch, seq, seconds_per_batch: mean, iterations: times.length,
    seq_per_s: batch / mean, tokens_per_s: batch * seq / mean,
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
