#!/usr/bin/env python3
"""worker-orcd inspect, driven as a user would: for every fixture, `inspect --json` must give the
tensor-type census recorded in tests/data/goldens/MODEL.json (computed by llama.cpp's gguf-py, not
by worker-orcd) and that golden's vocabulary size; the text form must run; corrupt files must exit
non-zero with a message on stderr.

Usage: test_inspect.py SOURCE_DIR BUILD_DIR
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile


def gguf_with_strings(path):
    """A qwen2-less GGUF (no tensors) whose strings need JSON escaping, whose keys include one
    that is not UTF-8, and whose float is NaN. Returns the values written."""
    def gstr(b):
        return struct.pack("<Q", len(b)) + b
    values = {
        b"s.ctl": b'a"b\\c\n\x01\x7f\t',
        b"s.utf8": "h\u00e9llo \u4f60\u597d \U0001F600".encode(),
        b"s.bad": b"\xff\xfe ok \xc0\x80",
    }
    body = b""
    for k, v in values.items():
        body += gstr(k) + struct.pack("<I", 8) + gstr(v)
    body += gstr(b"k.\xff") + struct.pack("<I", 0) + b"\x07"
    body += gstr(b"f.nan") + struct.pack("<I", 6) + struct.pack("<f", math.nan)
    arr = [str(i).encode() * (i % 3 + 1) for i in range(20)]
    body += gstr(b"a.str") + struct.pack("<IIQ", 9, 8, len(arr)) + b"".join(gstr(x) for x in arr)
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, len(values) + 3)
    with open(path, "wb") as fp:
        fp.write(head + body)
    return values, arr


def check_escaping(binary, failures):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "strings.gguf")
        values, arr = gguf_with_strings(path)
        r = run(binary, path, "--json")
        if r.returncode != 1 or b"not a usable model" not in r.stderr:
            failures.append(f"strings.gguf: exit {r.returncode}")
        try:
            md = json.loads(r.stdout)["metadata"]
        except ValueError as e:
            failures.append(f"strings.gguf: output is not JSON: {e}")
            return
        for k, v in values.items():
            got = md[k.decode()]["value"]
            try:
                want = v.decode("utf-8")
            except UnicodeDecodeError:
                want = {"hex": v.hex()}
            if got != want:
                failures.append(f"strings.gguf: {k} -> {got!r}, expected {want!r}")
        if md.get("hex:6b2eff", {}).get("value") != 7:
            failures.append("strings.gguf: the non-UTF-8 key is not reported as hex:6b2eff")
        if md["f.nan"]["value"] != "nan":
            failures.append(f"strings.gguf: NaN -> {md['f.nan']}")
        a = md["a.str"]
        if a["count"] != 20 or a["head"] != [x.decode() for x in arr[:len(a["head"])]] or \
                not a["head"]:
            failures.append(f"strings.gguf: array summary {a}")
        t = run(binary, path)
        if b"not a usable model" not in t.stderr or b"s.bad string" not in t.stdout:
            failures.append("strings.gguf: text form")


def run(binary, *args):
    return subprocess.run([binary, "inspect", *args], capture_output=True, timeout=120)


def main():
    src, build = sys.argv[1], sys.argv[2]
    binary = os.path.join(build, "bin", "worker-orcd")
    if not os.path.exists(binary):
        print(f"skipped: {binary} not built")
        return 77
    fixtures = os.path.join(src, "tests", "data", "fixtures")
    goldens = os.path.join(src, "tests", "data", "goldens")
    corrupt = os.path.join(src, "tests", "data", "corrupt")
    failures = []
    checked = 0

    for name in sorted(os.listdir(fixtures)):
        if not name.endswith(".gguf"):
            continue
        model = name[:-len(".gguf")]
        with open(os.path.join(goldens, model + ".json")) as fp:
            golden = json.load(fp)
        r = run(binary, os.path.join(fixtures, name), "--json")
        if r.returncode != 0:
            failures.append(f"{name}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
            continue
        try:
            out = json.loads(r.stdout)
        except ValueError as e:
            failures.append(f"{name}: output is not JSON: {e}")
            continue
        if out.get("tensor_types") != golden["tensor_types"]:
            failures.append(f"{name}: tensor_types {out.get('tensor_types')} != golden "
                            f"{golden['tensor_types']}")
        if out["n_tensors"] != sum(golden["tensor_types"].values()) or \
                len(out["tensors"]) != out["n_tensors"]:
            failures.append(f"{name}: tensor count {out['n_tensors']} does not match the census")
        cfg = out.get("config") or {}
        if cfg.get("n_vocab") != golden["n_vocab"]:
            failures.append(f"{name}: config n_vocab {cfg.get('n_vocab')} != {golden['n_vocab']}")
        if out["file_size"] != os.path.getsize(os.path.join(fixtures, name)) or out["error"]:
            failures.append(f"{name}: file_size or error field wrong")
        tokens = out["metadata"]["tokenizer.ggml.tokens"]
        if tokens["type"] != "array" or tokens["count"] != golden["n_vocab"] or \
                len(tokens["head"]) == 0:
            failures.append(f"{name}: tokenizer.ggml.tokens summary wrong: {tokens}")
        t = run(binary, os.path.join(fixtures, name))
        if t.returncode != 0 or b"block types:" not in t.stdout:
            failures.append(f"{name}: text form failed (exit {t.returncode})")
        checked += 1

    with open(os.path.join(corrupt, "MANIFEST.tsv")) as fp:
        rows = [line.rstrip("\n").split("\t") for line in fp if not line.startswith("#")]
    n_corrupt = 0
    for fname, status, expect in rows:
        r = run(binary, os.path.join(corrupt, fname), "--json")
        err = r.stderr.decode(errors="replace")
        if status == "ok":
            # Valid GGUF files that are not qwen2 models: they parse, then fail to bind.
            if r.returncode != 1 or "not a usable model" not in err:
                failures.append(f"{fname}: expected a bind failure, got exit {r.returncode}: {err}")
            continue
        n_corrupt += 1
        if r.returncode == 0 or expect not in err or r.stdout:
            failures.append(f"{fname}: exit {r.returncode}, stderr {err!r}, expected {expect!r}")

    check_escaping(binary, failures)
    r = subprocess.run([binary, "inspect"], capture_output=True)
    if r.returncode != 2:
        failures.append(f"inspect without a file: exit {r.returncode}, expected 2")
    r = run(binary, os.path.join(corrupt, "no-such-file.gguf"))
    if r.returncode != 1 or b"no-such-file.gguf" not in r.stderr:
        failures.append(f"missing file: exit {r.returncode}")

    for f in failures:
        print("FAIL", f)
    print(f"{checked} fixtures, {n_corrupt} corrupt files, {len(failures)} failures")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
