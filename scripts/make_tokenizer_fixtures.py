#!/usr/bin/env python3
"""Reference token ids for Nanodecoder's BPE tokenizer, computed by OpenAI's tiktoken.

TokenizerTests.swift trains a small BPE vocabulary on a text embedded in the test, encodes the
sentences below and compares with the ids printed here. tiktoken is the reference for both GPT-2's
pre-tokenisation pattern and its merge rule, so agreement shows that our scanner and merge loop
match it (and that training is deterministic: the test retrains on every run).

Regenerate (from the repository root) only if the test's training text, vocabulary size or these
sentences change:

    NANODATA_TIKTOKEN_FIXTURE_OUT=/tmp/fixture.tiktoken swift test --filter trainedTokenizerMatchesTiktoken
    python3 scripts/make_tokenizer_fixtures.py /tmp/fixture.tiktoken

and paste the printed Swift literal over `tiktokenExpectations` in TokenizerTests.swift.
Needs `pip install tiktoken` (no network access at run time: the ranks come from the file).
"""

import base64
import sys
import textwrap

import tiktoken

# GPT-2's pre-tokenisation pattern, as in the GPT-2 source and tiktoken's r50k_base.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

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


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_tokenizer_fixtures.py TRAINED.tiktoken")
    ranks = load_ranks(sys.argv[1])
    encoding = tiktoken.Encoding(name="nanodecoder-fixture", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                 special_tokens={"<|endoftext|>": max(ranks.values()) + 1})
    print("    // Produced by scripts/make_tokenizer_fixtures.py (tiktoken %s) from the trained tokenizer's"
          % tiktoken.__version__)
    print("    // .tiktoken file; do not edit by hand.")
    print("    static let tiktokenExpectations: [(text: String, ids: [Int])] = [")
    for sentence in SENTENCES:
        ids = encoding.encode(sentence, allowed_special="all")
        print("        (%s," % swift_string(sentence))
        lines = textwrap.wrap(", ".join(map(str, ids)), width=100)
        print("         [" + "\n          ".join(lines) + "]),")
    print("    ]")


if __name__ == "__main__":
    main()
