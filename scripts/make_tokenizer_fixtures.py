#!/usr/bin/env python3
"""Reference token ids and pieces for Nanodecoder's BPE tokenizer, computed by OpenAI's tiktoken.

TokenizerTests.swift trains two small BPE vocabularies on a text embedded in the test, one under
GPT-2's pre-tokenization pattern and one under cl100k_base's, encodes the sentences below and
compares with the ids printed here. tiktoken is the reference for both patterns and for the merge
rule, so agreement shows that our scanners and merge loop match it (and that training is
deterministic: the test retrains on every run). The script also prints the pieces that cl100k's
pattern cuts sentences into (from the `regex` module, which tiktoken depends on) and the ids of a
hand-made vocabulary that shows tiktoken's case-insensitive contractions.

Regenerate (from the repository root) only if the test's training text, vocabulary size or these
sentences change:

    mkdir -p /tmp/fixtures
    NANODATA_TIKTOKEN_FIXTURE_DIR=/tmp/fixtures swift test --filter TiktokenFixture
    python3 scripts/make_tokenizer_fixtures.py /tmp/fixtures

and paste the printed Swift literals over the ones of the same names in TokenizerTests.swift.
Needs `pip install tiktoken` (no network access at run time: the ranks come from the files).
"""

import base64
import os
import sys
import textwrap

import regex
import tiktoken

# The patterns as tiktoken writes them (tiktoken_ext/openai_public.py: r50k_pat_str and cl100k_base).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                  r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")

SENTENCES = [
    "The keeper's lamp won't fail; we'll see it, they've said, and I'm sure you'd agree.",
    "Hello world's  3 apples!!\n\n",
    "Tides at 04:45 and 17:20 -- 2 metres, maybe 3.5?",
    "   leading spaces, trailing spaces   ",
    "tabs\tand\r\nwindows line ends\n\n\nthree blank",
    "first document<|endoftext|>second document",
    "Caf\u00e9 cr\u00e8me, \u4e2d\u6587, \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac and an emoji \U0001F600!",
    # One pre-token of 200 bytes: long enough for the heap-based merge loop.
    "thekeeperclimbedthestairs" * 8,
    "'S 'RE shouldn't split like 're; ''quoted'' and it's",
]

# Extra sentences for the cl100k-pattern vocabulary: what that pattern does differently.
CL100K_SENTENCES = SENTENCES + [
    "SHE'D SAY \"DON'T\"; THEY'LL NOD. (Quietly.)\r\n\r\n  Then: 1234567 steps, 2024 lights.",
    "a  \n\n  b\t\n c   <|endoftext|>  \n  end   ",
]

# Pieces from regex.findall(CL100K_PATTERN, text).
PIECE_SENTENCES = [
    "Hello world's  3 apples!!\n\n",
    "DON'T I'LL we'Re 'ſt ''s",
    "1234567 12.5 ١٢٣٤ ½⅓",
    "(hello) [world] \"quoted\"",
    "a   b\tc \t d",
    "line one\n\nline two\r\n",
    "x  \n\n  y",
    "end.\n  \n",
    "trailing   ",
    "Café 中文 😀😀!",
    "",
]

# A vocabulary of the 256 bytes, "ſ" (256) and "ſt" (257): tiktoken's `(?i:...)` makes "'ſ" a
# contraction (ſ folds to s), so "'ſt" is "'ſ" + "t", not "'" + "ſt".
LONG_S_TEXTS = ["'\u017ft", "x\u017ft", "'St"]


def swift_string(text):
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F or code > 0x7E:
            out.append("\\u{%X}" % code)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def load_ranks(path):
    """Reads `<base64 token bytes> <rank>` lines. (tiktoken.load.load_tiktoken_bpe would do, but it
    caches files by path name, so a regenerated file at the same path would be read stale.)"""
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


def print_id_literal(name, encoding, sentences, source):
    print("    // Produced by scripts/make_tokenizer_fixtures.py (tiktoken %s) from" % tiktoken.__version__)
    print("    // %s; do not edit by hand." % source)
    print("    static let %s: [(text: String, ids: [Int])] = [" % name)
    for sentence in sentences:
        ids = encoding.encode(sentence, allowed_special="all")
        print("        (%s," % swift_string(sentence))
        lines = textwrap.wrap(", ".join(map(str, ids)), width=100)
        print("         [" + "\n          ".join(lines) + "]),")
    print("    ]")


def trained_encoding(path, pattern):
    ranks = load_ranks(path)
    return tiktoken.Encoding(name="nanodecoder-fixture", pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": max(ranks.values()) + 1})


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_tokenizer_fixtures.py FIXTURE_DIR  (holding gpt2.tiktoken and cl100k.tiktoken)")
    folder = sys.argv[1]
    print_id_literal("tiktokenExpectations", trained_encoding(os.path.join(folder, "gpt2.tiktoken"), GPT2_PATTERN),
                     SENTENCES, "the GPT-2-pattern vocabulary's .tiktoken file")
    print()
    print_id_literal("cl100kTiktokenExpectations",
                     trained_encoding(os.path.join(folder, "cl100k.tiktoken"), CL100K_PATTERN),
                     CL100K_SENTENCES, "the cl100k-pattern vocabulary's .tiktoken file")
    print()
    print("    // Produced by scripts/make_tokenizer_fixtures.py: regex.findall(cl100k pattern, text).")
    print("    static let cl100kPieceExpectations: [(text: String, pieces: [String])] = [")
    for sentence in PIECE_SENTENCES:
        pieces = ", ".join(swift_string(p) for p in regex.findall(CL100K_PATTERN, sentence))
        print("        (%s, [%s])," % (swift_string(sentence), pieces))
    print("    ]")
    print()
    ranks = {bytes([i]): i for i in range(256)}
    ranks["\u017f".encode()] = 256
    ranks["\u017ft".encode()] = 257
    long_s = tiktoken.Encoding(name="long-s", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={})
    print("    // Produced by scripts/make_tokenizer_fixtures.py: the bytes, ſ (256) and ſt (257) under cl100k's pattern.")
    print("    static let longSExpectations: [(text: String, ids: [Int])] = [")
    for text in LONG_S_TEXTS:
        print("        (%s, %s)," % (swift_string(text), long_s.encode(text)))
    print("    ]")


if __name__ == "__main__":
    main()
