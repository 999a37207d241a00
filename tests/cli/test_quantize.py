#!/usr/bin/env python3
"""worker-orcd quantize and synth, driven as users run them.

Quantize: ta-f32 (made by the reference converter) into every target type. Each output must load
(`inspect --json` reports no error) with the block-type census of the reference tool's file of the
same type (goldens/ta-TYPE.json, written by llama.cpp's llama-quantize), or, for the plain k-quant
targets that have no reference file, the census the documented rules give. Where there is a
reference file, ours must hash to its sha256 (goldens JSON): same keys, tensor order, block types
and block bytes. For every type, the RMS error that quantize prints must stay within 1.3x of the
reference file's error against the same F32 weights (measured by `quantize --compare`).

Synth: a tiny model must load with the requested shape, be identical for the same seed whatever
the thread count, differ for another seed, and bad shapes must be refused with a usage error.

Usage: test_quantize.py SOURCE_DIR BUILD_DIR (exit 77 when the binary is not built)."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

SRC, BUILD = sys.argv[1], sys.argv[2]
BIN = os.path.join(BUILD, "bin", "worker-orcd")
FIX = os.path.join(SRC, "tests", "data", "fixtures")
GOLD = os.path.join(SRC, "tests", "data", "goldens")
VOCAB = os.path.join(BUILD, "testdata", "tokenizer", "qwen2.5-vocab.gguf")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)


def inspect(path):
    r = run("inspect", "--json", path)
    check(r.returncode == 0, f"inspect {path}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def rms_table(stdout):
    """{type: RMS error} from the table quantize prints."""
    out = {}
    for line in stdout.splitlines():
        f = line.split()
        if len(f) == 6 and f[0] != "type":
            out[f[0]] = float(f[3])
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def golden(model):
    with open(os.path.join(GOLD, model + ".json")) as fp:
        return json.load(fp)


# target -> reference fixture (llama-quantize's file of that type), when there is one
REFERENCE = {
    "f16": "ta-f16", "bf16": "ta-bf16", "q8_0": "ta-q8_0", "q4_0": "ta-q4_0",
    "q4_1": "ta-q4_1", "q5_0": "ta-q5_0", "q5_1": "ta-q5_1", "q6_k": "ta-q6_k",
    "q4_k_m": "ta-q4_k_m", "q5_k_m": "ta-q5_k_m", "q2_k": "ta-q2_k", "q3_k_m": "ta-q3_k_m",
}
# targets without a reference file: ta has 11 norms/biases, 14 layer matrices, and a tied
# token_embd that (as the output matrix) gets Q6_K in every target below 8 bits
RULE_CENSUS = {
    "f32": {"F32": 26},
    "q4_k": {"F32": 11, "Q4_K": 14, "Q6_K": 1},
    "q5_k": {"F32": 11, "Q5_K": 14, "Q6_K": 1},
}


def test_quantize(tmp):
    src = os.path.join(FIX, "ta-f32.gguf")
    for target in sorted(set(REFERENCE) | set(RULE_CENSUS)):
        out = os.path.join(tmp, f"ta-{target}.gguf")
        r = run("quantize", src, out, target)
        check(r.returncode == 0, f"quantize {target}: exit {r.returncode}: {r.stderr.strip()}")
        if r.returncode != 0:
            continue
        info = inspect(out)
        check(info.get("error") is None, f"{target}: inspect error {info.get('error')}")
        ref = REFERENCE.get(target)
        want = golden(ref)["tensor_types"] if ref else RULE_CENSUS[target]
        check(info.get("tensor_types") == want,
              f"{target}: census {info.get('tensor_types')}, expected {want}")
        check(info.get("n_params") == 1870080, f"{target}: n_params {info.get('n_params')}")
        ours = rms_table(r.stdout)
        check(set(ours) == set(want), f"{target}: error table types {sorted(ours)}")
        if ref:
            check(sha256(out) == golden(ref)["sha256"],
                  f"{target}: file differs from the reference {ref}.gguf")
        if ref:
            c = run("quantize", "--compare", os.path.join(FIX, ref + ".gguf"), src)
            check(c.returncode == 0, f"--compare {ref}: exit {c.returncode}: {c.stderr.strip()}")
            theirs = rms_table(c.stdout)
            for t, e in ours.items():
                # 1.3x: room for a different (valid) k-quant scale search, far below the
                # ~50x a wrong layout gives
                check(e <= 1.3 * theirs.get(t, 0.0) + 1e-12,
                      f"{target}: {t} RMS error {e:.4e} vs reference {theirs.get(t)}")
            print(f"{target:7s} ours {ours}  reference {theirs}")

    # tb has 384-wide rows: every k-quant falls back (Q4_K -> Q5_0, Q6_K -> Q8_0); ffn_down
    # (1024 wide) keeps Q4_K in layer 0 and Q6_K in layer 1 (of 2 layers only i >= 7n/8 gets more
    # bits); Q8_0: output.weight and blk.1.attn_v; Q5_0: token_embd and the other 11 matrices
    out = os.path.join(tmp, "tb-q4_k_m.gguf")
    r = run("quantize", os.path.join(FIX, "tb-f16.gguf"), out, "q4_k_m")
    check(r.returncode == 0, f"quantize tb q4_k_m: {r.stderr.strip()}")
    info = inspect(out)
    check(info.get("error") is None, f"tb q4_k_m: inspect error {info.get('error')}")
    check(info.get("tensor_types") == {"F32": 11, "Q5_0": 12, "Q4_K": 1, "Q6_K": 1, "Q8_0": 2},
          f"tb q4_k_m census {info.get('tensor_types')}")

    r = run("quantize", src, os.path.join(tmp, "x.gguf"), "q7_0")
    check(r.returncode == 2 and "q7_0" in r.stderr, f"unknown type: exit {r.returncode}")
    r = run("quantize", os.path.join(tmp, "missing.gguf"), os.path.join(tmp, "x.gguf"), "q8_0")
    check(r.returncode == 1 and "missing.gguf" in r.stderr, f"missing input: exit {r.returncode}")


def test_synth(tmp):
    if not os.path.exists(VOCAB):
        check(False, f"{VOCAB} is missing (unpacked at configure time)")
        return
    shape = ["--layers", "2", "--hidden", "128", "--ffn", "256", "--heads", "4",
             "--kv-heads", "2", "--ctx", "512"]
    a, b, c = (os.path.join(tmp, n) for n in ("a.gguf", "b.gguf", "c.gguf"))
    r = run("synth", "--vocab", VOCAB, "-o", a, *shape, "--type", "q8_0", "--seed", "7",
            "--untied", "--threads", "1")
    check(r.returncode == 0, f"synth: exit {r.returncode}: {r.stderr.strip()}")
    r = run("synth", "--vocab", VOCAB, "-o", b, *shape, "--type", "q8_0", "--seed", "7",
            "--untied", "--threads", "3")
    check(r.returncode == 0 and sha256(a) == sha256(b), "synth depends on the thread count")
    r = run("synth", "--vocab", VOCAB, "-o", c, *shape, "--type", "q8_0", "--seed", "8",
            "--untied")
    check(r.returncode == 0 and sha256(a) != sha256(c), "synth ignores the seed")
    info = inspect(a)
    check(info.get("error") is None, f"synth: inspect error {info.get('error')}")
    cfg = info.get("config", {})
    want = {"architecture": "qwen2", "n_layer": 2, "n_embd": 128, "n_ff": 256, "n_head": 4,
            "n_head_kv": 2, "head_dim": 32, "n_vocab": 151936, "n_ctx_train": 512,
            "tied_output": False}
    check({k: cfg.get(k) for k in want} == want, f"synth config {cfg}")
    # 2 layers x 7 matrices + token_embd + output; 2 x (2 norms + 3 biases) + output_norm
    check(info.get("tensor_types") == {"F32": 11, "Q8_0": 16},
          f"synth census {info.get('tensor_types')}")
    meta = info.get("metadata", {})
    check("tokenizer.ggml.merges" in json.dumps(meta), "synth: tokenizer keys not copied")

    r = run("synth", "--vocab", VOCAB, "-o", c, *shape, "--type", "q4_k_m", "--tied")
    check(r.returncode == 0, f"synth q4_k_m: exit {r.returncode}: {r.stderr.strip()}")
    info = inspect(c)
    check(info.get("error") is None and info.get("config", {}).get("tied_output") is True,
          f"synth q4_k_m tied: {info.get('error')}")
    # 128-wide rows: Q4_K -> Q5_0, Q6_K -> Q8_0 (token_embd as the output, and blk.1.attn_v);
    # ffn_down is 256 wide: Q4_K in layer 0, Q6_K in layer 1
    check(info.get("tensor_types") == {"F32": 11, "Q5_0": 11, "Q8_0": 2, "Q4_K": 1, "Q6_K": 1},
          f"synth q4_k_m census {info.get('tensor_types')}")

    r = run("synth", "--vocab", VOCAB, "-o", c, "--hidden", "128", "--heads", "3")
    check(r.returncode == 2 and "--heads 3" in r.stderr, f"bad heads: exit {r.returncode}")
    r = run("synth", "-o", c)
    check(r.returncode == 2, f"missing --vocab: exit {r.returncode}")


def main():
    if not os.access(BIN, os.X_OK):
        print(f"skip: {BIN} is not built")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        test_quantize(tmp)
        test_synth(tmp)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
