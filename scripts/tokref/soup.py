#!/usr/bin/env python3
"""soup.py: random strings drawn from all of Unicode, for the tokenizer reference vectors.

Usage: python3 soup.py SEED COUNT OUT.json   (then: node soup.js OUT.json SOUP.tsv)

Each string mixes ASCII, combining marks, Unicode spaces, apostrophes and any assigned code point
below U+20000. "Assigned" is taken from Python's unicodedata (Unicode 14.0 in Python 3.11), older
than both utf8proc's tables (15.0) and the JavaScript reference's (17.0), so every side knows every
code point used. Left out: surrogates, U+0085 and U+FEFF (where JavaScript's \\s differs from the
Oniguruma \\s of the Hugging Face tokenizer)."""
import json
import random
import sys
import unicodedata


def main():
    seed, count, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = random.Random(seed)
    assigned = [c for c in range(0x20000)
                if unicodedata.category(chr(c)) not in ("Cn", "Cs") and c not in (0x85, 0xFEFF)]
    marks = [c for c in assigned if unicodedata.category(chr(c)).startswith("M")]
    spaces = [c for c in assigned if unicodedata.category(chr(c)).startswith("Z")]
    spaces += [0x09, 0x0A, 0x0B, 0x0C, 0x0D]
    strings = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randint(1, 60)):
            r = rng.random()
            pool = (range(0x80) if r < 0.4 else marks if r < 0.55 else spaces if r < 0.65
                    else [0x27] if r < 0.7 else assigned)
            chars.append(chr(rng.choice(pool)))
        strings.append("".join(chars))
    print("unicodedata %s, %d assigned code points" % (unicodedata.unidata_version, len(assigned)),
          file=sys.stderr)
    with open(out, "w") as f:
        json.dump(strings, f)


if __name__ == "__main__":
    main()
