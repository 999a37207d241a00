// corpus.js: deterministic (seeded) builders of tokenizer test strings, shared by gen.js (the
// reference vectors) and bench.js (the throughput text). Every builder takes the random source
// and returns one string.
'use strict';

// mulberry32: a small, fixed PRNG, so the same seed gives the same strings everywhere.
function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = (arr) => arr[Math.floor(next() * arr.length)];
  return { next, int, pick };
}

const WORDS = (
  'the of and to in is was that for it with as on be at by this had not are but from or have ' +
  'an they which one you were her all she there would their we him been has when who will more ' +
  'no if out so said what up its about into than them can only other new some could time these ' +
  'two may then do first any my now such like our over man me even most made after also did ' +
  'many before must through back years where much your way well down should because each just ' +
  'those people how too little state good very make world still own see men work long get here ' +
  'between both life being under never day same another know while last might us great old ' +
  'year off come since against go came right used take three tokenizer inference throughput ' +
  'latency kernel quantization transformer attention embedding gradient benchmark Zürich naïve ' +
  'café résumé coöperate façade jalapeño smörgåsbord Ελλάδα Москва Kraków İstanbul Ærø'
).split(' ');

const CONTRACTIONS = [
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Re", "'rE", "'VE", "'Ve",
  "'M", "'LL", "'Ll", "'lL", "'D", "\u2019s", "\u2019ll", "'x", "''", "'",
];
const PUNCT = ['.', ',', '!', '?', ';', ':', '...', '?!', ' -', ' \u2014 ', '"', '(', ')', '[', ']'];

const SCRIPTS = {
  cjk: '我们今天去公园散步天气很好这是一个测试句子人工智能模型推理速度非常快中华人民共和国北京上海' +
       '東京都渋谷区ひらがなカタカナ日本語の文章です漢字とかなを混ぜた文',
  hangul: '한국어문장입니다안녕하세요대한민국서울특별시토크나이저',
  arabic: 'مرحبا بالعالم هذه جملة عربية للاختبار اللغة العربية جميلة جدا',
  hebrew: 'שלום עולם זהו משפט בעברית לבדיקה שָׁלוֹם עֲבָרִית',
  devanagari: 'नमस्ते दुनिया यह हिंदी में एक परीक्षण वाक्य है भारत की राजधानी नई दिल्ली है',
  thai: 'สวัสดีชาวโลกนี่คือประโยคภาษาไทยสำหรับการทดสอบ',
  greek: 'Καλημέρα κόσμε αυτή είναι μια ελληνική πρόταση',
  cyrillic: 'Привет мир это русское предложение для проверки ЁЖИК ёжик',
  latin: 'ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿŁłŒœŠšŸŽž',
  symbols: '∀∂∃∅∇∈∉∋∏∑−∗√∝∞∠∧∨∩∪∫∴∼≅≈≠≡≤≥⊂⊃⊄⊆⊇⊕⊗⊥⋅←↑→↓↔⇒⇔★☆♠♣♥♦©®™€£¥§¶°±×÷',
  box: '─│┌┐└┘├┤┬┴┼═║╔╗╚╝╠╣╦╩╬▀▄█▌▐░▒▓■□▪▫',
};

const EMOJI = [
  '😀', '😂', '🥲', '👍', '👍🏽', '👋🏿', '🎉', '🚀', '🔥', '❤️', '❤', '✨', '🤖', '🧠', '🐍', '🦀',
  '👨\u200d👩\u200d👧\u200d👦', '👩\u200d💻', '🧑🏾\u200d🚀', '🏳️\u200d🌈', '🏴\u200d☠️', '👁️\u200d🗨️',
  '🇫🇷', '🇯🇵', '🇺🇸', '1️⃣', '#️⃣', '©️', '🫠', '🧑\u200d🤝\u200d🧑',
];

// Strings NFC changes: decomposed accents, singletons, Hangul jamo, reordered marks.
const NFC_CHANGES = [
  'e\u0301', 'E\u0300', 'a\u0308', 'o\u0302', 'n\u0303', 'c\u0327', 'A\u030a', 'u\u0308\u0301',
  '\u212b', '\u2126', '\u212a', '\u1100\u1161', '\u1100\u1161\u11a8', '\u1112\u1161\u11ab',
  'q\u0307\u0323', 's\u0323\u0307', '\u1e9b\u0323', '\u0958', '\u0915\u093c', '\u00c5\u0301',
  '\u0041\u0328\u0301', 'i\u0307', '\u03b1\u0301', '\u0435\u0308', '\u05e9\u05bc\u05c1',
];
const COMBINING = ['\u0300', '\u0301', '\u0302', '\u0303', '\u0308', '\u0323', '\u0327', '\u0331',
  '\u0336', '\u20dd', '\u0489', '\u093f', '\u0e31', '\u05b7', '\u064e'];

const SPACES = [' ', '  ', '   ', '\t', '\t\t', ' \t', '\n', '\n\n', '\r\n', '\r\n\r\n', '\r',
  '\u00a0', '\u3000', '\u2003', '\u2009', '\u202f', '\u205f', '\u1680', '\u2028', '\u2029',
  '\u000b', '\u000c', ' \n ', '    \n', '\n    ', '\t\n\t', '  \r\n  '];

const CODE = [
  (r) => `int ${id(r)}(int ${id(r)}, const char *${id(r)}) {\n    if (${id(r)} < ${r.int(0, 999)}) return -1;\n    return ${id(r)}[${r.int(0, 9)}] == '\\n';\n}\n`,
  (r) => `def ${id(r)}(${id(r)}, ${id(r)}=None):\n    """${sentence(r)}"""\n    for i in range(${r.int(1, 100)}):\n        yield {'${id(r)}': i ** 2, "x": [1, 2.5, -3e-4]}\n`,
  (r) => `const ${id(r)} = async (${id(r)}) => {\n\tconst res = await fetch(\`/api/\${${id(r)}}?q=${r.int(0, 99999)}\`);\n\treturn res.ok ? res.json() : null; // ${sentence(r)}\n};\n`,
  (r) => `fn ${id(r)}<'a>(${id(r)}: &'a str) -> Result<Vec<u8>, Box<dyn Error>> {\n    let ${id(r)} = ${id(r)}.as_bytes().iter().map(|b| b ^ 0x${r.int(16, 255).toString(16)}).collect::<Vec<_>>();\n    Ok(${id(r)})\n}\n`,
  (r) => `func (s *${cap(id(r))}) ${cap(id(r))}(ctx context.Context) error {\n\tif err := s.${id(r)}(ctx); err != nil {\n\t\treturn fmt.Errorf("${id(r)}: %w", err)\n\t}\n\treturn nil\n}\n`,
  (r) => `<div class="${id(r)}" id='${id(r)}-${r.int(1, 99)}'>\n  <a href="https://example.com/${id(r)}?a=1&amp;b=2">${sentence(r)}</a>\n</div>\n`,
  (r) => `SELECT ${id(r)}, COUNT(*) AS n FROM ${id(r)} WHERE ${id(r)} >= ${r.int(0, 5000)} AND name LIKE '%${id(r)}%' GROUP BY 1 ORDER BY n DESC;\n`,
  (r) => `#!/bin/sh\nset -eu\nfor f in ./${id(r)}/*.txt; do\n  grep -c '${id(r)}' "$f" || echo "none: $f" >&2\ndone\n`,
  (r) => `{"${id(r)}": [${r.int(0, 9999)}, ${r.next().toFixed(6)}, true, null], "${id(r)}": {"k": "v\\u00e9\\n"}}`,
  (r) => `\\begin{equation}\n  \\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}\n\\end{equation}\n`,
  (r) => `    ${id(r)} += 1;\r\n    ${id(r)}--;\r\n\t\t// ${sentence(r)}\r\n`,
];

function id(r) {
  const parts = ['get', 'set', 'buf', 'len', 'tok', 'ctx', 'node', 'user', 'item', 'value',
    'count', 'idx', 'parse', 'load', 'model', 'cache', 'x', 'y', 'data', 'handler'];
  let s = r.pick(parts);
  const n = r.int(0, 2);
  for (let i = 0; i < n; i++) s += r.pick(['_', '']) + r.pick(parts);
  return r.next() < 0.2 ? s + r.int(0, 99) : s;
}
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function sentence(r) {
  const n = r.int(3, 14);
  const w = [];
  for (let i = 0; i < n; i++) {
    let word = r.pick(WORDS);
    if (r.next() < 0.08) word = word.toUpperCase();
    if (r.next() < 0.06) word += r.pick(CONTRACTIONS);
    w.push(word);
    if (r.next() < 0.1) w.push(r.pick(PUNCT));
  }
  return cap(w.join(' ')) + r.pick(['.', '!', '?', '.', '."', ' ...', '']);
}

function scriptRun(r, name) {
  const chars = Array.from(SCRIPTS[name]);
  const start = r.int(0, chars.length - 1);
  const len = r.int(1, 40);
  let s = '';
  for (let i = 0; i < len; i++) s += chars[(start + i) % chars.length];
  return s;
}

function numbers(r) {
  const forms = [
    () => String(r.int(0, 9)),
    () => String(r.int(0, 1e9)),
    () => Array.from({ length: r.int(10, 80) }, () => r.int(0, 9)).join(''),
    () => (r.next() * 1e6).toFixed(r.int(0, 8)),
    () => r.int(1, 999) + ',' + String(r.int(0, 999)).padStart(3, '0') + ',' + String(r.int(0, 999)).padStart(3, '0'),
    () => `+1 (${r.int(200, 999)}) ${r.int(200, 999)}-${r.int(1000, 9999)}`,
    () => `${r.int(1990, 2030)}-${String(r.int(1, 12)).padStart(2, '0')}-${String(r.int(1, 28)).padStart(2, '0')}T${r.int(10, 23)}:${r.int(10, 59)}:00Z`,
    () => `${r.int(-500, 500)}e${r.int(-30, 30)}`,
    () => '0x' + r.int(0, 0x7fffffff).toString(16).toUpperCase(),
    () => '٣٤٥٦' + r.int(0, 99) + '०१२३४' + '１２３' + '²³¹' + '½¼¾' + 'ⅠⅡⅢⅫ',
    () => `v${r.int(0, 9)}.${r.int(0, 99)}.${r.int(0, 999)}-rc${r.int(1, 9)}`,
    () => `${r.int(1, 99)}%${r.pick(['', ' ', '  '])}${r.int(1, 9999)}$ ${r.int(1, 99)}€ £${r.int(1, 99)}.${r.int(10, 99)}`,
  ];
  const n = r.int(1, 6);
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(r.pick(forms)());
  return parts.join(r.pick([' ', '', ', ', '\n', '\t', ' and ', '-']));
}

function whitespace(r) {
  const n = r.int(1, 10);
  let s = r.next() < 0.3 ? r.pick(SPACES) : '';
  for (let i = 0; i < n; i++) {
    s += r.pick([r.pick(WORDS), r.pick(PUNCT), String(r.int(0, 99)), scriptRun(r, r.pick(['cjk', 'cyrillic']))]);
    let ws = r.pick(SPACES);
    if (r.next() < 0.3) ws = ws.repeat(r.int(2, 12));
    s += ws;
  }
  if (r.next() < 0.5) s = s.replace(/\s+$/u, '');
  return s;
}

function crlf(r) {
  const n = r.int(2, 8);
  const lines = [];
  for (let i = 0; i < n; i++) lines.push(r.next() < 0.2 ? '' : sentence(r));
  return lines.join(r.pick(['\r\n', '\r\n\r\n', '\n', '\r'])) + (r.next() < 0.5 ? '\r\n' : '');
}

function emoji(r) {
  const n = r.int(1, 12);
  let s = '';
  for (let i = 0; i < n; i++) {
    s += r.pick(EMOJI);
    if (r.next() < 0.4) s += r.pick([' ', '', 'ok', ' yes!', '\n', r.pick(WORDS) + ' ']);
  }
  return s;
}

function scripts(r) {
  const names = Object.keys(SCRIPTS);
  const n = r.int(1, 5);
  const parts = [];
  for (let i = 0; i < n; i++) {
    const name = r.pick(names);
    parts.push(r.next() < 0.5 ? scriptRun(r, name) : SCRIPTS[name]);
  }
  return parts.join(r.pick([' ', '', '。', '، ', '\n', ' - ', '「', '123']));
}

function nfcChanges(r) {
  const n = r.int(1, 8);
  let s = '';
  for (let i = 0; i < n; i++) {
    s += r.pick([r.pick(NFC_CHANGES), r.pick(WORDS), ' ', r.pick(WORDS) + r.pick(COMBINING),
      r.pick(COMBINING), r.pick(COMBINING) + r.pick(COMBINING), scriptRun(r, 'latin')]);
  }
  return s;
}

function contractions(r) {
  const subj = ['I', 'you', 'He', 'SHE', 'it', 'We', 'THEY', "that", 'Who', 'there', 'y', 'o',
    'don', 'can', 'WON', 'isn', 'rock', 'n'];
  const n = r.int(1, 6);
  const parts = [];
  for (let i = 0; i < n; i++) {
    let s = r.pick(subj) + r.pick(CONTRACTIONS);
    if (r.next() < 0.3) s = r.pick(CONTRACTIONS) + r.pick(WORDS);
    if (r.next() < 0.2) s = s.toUpperCase();
    parts.push(s);
  }
  return parts.join(r.pick([' ', '', ', ', "' ", ' \'', '\n']));
}

function longWord(r) {
  const len = r.int(50, 3000);
  const kind = r.int(0, 7);
  if (kind === 0) return 'a'.repeat(len);
  if (kind === 1) return Array.from({ length: len }, () => String.fromCharCode(97 + r.int(0, 25))).join('');
  if (kind === 2) return 'supercalifragilisticexpialidocious'.repeat(Math.ceil(len / 34)).slice(0, len);
  if (kind === 3) return Array.from({ length: len }, () => r.int(0, 9)).join('');
  if (kind === 4) return r.pick(['=', '-', '.', '*', '#', '!', '~']).repeat(len);
  if (kind === 5) return ' '.repeat(len) + r.pick(['', 'x', '\n']);
  if (kind === 6) return Array.from({ length: Math.ceil(len / 3) }, () => r.pick(Array.from(SCRIPTS.cjk))).join('');
  return 'ab'.repeat(len >> 1) + 'Ünïcödé'.repeat(r.int(1, 30));
}

const MARKERS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>',
  '<|box_end|>', '<|vision_pad|>', '<tool_call>', '</tool_call>', '<|fim_prefix|>',
  '<|fim_middle|>', '<|fim_suffix|>', '<|repo_name|>', '<|file_sep|>',
  '<|im_start', 'im_end|>', '<|im_start|', '<||>', '< |im_end|>', '<|IM_END|>', '<<|im_end|>>'];

function chatMarkers(r) {
  if (r.next() < 0.4) {
    const turns = r.int(1, 4);
    let s = r.next() < 0.5 ? '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' : '';
    for (let i = 0; i < turns; i++) {
      s += `<|im_start|>user\n${sentence(r)}<|im_end|>\n`;
      s += `<|im_start|>assistant\n${r.next() < 0.3 ? '<tool_call>\n{"name": "f"}\n</tool_call>' : sentence(r)}<|im_end|>\n`;
    }
    return s + (r.next() < 0.5 ? '<|im_start|>assistant\n' : '<|endoftext|>');
  }
  const n = r.int(1, 6);
  let s = '';
  for (let i = 0; i < n; i++)
    s += r.pick([r.pick(MARKERS), r.pick(WORDS), ' ', '\n', r.pick(MARKERS) + r.pick(MARKERS), r.pick(EMOJI)]);
  return s;
}

function prose(r) {
  const n = r.int(1, 6);
  const s = [];
  for (let i = 0; i < n; i++) s.push(sentence(r));
  return s.join(r.pick([' ', '  ', '\n', '\n\n']));
}

function mixed(r) {
  const builders = [prose, numbers, whitespace, emoji, scripts, nfcChanges, contractions, (q) => q.pick(CODE)(q)];
  const n = r.int(2, 4);
  let s = '';
  for (let i = 0; i < n; i++) s += r.pick(builders)(r) + r.pick(['', ' ', '\n']);
  return s;
}

// Fixed edge cases, taken as they are.
const FIXED = [
  '', ' ', '  ', '\n', '\r\n', '\t', 'a', "'", "''", "'s", "'S", "'ll'", "'re're", "a's'b",
  '  a', 'a  ', ' \n', '\n ', ' \n\n ', '\u00a0a', '\u3000\u3000x', 'x\u2028y', '1 2  3   4',
  '...', ' ...', ' ...\n', '!!\r\n\r\n', '  !!', '\t\tfoo', '\t\t\n', '\u00e9', 'e\u0301',
  '\u0301', ' \u0301', '\u0301a', 'a\u0301\u0301', '💩', ' 💩', '💩💩', '\u200d', 'a\u200db',
  '<|im_end|>', '<|im_end|><|im_end|>', 'x<|endoftext|>y', '<|im_start|>user\nhi<|im_end|>',
  '\u0000', 'a\u0000b', '\u007f', '\u001b[31mred\u001b[0m', 'Hello, world!', 'What is the capital of France?',
];

// Returns the list of cases: { kind, mode: 'P' | 'T', text }.
function buildCases(r) {
  const plan = [
    ['prose', prose, 500], ['code', (q) => q.pick(CODE)(q), 350], ['numbers', numbers, 250],
    ['whitespace', whitespace, 300], ['crlf', crlf, 120], ['emoji', emoji, 200],
    ['scripts', scripts, 450], ['nfc', nfcChanges, 250], ['contractions', contractions, 250],
    ['long', longWord, 80], ['mixed', mixed, 300],
  ];
  const cases = [];
  for (const text of FIXED) {
    cases.push({ kind: 'fixed', mode: 'T', text });
    cases.push({ kind: 'fixed', mode: 'P', text });
  }
  for (const [kind, fn, count] of plan)
    for (let i = 0; i < count; i++)
      cases.push({ kind, mode: r.next() < 0.1 ? 'P' : 'T', text: fn(r) });
  for (let i = 0; i < 200; i++) {
    const text = chatMarkers(r);
    cases.push({ kind: 'chat-markers', mode: 'P', text });
    cases.push({ kind: 'chat-markers', mode: 'T', text });
  }
  return cases;
}

// Conversations for the chat template: { gen, messages: [{ role, content }] }.
function buildChats(r) {
  const content = [prose, mixed, scripts, emoji, whitespace, (q) => q.pick(CODE)(q), () => ''];
  const chats = [{ gen: true, messages: [] }, { gen: false, messages: [] }];
  for (let i = 0; i < 150; i++) {
    const messages = [];
    if (r.next() < 0.4) messages.push({ role: 'system', content: r.pick(content)(r) });
    const turns = r.int(1, 4);
    for (let t = 0; t < turns; t++) {
      messages.push({ role: 'user', content: r.pick(content)(r) });
      if (r.next() < 0.15) {
        const k = r.int(1, 3);
        for (let j = 0; j < k; j++) messages.push({ role: 'tool', content: r.pick(content)(r) });
      }
      if (r.next() < 0.05) messages.push({ role: 'system', content: prose(r) });
      if (t + 1 < turns || r.next() < 0.3) messages.push({ role: 'assistant', content: r.pick(content)(r) });
    }
    chats.push({ gen: r.next() < 0.8, messages });
  }
  return chats;
}

module.exports = { makeRng, buildCases, buildChats, prose, mixed, CODE };
