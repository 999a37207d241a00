#!/usr/bin/env python3
"""test_tokenize.py: the tokenize and detokenize commands as users run them.

Checks, against references nobody here wrote: llama.cpp's 46 published Qwen2 vectors through
--split; the generated vectors of the JavaScript reference (scripts/tokref/gen.js, soup.py) in batches
through --split and --special; --chat against conversations rendered by the reference's Jinja run
of the upstream template; detokenize back to the exact bytes; and the error exits.

Usage: test_tokenize.py SOURCE_DIR BUILD_DIR (exit 77 when the binary or data is missing)."""
import os
import subprocess
import sys

SRC, BUILD = sys.argv[1], sys.argv[2]
BIN = os.path.join(BUILD, "bin", "worker-orcd")
VOCAB = os.path.join(BUILD, "testdata", "tokenizer", "qwen2.5-vocab.gguf")
VECTORS = os.path.join(BUILD, "testdata", "tokenizer", "lenml-qwen2.5.tsv")
SOUP = os.path.join(BUILD, "testdata", "tokenizer", "lenml-qwen2.5-soup.tsv")
CHATS = os.path.join(BUILD, "testdata", "tokenizer", "lenml-qwen2.5-chat.tsv")
DATA = os.path.join(SRC, "tests", "data", "tokenizer")
MARK = "__tokref_case__"

failures = []


def run(args, data):
    return subprocess.run([BIN] + args, input=data, capture_output=True, timeout=300)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def ids_of(line):
    return [int(x) for x in line.split()]


def published_vectors():
    with open(os.path.join(DATA, "qwen2-vectors.inp"), "rb") as f:
        inp = f.read()
    with open(os.path.join(DATA, "qwen2-vectors.out")) as f:
        want = [ids_of(line) for line in f.read().split("\n")[:-1]]
    r = run(["tokenize", "-m", VOCAB, "--split", "__ggml_vocab_test__"], inp)
    check(r.returncode == 0, "split exit %d: %s" % (r.returncode, r.stderr))
    got = [ids_of(line) for line in r.stdout.decode().split("\n")[:-1]]
    check(len(got) == 46, "46 pieces, got %d" % len(got))
    same = sum(g == w for g, w in zip(got, want))
    print("published vectors: %d of %d match" % (same, len(want)))
    check(same == 46, "published vectors: %d of 46 match" % same)


def load_vectors(path):
    cases = []
    with open(path) as f:
        for line in f:
            mode, text, ids, nfc = line.rstrip("\n").split("\t")
            text = bytes.fromhex(text)
            nfc = text if nfc == "=" else bytes.fromhex(nfc)
            cases.append((mode, text, ids_of(ids), nfc))
    return cases


def generated_vectors(cases):
    for mode, flags in (("T", []), ("P", ["--special"])):
        batch = [c for c in cases if c[0] == mode and MARK.encode() not in c[1]]
        if not batch:
            continue
        data = b"".join(c[1] + b"\n" + MARK.encode() + b"\n" for c in batch)
        r = run(["tokenize", "-m", VOCAB, "--split", MARK] + flags, data)
        check(r.returncode == 0, "batch %s exit %d: %s" % (mode, r.returncode, r.stderr))
        got = [ids_of(line) for line in r.stdout.decode().split("\n")[:-1]]
        same = sum(g == c[2] for g, c in zip(got, batch))
        print("generated vectors (%s): %d of %d match" % (mode, same, len(batch)))
        check(len(got) == len(batch) and same == len(batch), "generated vectors %s" % mode)


def detokenize(cases):
    sample = cases[::80]
    for mode, text, ids, nfc in sample:
        r = run(["detokenize", "-m", VOCAB, "--special"], " ".join(map(str, ids)).encode())
        check(r.returncode == 0 and r.stdout == nfc, "detokenize of %r" % text[:40])
    print("detokenize: %d cases checked" % len(sample))
    r = run(["detokenize", "-m", VOCAB], b"151644 872 198 6023 151645\n")
    check(r.stdout == b"user\nhi", "special tokens hidden: %r" % r.stdout)
    r = run(["detokenize", "-m", VOCAB, "--special"], b"151644 872 198 6023 151645")
    check(r.stdout == b"<|im_start|>user\nhi<|im_end|>", "special tokens shown: %r" % r.stdout)


def chat():
    checked = 0
    with open(CHATS) as f:
        for line in f:
            gen, msgs, text, ids = line.rstrip("\n").split("\t")
            parts = [m.split("=", 1) for m in msgs.split(",")] if msgs else []
            roles = [p[0] for p in parts]
            if gen != "1" or roles not in (["user"], ["system", "user"]):
                continue
            contents = [bytes.fromhex(p[1]) for p in parts]
            if any(b"\0" in c for c in contents):
                continue
            args = ["tokenize", "-m", VOCAB, "--chat"]
            if roles[0] == "system":
                args += ["--system", contents[0].decode()]
            r = run(args, contents[-1])
            check(r.returncode == 0 and ids_of(r.stdout.decode()) == ids_of(ids),
                  "chat %r" % contents[-1][:40])
            checked += 1
    print("chat: %d conversations checked" % checked)
    check(checked >= 5, "chat: only %d single-turn conversations" % checked)
    r = run(["tokenize", "-m", VOCAB, "--chat"], b"hi")
    want = ("151644 8948 198 2610 525 1207 16948 11 3465 553 54364 14817 13 1446 525 264 10950 "
            "17847 13 151645 198 151644 872 198 6023 151645 198 151644 77091 198")
    check(r.stdout.decode().split() == want.split(), "chat 'hi': %r" % r.stdout)


def errors():
    r = run(["tokenize", "-m", VOCAB], b"ok \xc0\xaf")
    check(r.returncode == 1 and b"byte offset 3" in r.stderr, "invalid UTF-8: %r" % r.stderr)
    r = run(["tokenize"], b"x")
    check(r.returncode == 2, "missing -m exits 2")
    r = run(["tokenize", "-m", os.path.join(SRC, "no-such-file.gguf")], b"x")
    check(r.returncode == 1 and r.stderr, "missing file exits 1")
    r = run(["detokenize", "-m", VOCAB], b"12 abc")
    check(r.returncode == 1 and b"abc" in r.stderr, "bad id: %r" % r.stderr)
    r = run(["detokenize", "-m", VOCAB], b"999999")
    check(r.returncode == 1 and b"999999" in r.stderr, "id out of range: %r" % r.stderr)


def main():
    for path in (BIN, VOCAB, VECTORS, SOUP, CHATS):
        if not os.path.exists(path):
            print("skipped: %s is missing" % path)
            return 77
    published_vectors()
    cases = load_vectors(VECTORS)
    generated_vectors(cases)
    generated_vectors(load_vectors(SOUP))
    detokenize(cases)
    chat()
    errors()
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
