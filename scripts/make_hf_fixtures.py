#!/usr/bin/env python3
"""Hugging Face GPT-2 fixtures for Nanodecoder's checkpoint import/export tests.

Builds a tiny, randomly initialised transformers.GPT2LMHeadModel with a tiny byte-level BPE
tokenizer, saves both in Hugging Face's folder layout, and stores the token ids and logits that
transformers itself computes for a few prompts. The Swift tests import the folder, run the same
prompts and compare; the export tests write a folder of their own and hand it to this script's
--check-export mode, which loads it with transformers and compares against the stored logits.

Run once from anywhere (Python 3.11 on the PATH); the outputs are committed, so rerun only when
this script changes:

    python3 scripts/make_hf_fixtures.py                    # (re)write the fixtures
    python3 scripts/make_hf_fixtures.py --check-export DIR # check a folder written by our exporter

--check-export loads DIR (config.json + model.safetensors, Hugging Face layout) with
GPT2LMHeadModel.from_pretrained, runs the stored prompt tokens in float64 and prints one JSON line
on stdout, e.g. {"ok": true, "max_abs_diff": 0.0, "tolerance": 0.0001, "prompts": 3}. It exits 0
when every logit is within 1e-4 of the stored ones, 1 otherwise (also when a weight is missing
or has the wrong shape, listed under "missing_keys" / "mismatched_keys"; weights the model does
not use are listed under "unexpected_keys" without failing).

The script needs torch, numpy, safetensors and transformers. It keeps them in the git-ignored
virtual environment .venv at the repository root: when started outside that environment it
creates .venv if missing, installs the packages if they cannot be imported (torch from the CPU
wheel in /opt/wheels when present, override with $TORCH_WHEEL; the others from PyPI) and
re-executes itself under .venv/bin/python. Nothing is fetched from the Hugging Face Hub: the
script runs with HF_HUB_OFFLINE=1 and only ever calls from_pretrained on local folders.

Outputs (under Tests/NanoTrainingTests/Fixtures/):

  hf_tiny_gpt2/                 what save_pretrained writes for the model and the tokenizer:
      config.json, generation_config.json, model.safetensors,
      vocab.json, merges.txt, tokenizer.json, tokenizer_config.json (and whatever else the
      installed transformers version writes next to them).
  hf_tiny_gpt2_expected.safetensors
      prompt{i}.tokens   int32   [1, T_i]      ids from the Hugging Face tokenizer
      prompt{i}.logits   float32 [1, T_i, V]   GPT2LMHeadModel logits, computed in float64
                                               (model.double(), torch.no_grad()) from the saved
                                               float32 weights, rounded to float32
      __metadata__       prompts (JSON list), vocab_size, num_prompts, library versions. The
                         JSON header is rewritten with sorted keys so reruns are byte-identical.

Tokenizer: GPT-2's byte-level BPE scheme at toy size.
  * ids 0..255 are the 256 single bytes, written as GPT-2's bytes_to_unicode characters, in the
    order of that table: first the printable bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF (which map to
    themselves), then the remaining bytes 0x00-0x20, 0x7F-0xA0, 0xAD (which map to U+0100 on).
    So id 0 is "!" (0x21), id 188 is "\u0100" (0x00) and id 220 is "\u0120" (the space 0x20),
    as in OpenAI's GPT-2 vocabulary.
  * ids 256..<256+N_MERGES are merges learned on TRAINING_TEXT below: the text is split with
    GPT-2's pre-tokenisation pattern, each piece becomes its byte characters, and each round
    merges the most frequent adjacent pair (ties: the pair whose two strings sort first), skipping
    pairs whose concatenation is already a token.
  * the last id, V - 1, is "<|endoftext|>" (also the model's bos/eos id).

Model: GPT2Config(vocab_size=V, n_positions=32, n_embd=32, n_layer=2, n_head=4,
activation_function="gelu_new", all dropouts 0, layer_norm_epsilon=1e-5, tie_word_embeddings
=True, bos/eos_token_id=V-1), built after torch.manual_seed(0). Every parameter is then redrawn
from the same generator so the test is sensitive and independent of transformers' own init
scheme: matrices and embeddings N(0, 0.2^2), Conv1D biases N(0, 0.1^2), LayerNorm gains
1 + N(0, 0.1^2) and shifts N(0, 0.1^2). (HF's default init would leave biases at 0 and gains
at 1, and with std 0.02 the MLP inputs are so small that gelu_new and exact gelu agree to
~1e-7, so a wrong activation or a mis-mapped bias would pass unnoticed.) The script prints how
far the logits move under a few such mistakes.

GPT-2 checkpoint layout reminders (printed in full when the script runs): keys carry the
"transformer." prefix; attention and MLP projections are Conv1D modules whose weights are stored
[in, out] (y = x @ W + b), the transpose of torch.nn.Linear; c_attn's output columns are
[query | key | value], each split into heads of n_embd / n_head consecutive columns.
"""

import os
import sys

REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FIXTURES_DIR = os.path.join(REPO_ROOT, "Tests", "NanoTrainingTests", "Fixtures")
MODEL_DIR = os.path.join(FIXTURES_DIR, "hf_tiny_gpt2")
EXPECTED_PATH = os.path.join(FIXTURES_DIR, "hf_tiny_gpt2_expected.safetensors")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from venv_bootstrap import reexec_in_venv
    reexec_in_venv(".venv", {"torch": "torch", "numpy": "numpy", "safetensors": "safetensors",
                             "transformers": "transformers", "regex": "regex"})

# Never reach for the network: every from_pretrained call below is on a local folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402

import regex  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer  # noqa: E402

transformers.utils.logging.disable_progress_bar()

# MARK: - Configuration

N_MERGES = 40
END_OF_TEXT = "<|endoftext|>"
VOCAB_SIZE = 256 + N_MERGES + 1
N_POSITIONS = 32
N_EMBD = 32
N_LAYER = 2
N_HEAD = 4
LN_EPS = 1e-5
SEED = 0
WEIGHT_STD = 0.2
BIAS_STD = 0.1
NORM_STD = 0.1
CHECK_TOLERANCE = 1e-4

PROMPTS = ["Hello world", "The quick brown fox", "To be, or not to be"]

# Training text for the merges (written for this fixture).
TRAINING_TEXT = """\
The keeper of the old lighthouse rose before the sun to trim the wick and wipe the glass.
To the north the sea was grey and quiet; to the south the boats were already out, and the
keeper watched them go. He wrote the weather in the book: wind from the west, the tide on the
turn, the sky clear to the line of the hills. Then he went down the stairs to the kitchen, put
the kettle on the stove and sat by the window to wait for the water to boil. The world, he
thought, is a quiet place in the hour before the day begins, and there is no better hour to be
awake. When the kettle sang he made the tea, and took the cup back up the stairs to the lamp.
"""

# GPT-2's pre-tokenisation pattern (contractions, letter runs, digit runs, other runs, spaces).
GPT2_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


# MARK: - Tokenizer

def byte_unicode_table():
    """GPT-2's byte -> character table as a list of (byte, character) in table order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1))
                 + list(range(0xAE, 0xFF + 1)))
    table = [(b, chr(b)) for b in printable]
    extra = 0
    for b in range(256):
        if b not in printable:
            table.append((b, chr(256 + extra)))
            extra += 1
    assert len(table) == 256 and len({c for _, c in table}) == 256
    return table


BYTE_TABLE = byte_unicode_table()
BYTE_TO_CHAR = dict(BYTE_TABLE)


def pre_tokens(text):
    """GPT-2 pre-tokens of text, each written as its byte characters."""
    return ["".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8"))
            for piece in GPT2_PATTERN.findall(text)]


def learn_merges(text, n_merges, existing):
    """Greedy BPE training by pair counting: returns n_merges (left, right) pairs in order."""
    words = collections.Counter(pre_tokens(text))
    # Sorted so the (already deterministic) counting does not depend on dict order at all.
    segmented = [(list(word), count) for word, count in sorted(words.items())]
    known = set(existing)
    merges = []
    while len(merges) < n_merges:
        pairs = collections.Counter()
        for symbols, count in segmented:
            for left, right in zip(symbols, symbols[1:]):
                pairs[(left, right)] += count
        candidates = sorted(((-count, pair) for pair, count in pairs.items()
                             if pair[0] + pair[1] not in known))
        if not candidates or -candidates[0][0] < 2:
            raise SystemExit(f"training text only supports {len(merges)} merges")
        left, right = candidates[0][1]
        merges.append((left, right))
        known.add(left + right)
        for symbols, _ in segmented:
            i = 0
            while i < len(symbols) - 1:
                if symbols[i] == left and symbols[i + 1] == right:
                    symbols[i:i + 2] = [left + right]
                i += 1
    return merges


def reference_encode(text, vocab, merges):
    """Plain BPE encoder (lowest-rank pair first), used to cross-check the HF tokenizer."""
    rank = {pair: r for r, pair in enumerate(merges)}
    ids = []
    for word in pre_tokens(text):
        symbols = list(word)
        while len(symbols) > 1:
            best = min(range(len(symbols) - 1),
                       key=lambda i: rank.get((symbols[i], symbols[i + 1]), math.inf))
            pair = (symbols[best], symbols[best + 1])
            if pair not in rank:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == pair:
                    merged.append(pair[0] + pair[1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        ids += [vocab[s] for s in symbols]
    return ids


def build_tokenizer_files(out_dir):
    vocab = {char: i for i, (_, char) in enumerate(BYTE_TABLE)}
    merges = learn_merges(TRAINING_TEXT, N_MERGES, vocab)
    for left, right in merges:
        vocab[left + right] = len(vocab)
    vocab[END_OF_TEXT] = len(vocab)
    assert len(vocab) == VOCAB_SIZE
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for left, right in merges:
            f.write(f"{left} {right}\n")
    return vocab, merges


# MARK: - Model

def build_model():
    config = GPT2Config(vocab_size=VOCAB_SIZE, n_positions=N_POSITIONS, n_embd=N_EMBD,
                        n_layer=N_LAYER, n_head=N_HEAD, activation_function="gelu_new",
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        layer_norm_epsilon=LN_EPS, tie_word_embeddings=True,
                        bos_token_id=VOCAB_SIZE - 1, eos_token_id=VOCAB_SIZE - 1)
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):  # the tied lm_head is not listed
            r = torch.randn(p.shape, dtype=torch.float32)
            if ".ln_" in name:
                p.copy_(1.0 + NORM_STD * r if name.endswith(".weight") else NORM_STD * r)
            elif p.dim() >= 2:
                p.copy_(WEIGHT_STD * r)
            else:
                p.copy_(BIAS_STD * r)
    model.eval()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    return model


def load_model(folder, loading_info=False, **overrides):
    config = GPT2Config.from_pretrained(folder, **overrides)
    model, info = GPT2LMHeadModel.from_pretrained(folder, config=config, output_loading_info=True,
                                                  ignore_mismatched_sizes=True,
                                                  attn_implementation="eager")
    return (model.eval(), info) if loading_info else model.eval()


def compute_logits(model, token_lists):
    """float64 logits [1, T, V] for each token list (model is left in float64)."""
    model.double()
    out = []
    with torch.no_grad():
        for tokens in token_lists:
            ids = torch.tensor([tokens], dtype=torch.long)
            out.append(model(input_ids=ids).logits)
    return out


def manual_logits(state, tokens):
    """GPT-2 forward pass written out from the raw safetensors tensors, in float64."""
    S = {k: v.double() for k, v in state.items()}
    C, H = N_EMBD, N_HEAD
    D = C // H
    T = len(tokens)

    def ln(x, p):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + LN_EPS) * S[p + ".weight"] + S[p + ".bias"]

    def conv1d(x, p):  # Conv1D: weight [in, out]
        return x @ S[p + ".weight"] + S[p + ".bias"]

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    x = S["transformer.wte.weight"][torch.tensor(tokens)] + S["transformer.wpe.weight"][:T]
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    for i in range(N_LAYER):
        p = f"transformer.h.{i}."
        qkv = conv1d(ln(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (qkv[:, j * C:(j + 1) * C].reshape(T, H, D).transpose(0, 1) for j in range(3))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(D)).masked_fill(mask, -math.inf)
        y = (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(T, C)
        x = x + conv1d(y, p + "attn.c_proj")
        x = x + conv1d(gelu_new(conv1d(ln(x, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
    x = ln(x, "transformer.ln_f")
    return (x @ S["transformer.wte.weight"].t()).unsqueeze(0)


# MARK: - Files

def canonicalize_header(path):
    """Rewrite a safetensors JSON header with sorted keys (byte-identical reruns)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n:])


def folder_size(path):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))


def load_expected():
    from safetensors import safe_open
    tensors = load_file(EXPECTED_PATH)
    with safe_open(EXPECTED_PATH, framework="pt") as f:
        meta = f.metadata()
    n = int(meta["num_prompts"])
    tokens = [tensors[f"prompt{i}.tokens"][0].tolist() for i in range(n)]
    logits = [tensors[f"prompt{i}.logits"] for i in range(n)]
    return tokens, logits


# MARK: - Modes

def generate():
    if os.path.exists(MODEL_DIR):
        shutil.rmtree(MODEL_DIR)
    os.makedirs(MODEL_DIR)

    # Tokenizer: our own vocab.json / merges.txt, loaded and re-saved by transformers.
    vocab, merges = build_tokenizer_files(MODEL_DIR)
    tok = GPT2Tokenizer.from_pretrained(MODEL_DIR)
    assert len(tok) == VOCAB_SIZE, len(tok)
    assert tok.convert_tokens_to_ids(END_OF_TEXT) == VOCAB_SIZE - 1
    assert tok.eos_token == END_OF_TEXT
    tok.save_pretrained(MODEL_DIR)
    tok = GPT2Tokenizer.from_pretrained(MODEL_DIR)  # now reads tokenizer.json
    token_lists = []
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        assert ids == reference_encode(prompt, vocab, merges), (prompt, ids)
        assert tok.decode(ids) == prompt
        assert len(ids) <= N_POSITIONS
        token_lists.append(ids)
    joined = tok(f"Hello{END_OF_TEXT} world")["input_ids"]  # the special token stays whole
    assert joined == tok("Hello")["input_ids"] + [VOCAB_SIZE - 1] + tok(" world")["input_ids"]

    # Model: save as Hugging Face does, then compute the reference from the saved folder.
    model = build_model()
    model.save_pretrained(MODEL_DIR)  # safetensors is the only format transformers 5 writes
    weights_path = os.path.join(MODEL_DIR, "model.safetensors")
    assert os.path.exists(weights_path), os.listdir(MODEL_DIR)
    saved = load_file(weights_path)
    for name, p in model.state_dict().items():
        if name in saved:
            assert torch.equal(saved[name], p), name

    logits64 = compute_logits(load_model(MODEL_DIR), token_lists)
    for tokens, ref in zip(token_lists, logits64):
        manual = manual_logits(saved, tokens)
        diff = (manual - ref).abs().max().item()
        assert diff < 1e-10, ("hand-written GPT-2 disagrees with transformers", diff)

    tensors, metadata = {}, {
        "format": "nanodecoder-hf-gpt2-expected-v1",
        "generator": "scripts/make_hf_fixtures.py",
        "model_dir": "hf_tiny_gpt2",
        "prompts": json.dumps(PROMPTS),
        "num_prompts": str(len(PROMPTS)),
        "vocab_size": str(VOCAB_SIZE),
        "reference_dtype": "float64",
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "torch_version": torch.__version__,
        "safetensors_version": safetensors.__version__,
    }
    for i, (tokens, logits) in enumerate(zip(token_lists, logits64)):
        tensors[f"prompt{i}.tokens"] = torch.tensor([tokens], dtype=torch.int32)
        tensors[f"prompt{i}.logits"] = logits.to(torch.float32).contiguous()
    save_file(tensors, EXPECTED_PATH, metadata=metadata)
    canonicalize_header(EXPECTED_PATH)

    report(saved, token_lists, vocab, merges)


def report(saved, token_lists, vocab, merges):
    rel = lambda p: os.path.relpath(p, REPO_ROOT)  # noqa: E731
    print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
          f"torch {torch.__version__}")
    print(f"\n{rel(MODEL_DIR)}/ ({folder_size(MODEL_DIR)} bytes):")
    for name in sorted(os.listdir(MODEL_DIR)):
        print(f"  {name:28s} {os.path.getsize(os.path.join(MODEL_DIR, name)):8d} bytes")
    print(f"{rel(EXPECTED_PATH)}: {os.path.getsize(EXPECTED_PATH)} bytes")

    print(f"\nmodel.safetensors keys ({len(saved)}):")
    for name in sorted(saved):
        print(f"  {name:40s} {str(saved[name].dtype):14s} {list(saved[name].shape)}")
    print("  'transformer.' prefix on all but lm_head: "
          f"{all(k.startswith('transformer.') for k in saved if not k.startswith('lm_head.'))}")
    print(f"  lm_head.weight present: {'lm_head.weight' in saved}")
    print(f"  attn.bias buffers present: {any(k.endswith('.attn.bias') for k in saved)}; "
          f"attn.masked_bias present: {any(k.endswith('.attn.masked_bias') for k in saved)}")

    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        print("\nconfig.json:", json.dumps(json.load(f), sort_keys=True))
    print(f"\nvocab: {len(vocab)} tokens; merges ({len(merges)}): "
          + " ".join(f"{a}+{b}" for a, b in merges))
    print("\nprompts:")
    inverse = {i: s for s, i in vocab.items()}
    for prompt, ids in zip(PROMPTS, token_lists):
        print(f"  {prompt!r}: {ids}  {[inverse[i] for i in ids]}")

    # How much the logits move under typical import mistakes (so a 1e-4 check is meaningful).
    base = compute_logits(load_model(MODEL_DIR), token_lists)
    wrong_gelu = compute_logits(load_model(MODEL_DIR, activation_function="gelu"), token_lists)
    wrong_eps = compute_logits(load_model(MODEL_DIR, layer_norm_epsilon=1e-3), token_lists)
    swapped = load_model(MODEL_DIR)
    with torch.no_grad():
        w = swapped.transformer.h[0].attn.c_attn.weight
        w.copy_(w.view(N_EMBD, 3, N_HEAD, N_EMBD // N_HEAD).flip(2).reshape(N_EMBD, 3 * N_EMBD))
    swapped_heads = compute_logits(swapped, token_lists)

    def gap(other):
        return max((a - b).abs().max().item() for a, b in zip(base, other))

    print(f"\nlogits range: [{min(t.min().item() for t in base):.3f}, "
          f"{max(t.max().item() for t in base):.3f}]")
    print(f"sensitivity (max |delta logits|): gelu instead of gelu_new {gap(wrong_gelu):.2e}; "
          f"LayerNorm eps 1e-3 {gap(wrong_eps):.2e}; heads reversed in layer 0 "
          f"{gap(swapped_heads):.2e}")

    result = check_export(MODEL_DIR, quiet=True)
    print(f"self-check of --check-export on the fixture folder: {json.dumps(result)}")
    assert result["ok"] and result["max_abs_diff"] == 0.0


def check_export(folder, quiet=False):
    tokens, expected = load_expected()
    for required in ("config.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(folder, required)):
            return {"ok": False, "max_abs_diff": None, "error": f"no {required} in {folder}"}
    try:
        model, info = load_model(folder, loading_info=True)
        logits = compute_logits(model, tokens)
    except Exception as error:  # noqa: BLE001 - any failure to load or run is a failed check
        return {"ok": False, "max_abs_diff": None, "error": f"{type(error).__name__}: {error}"}
    # transformers fills missing weights with fresh random values; name them instead of relying
    # on the logits to differ.
    missing = sorted(info.get("missing_keys") or [])
    unexpected = sorted(info.get("unexpected_keys") or [])
    mismatched = sorted(str(m) for m in info.get("mismatched_keys") or [])
    if missing or mismatched:
        return {"ok": False, "max_abs_diff": None, "missing_keys": missing,
                "mismatched_keys": mismatched, "unexpected_keys": unexpected,
                "error": "weights missing or of the wrong shape"}
    diff = 0.0
    for got, want in zip(logits, expected):
        if got.shape != want.shape:
            return {"ok": False, "max_abs_diff": None,
                    "error": f"logits shape {list(got.shape)} != {list(want.shape)}"}
        diff = max(diff, (got.to(torch.float32) - want).abs().max().item())
    ok = math.isfinite(diff) and diff <= CHECK_TOLERANCE
    result = {"ok": ok, "max_abs_diff": diff, "tolerance": CHECK_TOLERANCE,
              "prompts": len(tokens)}
    if unexpected:  # ignored by transformers (e.g. attn.bias mask buffers); listed for the record
        result["unexpected_keys"] = unexpected
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check-export", metavar="DIR",
                        help="load DIR with GPT2LMHeadModel.from_pretrained and compare its "
                             "logits with the stored ones; prints one JSON line, exits 1 on "
                             f"a difference above {CHECK_TOLERANCE}")
    args = parser.parse_args()
    if args.check_export:
        result = check_export(args.check_export)
        print(json.dumps(result), flush=True)
        sys.exit(0 if result["ok"] else 1)
    generate()


if __name__ == "__main__":
    main()
