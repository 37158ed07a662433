#!/usr/bin/env python3
"""The corpus of bad inputs (issue 13): tests/fixtures/bad_inputs/<case>/ holds one broken file
(or folder) made from a real fixture, and cases.json names for each case the parser it goes to
and the one-line error Basin must give (`{case}` stands for the case's folder). tests/bad_inputs.rs
runs every case; `BASIN_BAD_INPUTS_PRINT=1 cargo test --test bad_inputs -- --nocapture` prints
the errors Basin gives today, to review and paste into cases.json when a message changes on
purpose.

Usage: python3 scripts/make_bad_inputs.py   (rewrites the corpus; keeps the errors already in
cases.json for cases that still exist)
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
OUT = FIX / "bad_inputs"

CASES: list[dict] = []
# The errors already reviewed, kept across a rebuild of the corpus.
OLD_ERRORS: dict[str, str] = {}
if (OUT / "cases.json").exists():
    OLD_ERRORS = {c["name"]: c.get("error", "") for c in json.loads((OUT / "cases.json").read_text())}
shutil.rmtree(OUT, ignore_errors=True)


def case(name: str, parser: str, target: str, note: str) -> Path:
    """A case folder; `target` is the file or folder (relative to the case folder) given to the
    parser."""
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    CASES.append({"name": name, "parser": parser, "target": target, "note": note})
    return d


def copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)


# ---------------------------------------------------------------- safetensors
ST = (FIX / "hf_small" / "llama" / "model.safetensors").read_bytes()
ST_HLEN = struct.unpack("<Q", ST[:8])[0]
ST_HEADER = json.loads(ST[8 : 8 + ST_HLEN])
ST_DATA = ST[8 + ST_HLEN :]


def safetensors(header: dict | bytes, data: bytes = ST_DATA, hlen: int | None = None) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def st_case(name: str, note: str, blob: bytes) -> None:
    (case(name, "safetensors", "model.safetensors", note) / "model.safetensors").write_bytes(blob)


first = next(k for k in ST_HEADER if k != "__metadata__")
st_case("st-empty", "an empty file", b"")
st_case("st-short-prefix", "4 bytes: the header length cut", ST[:4])
st_case("st-huge-header", "a header length of 2^64 - 1", safetensors(ST_HEADER, hlen=2**64 - 1))
st_case("st-header-past-end", "a header length past the end of the file", ST[:8 + ST_HLEN - 10])
st_case("st-header-not-json", "garbage where the JSON header goes", safetensors(b"\x00\x01garbage!" * 4))
st_case("st-header-array", "a JSON array as the header", safetensors(b"[1, 2, 3]"))
h = json.loads(json.dumps(ST_HEADER))
h[first]["dtype"] = "F33"
st_case("st-unknown-dtype", "a dtype safetensors does not have", safetensors(h))
h = json.loads(json.dumps(ST_HEADER))
h[first]["data_offsets"] = [0, len(ST_DATA) + 4096]
st_case("st-offsets-past-data", "a tensor's bytes past the end of the data", safetensors(h))
h = json.loads(json.dumps(ST_HEADER))
a, b = h[first]["data_offsets"]
h[first]["data_offsets"] = [b, a]
st_case("st-offsets-reversed", "data_offsets [end, start]", safetensors(h))
h = json.loads(json.dumps(ST_HEADER))
h[first]["shape"] = [s * 2 for s in h[first]["shape"]]
st_case("st-shape-mismatch", "a shape twice the bytes it has", safetensors(h))
h = json.loads(json.dumps(ST_HEADER))
h[first]["shape"] = [2**40, 2**40]
st_case("st-shape-overflow", "a shape whose element count overflows", safetensors(h))

# ---------------------------------------------------------------- GGUF
GG = (FIX / "tiny_gguf" / "llama3.gguf").read_bytes()


def gguf_layout(data: bytes) -> dict:
    """Offsets of interesting fields of a GGUF v3 file."""
    pos = 24
    n_tensors, n_kv = struct.unpack("<QQ", data[8:24])

    def string(p):
        n = struct.unpack("<Q", data[p : p + 8])[0]
        return data[p + 8 : p + 8 + n].decode(), p + 8 + n

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    first_string_len = None
    first_array = None

    def value(p, t):
        nonlocal first_string_len, first_array
        if t == 8:
            if first_string_len is None:
                first_string_len = p
            return string(p)[1]
        if t == 9:
            et, n = struct.unpack("<IQ", data[p : p + 12])
            if first_array is None:
                first_array = p
            p += 12
            for _ in range(n):
                p = value(p, et)
            return p
        return p + sizes[t]

    for _ in range(n_kv):
        _, pos = string(pos)
        t = struct.unpack("<I", data[pos : pos + 4])[0]
        pos = value(pos + 4, t)
    kv_end = pos
    tensors = []
    for _ in range(n_tensors):
        name, p = string(pos)
        nd = struct.unpack("<I", data[p : p + 4])[0]
        info = {"name": name, "n_dims": p, "dims": p + 4}
        p += 4 + 8 * nd
        info["type"] = p
        info["offset"] = p + 4
        pos = p + 12
        tensors.append(info)
    return {
        "infos_end": pos,
        "kv_end": kv_end,
        "first_string_len": first_string_len,
        "first_array": first_array,
        "tensors": tensors,
    }


GL = gguf_layout(GG)


def patched(data: bytes, at: int, fmt: str, *v) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, at, *v)
    return bytes(b)


def gg_case(name: str, note: str, blob: bytes, whole: bool = False) -> None:
    """Cases whose fault lies in the header keep only the header and tensor infos (the parser
    stops there), so the corpus stays small."""
    if not whole:
        blob = blob[: GL["infos_end"]]
    (case(name, "gguf", "model.gguf", note) / "model.gguf").write_bytes(blob)


gg_case("gguf-empty", "an empty .gguf", b"", whole=True)
gg_case("gguf-bad-magic", "the magic is not GGUF", b"GGML" + GG[4:])
gg_case("gguf-version-99", "a GGUF version that does not exist", patched(GG, 4, "<I", 99))
gg_case("gguf-huge-tensor-count", "2^62 tensors claimed", patched(GG, 8, "<Q", 2**62))
gg_case("gguf-huge-kv-count", "2^62 metadata entries claimed", patched(GG, 16, "<Q", 2**62))
gg_case("gguf-cut-in-metadata", "the file ends inside the metadata", GG[: GL["kv_end"] // 2])
gg_case("gguf-cut-in-data", "the file ends inside the tensor data", GG[:-4096], whole=True)
gg_case("gguf-huge-string", "a string length of 2^63", patched(GG, GL["first_string_len"], "<Q", 2**63))
gg_case("gguf-huge-array", "an array of 2^60 elements", patched(GG, GL["first_array"] + 4, "<Q", 2**60))
t0 = GL["tensors"][0]
gg_case("gguf-nine-dims", "a tensor with 9 dimensions", patched(GG, t0["n_dims"], "<I", 9))
gg_case("gguf-unknown-type", "a tensor of ggml type 200", patched(GG, t0["type"], "<I", 200))
gg_case("gguf-offset-past-end", "a tensor offset past the end", patched(GG, t0["offset"], "<Q", 2**40), whole=True)
gg_case("gguf-huge-dims", "a tensor of 2^32 × 2^32 elements", patched(patched(GG, t0["dims"], "<Q", 2**32), t0["dims"] + 8, "<Q", 2**32))

# ---------------------------------------------------------------- config.json
CFG = json.loads((FIX / "tiny" / "llama" / "config.json").read_text())


def cfg_case(name: str, note: str, text: str) -> None:
    (case(name, "config", "config.json", note) / "config.json").write_text(text)


cfg_case("config-not-json", "not JSON", "{ hidden_size: 64 ")
cfg_case("config-empty-object", "{} (no architecture, no sizes)", "{}")
for key, v, note in [
    ("hidden_size", 0, "hidden_size 0"),
    ("num_attention_heads", 7, "heads that do not divide the hidden size"),
    ("vocab_size", -5, "a negative vocabulary"),
    ("num_hidden_layers", 10**12, "10^12 layers"),
    ("model_type", "gpt2", "an architecture Basin does not run"),
    ("rope_scaling", {"rope_type": "warp", "factor": "x"}, "a rope_scaling it cannot read"),
]:
    c = dict(CFG)
    c[key] = v
    c.pop("architectures", None) if key == "model_type" else None
    cfg_case(f"config-{key.replace('_', '-')}", note, json.dumps(c))

# ---------------------------------------------------------------- PEFT adapter
LORA = FIX / "hf_small" / "lora"
LCFG = json.loads((LORA / "adapter_config.json").read_text())
LST = (LORA / "adapter_model.safetensors").read_bytes()
L_HLEN = struct.unpack("<Q", LST[:8])[0]
L_HEADER = json.loads(LST[8 : 8 + L_HLEN])
L_DATA = LST[8 + L_HLEN :]


def peft_case(name: str, note: str, cfg: str | None = None, weights: bytes | None = None) -> None:
    d = case(name, "peft", "adapter", note) / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(cfg if cfg is not None else json.dumps(LCFG))
    (d / "adapter_model.safetensors").write_bytes(weights if weights is not None else LST)


peft_case("peft-config-not-json", "adapter_config.json is not JSON", cfg="peft!")
c = dict(LCFG)
c["r"] = 0
peft_case("peft-rank-zero", "r = 0", cfg=json.dumps(c))
c = dict(LCFG)
c["peft_type"] = "PREFIX_TUNING"
peft_case("peft-not-lora", "a PEFT method that is not LoRA", cfg=json.dumps(c))
h = {k: v for k, v in L_HEADER.items() if "lora_B" not in k or k == "__metadata__"}
peft_case("peft-missing-b", "lora_A without its lora_B", weights=safetensors(h, L_DATA))
h = json.loads(json.dumps(L_HEADER))
ka = next(k for k in h if "lora_A" in k)
h[ka]["shape"] = [h[ka]["shape"][0] // 2, h[ka]["shape"][1] * 2]
peft_case("peft-rank-mismatch", "lora_A of rank r/2 beside lora_B of rank r", weights=safetensors(h, L_DATA))
h = json.loads(json.dumps(L_HEADER))
lo, _ = h[ka]["data_offsets"]
nan = bytearray(L_DATA)
struct.pack_into("<f", nan, lo, float("nan"))
peft_case("peft-nan", "a NaN in lora_A", weights=safetensors(h, bytes(nan)))

# ---------------------------------------------------------------- tokenizer folder
TOKDIR = FIX / "hf_small" / "llama"


def tok_case(name: str, note: str, **files: str | bytes) -> None:
    d = case(name, "tokenizer", "model", note) / "model"
    d.mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json"):
        copy(TOKDIR / f, d / f)
    for f, v in files.items():
        f = f.replace("__", ".")
        if isinstance(v, bytes):
            (d / f).write_bytes(v)
        else:
            (d / f).write_text(v)


TOK = (TOKDIR / "tokenizer.json").read_text()
tok_case("tok-not-json", "tokenizer.json is not JSON", tokenizer__json="{ not json")
tok_case("tok-empty-object", "tokenizer.json is {}", tokenizer__json="{}")
# The input tests/fuzz.rs found to panic inside the tokenizers library: a non-string key.
t = json.loads(TOK)
bad = json.dumps(t, indent=2).replace('"decoder": {', '"decoder": {\n    1: 2,', 1)
tok_case("tok-decoder-number-key", "a number as a key inside `decoder` (made tokenizers panic)", tokenizer__json=bad)
tok_case("tok-template-syntax", "a chat template that does not parse", chat_template__jinja="{% for m in messages %}{{ m.content }")
tok_case("tok-template-endless", "a chat template that loops 10^12 times", chat_template__jinja="{% for i in range(1000000) %}{% for j in range(1000000) %}x{% endfor %}{% endfor %}")
tok_case("tok-template-overlap", "`{%}` (overlapping delimiters; made Basin panic)", chat_template__jinja="{%}")
cfgt = json.loads((TOKDIR / "tokenizer_config.json").read_text())
cfgt["chat_template"] = 42
tok_case("tok-config-template-number", "chat_template a number in tokenizer_config.json", tokenizer_config__json=json.dumps(cfgt), chat_template__jinja="")

# ---------------------------------------------------------------- chat JSONL
CHAT = (FIX / "tiny" / "chat.jsonl").read_text().splitlines()


def chat_case(name: str, note: str, text: str | bytes) -> None:
    p = case(name, "chat-jsonl", "data.jsonl", note) / "data.jsonl"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())


chat_case("chat-not-json", "a line that is not JSON", CHAT[0] + "\n{oops\n")
chat_case("chat-no-messages", "a line without messages", '{"id": "a", "text": "hi"}\n')
chat_case("chat-bad-role", "a message from role `robot`", '{"id":"a","messages":[{"role":"robot","content":"x"},{"role":"assistant","content":"y"}]}\n')
chat_case("chat-last-not-assistant", "the last message is the user's", '{"id":"a","messages":[{"role":"user","content":"x"}]}\n')
chat_case("chat-duplicate-id", "two chats with one id", CHAT[0] + "\n" + CHAT[0] + "\n")
chat_case("chat-empty", "an empty file", "")
chat_case("chat-not-utf8", "bytes that are not UTF-8", b'{"id":"a","messages":[{"role":"user","content":"\xff\xfe"}]}\n')
chat_case("chat-content-number", "content a number", '{"id":"a","messages":[{"role":"user","content":1},{"role":"assistant","content":"y"}]}\n')

# ---------------------------------------------------------------- suite
SUITE = ROOT / "assets" / "demo" / "suite"


def suite_case(name: str, note: str, toml: str | None = None, files: dict | None = None) -> None:
    d = case(name, "suite", "suite/suite.toml", note) / "suite"
    copy(SUITE, d)
    if toml is not None:
        (d / "suite.toml").write_text(toml)
    for f, v in (files or {}).items():
        (d / f).write_text(v)


ST_TOML = (SUITE / "suite.toml").read_text()
suite_case("suite-unknown-key", "a key the suite format does not have", ST_TOML.replace("[[metric]]", "colour = \"red\"\n[[metric]]", 1))
suite_case("suite-missing-file", "a metric whose file does not exist", ST_TOML.replace("instruction.jsonl", "nowhere.jsonl"))
suite_case("suite-unknown-kind", "a metric kind that does not exist", ST_TOML.replace('kind = "choice"', 'kind = "vibes"', 1))
suite_case("suite-not-toml", "not TOML", "[[metric]\nname = ")
suite_case("suite-item-missing-field", "a paired item without its hack answer", files={"hack_heldout.jsonl": '{"id": "x", "prompt": [{"role": "user", "content": "q"}], "honest": "a"}\n'})

# ---------------------------------------------------------------- results / steps
res_case = case("results-bad-middle-line", "results", "results.jsonl", "a malformed line before the last")
(res_case / "results.jsonl").write_text(
    '{"t":0.0,"metric":"m","kind":"instruction","value":1.0,"ci_low":0.9,"ci_high":1.1,"n":2,"extra":{}}\n'
    "{not json}\n"
    '{"t":1.0,"metric":"m","kind":"instruction","value":1.0,"ci_low":0.9,"ci_high":1.1,"n":2,"extra":{}}\n'
)
res_case = case("results-not-utf8", "results", "results.jsonl", "a line that is not UTF-8")
(res_case / "results.jsonl").write_bytes(b'{"t":0.0,"metric":"\xff"}\n')
steps_case = case("steps-bad-middle-line", "steps", "train.jsonl", "a malformed step before the last")
(steps_case / "train.jsonl").write_text(
    '{"step":1,"samples_seen":8,"tokens":3,"input_tokens":8,"loss":1.0,"lr":0.1,"grad_norm":1.0,"elapsed_s":1.0}\n'
    '{"step":"two"}\n'
    '{"step":3,"samples_seen":8,"tokens":3,"input_tokens":8,"loss":1.0,"lr":0.1,"grad_norm":1.0,"elapsed_s":1.0}\n'
)

# ---------------------------------------------------------------- study
STUDY = (ROOT / "assets" / "studies" / "demo.toml").read_text()
for name, note, text in [
    ("study-unknown-section", "a section a study does not have", STUDY + "\n[magic]\nx = 1\n"),
    ("study-t-without-ends", "paths.t without 0 and 1", re.sub(r'(?m)^t = ".*"$', 't = "0.2:0.8:3"', STUDY, count=1)),
    ("study-not-toml", "not TOML", "name = \n"),
]:
    (case(name, "study", "study.toml", note) / "study.toml").write_text(text)

# ---------------------------------------------------------------- SoRH CSV
SORH = (FIX / "sorh_small.csv").read_text()
for name, note, text in [
    ("sorh-missing-columns", "a header without the dataset's columns", "a,b\n1,2\n"),
    ("sorh-unterminated-quote", "a quoted field never closed", SORH.split("\n")[0] + '\n"open,quote\n'),
]:
    (case(name, "sorh", "data.csv", note) / "data.csv").write_text(text)


if __name__ == "__main__":
    for c in CASES:
        c["error"] = OLD_ERRORS.get(c["name"], "")
    (OUT / "cases.json").write_text(json.dumps(CASES, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(CASES)} cases in {OUT}")
