#!/usr/bin/env python3
"""test_run.py: the run command as users run it, on the ta-f32 fixture.

Greedy requests for two golden prompts must print the reference's greedy continuation (the
goldens JSON, from Hugging Face transformers in float64), decoded here from the fixture's own
vocabulary with a small GGUF reader and the GPT-2 byte map; stderr must end with the figures line.
Then stop strings, determinism of seeded sampling, --logprobs, --chat, and the error exits of bad
flag values (each message must name the flag).

Usage: test_run.py SOURCE_DIR BUILD_DIR (exit 77 when the binary or data is missing)."""
import json
import os
import re
import struct
import subprocess
import sys

SRC, BUILD = sys.argv[1], sys.argv[2]
BIN = os.path.join(BUILD, "bin", "worker-orcd")
MODEL = os.path.join(SRC, "tests", "data", "fixtures", "ta-f32.gguf")
GOLDEN = os.path.join(SRC, "tests", "data", "goldens", "ta-f32.json")

FIGURES = re.compile(r"^prompt (\d+) tokens, [0-9.]+ tok/s \| generated (\d+) tokens, [0-9.]+ tok/s"
                     r" \| first token [0-9.]+ ms \| finish (\w+)$")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(args):
    return subprocess.run([BIN, "run", "-m", MODEL] + args, capture_output=True, timeout=300)


def figures(r):
    """The last stderr line parsed as the figures line, or None."""
    lines = r.stderr.decode(errors="replace").rstrip("\n").split("\n")
    m = FIGURES.match(lines[-1]) if lines else None
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else None


# ---- the fixture's vocabulary, read straight from the GGUF metadata ----

def gguf_tokens(path):
    with open(path, "rb") as f:
        buf = f.read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<IIQQ", buf, 0)
    assert magic == 0x46554747 and version in (2, 3)
    off = 24
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string(o):
        n = struct.unpack_from("<Q", buf, o)[0]
        return buf[o + 8:o + 8 + n], o + 8 + n

    def skip(t, o):
        if t == 8:
            return string(o)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", buf, o)
            o += 12
            for _ in range(n):
                o = skip(et, o)
            return o
        return o + sizes[t]

    for _ in range(n_kv):
        key, off = string(off)
        t = struct.unpack_from("<I", buf, off)[0]
        off += 4
        if key == b"tokenizer.ggml.tokens":
            et, n = struct.unpack_from("<IQ", buf, off)
            off += 12
            toks = []
            for _ in range(n):
                s, off = string(off)
                toks.append(s.decode("utf-8"))
            return toks
        off = skip(t, off)
    raise KeyError("tokenizer.ggml.tokens")


def byte_decoder():
    """GPT-2's byte-to-unicode map, inverted: printable bytes map to themselves, the rest to
    code points from 256 up, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def decode(tokens, ids):
    dec = byte_decoder()
    return bytes(dec[ch] for i in ids for ch in tokens[i])


def greedy_goldens(tokens):
    with open(GOLDEN) as f:
        gold = json.load(f)["prompts"]
    # Prompt texts that encode to exactly the golden ids (checked: the figures line must report
    # the same number of prompt tokens, and the decode of the ids must give the text back).
    cases = [("one", "The"), ("short", "The is the' of?\n")]
    for name, text in cases:
        ids = gold[name]["ids"]
        check(decode(tokens, ids) == text.encode(), "%s: ids decode to the prompt text" % name)
        want = decode(tokens, gold[name]["greedy"])
        r = run(["-p", text, "-n", "16", "--ignore-eos", "--temp", "0"])
        check(r.returncode == 0, "%s: exit %d: %s" % (name, r.returncode, r.stderr))
        check(r.stdout == want, "%s: printed %r, reference %r" % (name, r.stdout, want))
        fig = figures(r)
        check(fig == (len(ids), 16, "length"), "%s: figures %s" % (name, fig))
        print("greedy %-5s -> %r %s" % (name, r.stdout.decode(errors="replace"),
                                         "ok" if r.stdout == want else "MISMATCH"))
    return decode(tokens, gold["one"]["greedy"])


def stop_strings(full):
    # full is the greedy text for "The": the stop string is cut with what follows it.
    stop = full[3:6].decode()
    r = run(["-p", "The", "-n", "16", "--ignore-eos", "--stop", stop])
    check(r.returncode == 0 and r.stdout == full[:full.index(stop.encode())],
          "stop %r: printed %r" % (stop, r.stdout))
    check(figures(r) is not None and figures(r)[2] == "stop_string",
          "stop: figures %s" % (figures(r),))
    r = run(["-p", "The", "-n", "16", "--ignore-eos", "--stop", "never", "--stop", "x\u00e9"])
    check(r.returncode == 0 and r.stdout == full, "unmatched stops: printed %r" % r.stdout)


def sampling():
    args = ["-p", "The is", "-n", "24", "--ignore-eos", "--temp", "1.2", "--top-k", "50",
            "--top-p", "0.95", "--min-p", "0.01", "--repeat-penalty", "1.1",
            "--presence-penalty", "0.2", "--frequency-penalty", "0.1"]
    a = run(args + ["--seed", "11"])
    b = run(args + ["--seed", "11"])
    c = run(args + ["--seed", "12"])
    check(a.returncode == 0 and b.returncode == 0 and c.returncode == 0, "sampling runs")
    check(a.stdout == b.stdout, "same seed, same text")
    check(figures(a) is not None and figures(a)[1] == 24, "sampling figures %s" % (figures(a),))
    print("sampled (seed 11): %r; seed 12 %s" % (a.stdout.decode(errors="replace"),
                                               "differs" if a.stdout != c.stdout else "same"))
    r = run(["-p", "The", "-n", "4", "--ignore-eos", "--logprobs", "3"])
    lines = r.stderr.decode().rstrip("\n").split("\n")
    check(r.returncode == 0 and len(lines) == 5, "logprobs: %d stderr lines" % len(lines))
    for i, line in enumerate(lines[:4]):
        cols = line.split("\t")
        check(cols[0] == str(i) and cols[1] == "22" and float(cols[2]) <= 0 and
              cols[4].count(",") == 2, "logprobs line %r" % line)
    r = run(["--chat", "Hello", "-n", "8", "--system", "Be brief."])
    check(r.returncode == 0 and figures(r) is not None, "chat: exit %d %s" % (r.returncode,
                                                                             r.stderr[-200:]))


BAD = [
    (["-p", "x", "--temp", "-0.5"], "--temp"),
    (["-p", "x", "--temp", "1e9"], "--temp"),
    (["-p", "x", "--temp", "warm"], "--temp"),
    (["-p", "x", "--top-k", "-1"], "--top-k"),
    (["-p", "x", "--top-k", "3x"], "--top-k"),
    (["-p", "x", "--top-k", "99999"], "--top-k"),
    (["-p", "x", "--top-p", "0"], "--top-p"),
    (["-p", "x", "--top-p", "1.01"], "--top-p"),
    (["-p", "x", "--min-p", "1"], "--min-p"),
    (["-p", "x", "--repeat-penalty", "0"], "--repeat-penalty"),
    (["-p", "x", "--repeat-penalty", "inf"], "--repeat-penalty"),
    (["-p", "x", "--repeat-last-n", "-2"], "--repeat-last-n"),
    (["-p", "x", "--presence-penalty", "2.5"], "--presence-penalty"),
    (["-p", "x", "--frequency-penalty", "nan"], "--frequency-penalty"),
    (["-p", "x", "--seed", "-1"], "--seed"),
    (["-p", "x", "--seed", "18446744073709551616"], "--seed"),
    (["-p", "x", "--logprobs", "21"], "--logprobs"),
    (["-p", "x", "-n", "0"], "-n"),
    (["-p", "x", "-n", ""], "-n"),
    (["-p", "x", "--ctx", "0"], "--ctx"),
    (["-p", "x", "--ctx", "100000000"], "--ctx"),
    (["-p", "x", "--threads", "0"], "--threads"),
    (["-p", "x", "--backend", "tpu"], "--backend"),
    (["-p", "x", "--stop", ""], "--stop"),
    (["-p", "x", "--stop", "a"] * 9, "--stop"),
    (["-p", "x", "--bogus", "1"], "--bogus"),
    (["-p", "x", "--system", "s"], "--system"),
    (["-p", "x", "--chat", "y"], "--chat"),
    ([], "-p"),
]


def bad_flags():
    for args, flag in BAD:
        r = run(args)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 2 and flag in err.split("\n")[0] and r.stdout == b"",
              "%s: exit %d, %r" % (" ".join(args), r.returncode, err.split("\n")[0]))
    r = subprocess.run([BIN, "run", "-m", "/nonexistent/model.gguf", "-p", "x"],
                       capture_output=True, timeout=60)
    check(r.returncode == 1 and b"/nonexistent/model.gguf" in r.stderr,
          "missing model: exit %d %r" % (r.returncode, r.stderr))
    r = run(["-p", "x" * 600, "--ctx", "8"])
    check(r.returncode == 2 and b"--ctx" in r.stderr, "prompt over --ctx: %r" % r.stderr)
    print("bad flags: %d cases" % (len(BAD) + 2))


def main():
    if not os.path.exists(BIN) or not os.path.exists(MODEL):
        print("skipped: %s or %s missing" % (BIN, MODEL))
        return 77
    tokens = gguf_tokens(MODEL)
    full = greedy_goldens(tokens)
    stop_strings(full)
    sampling()
    bad_flags()
    if failures:
        print("%d failures" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
