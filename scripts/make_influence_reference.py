#!/usr/bin/env python3
"""Reference influence scores for `basin influence` on the tiny llama, from PyTorch + PEFT.

θ = tests/fixtures/tiny/llama with the PEFT adapter tiny/llama_lora; training samples =
tiny/chat.jsonl; query = tests/fixtures/influence/query.jsonl. With torch.func, per sample:
the gradient of its mean target NLL (Basin's loss mask) with respect to every lora_A / lora_B
weight; for the query, the gradient of the token-weighted mean NLL over its chats. gradsim
scores = −⟨∇f, ∇ℓ(z)⟩ (and the `unit` form, ∇ℓ(z) / ‖∇ℓ(z)‖): positive = a gradient step on z
pushes the query NLL up.

Also the metric queries of tests/fixtures/influence/suite.toml: `hack` (paired, per-token
form): f = mean over items of [Σ log p(hack)/n_hack − Σ log p(honest)/n_honest]; `facts`
(choice, per-byte form): f = mean over items of Σ log p(keyed option) / its UTF-8 bytes. Their
gradsim scores are under `metric_queries`.

DataInf (Kwon et al. 2024) on the chat query, per LoRA module l (its A and B together) with
λ_l = 0.1 × the mean squared gradient entry over samples: score_k = −Σ_l (1/λ_l)·(v·g_k −
(1/n)·Σ_i (v·g_i)(g_i·g_k)/(λ_l + ‖g_i‖²)); and the exact solve −Σ_l g_kᵀ(G_lᵀG_l/n + λ_l I)⁻¹v
that DataInf approximates, with the Spearman correlation of the two rankings (`datainf`).

TracIn on the chat query over the committed training run tests/fixtures/influence/tracin_run
(made by `basin train --base tiny/llama --data tiny/chat.jsonl --rank 4 --targets
q_proj,v_proj --steps 4 --batch 2 --lr 5e-3 --schedule linear --checkpoint-every 4`; the
optimizer states left out): score(z) = −Σ_c η_c·⟨∇f(θ_c), ∇ℓ(z; θ_c)⟩ over its checkpoint and
final adapters, η_c the learning rate of the first logged step that reached the checkpoint's
samples (`tracin`, with each point's η and term).

Output: tests/fixtures/influence/reference.json. Runtime: a few seconds.
Usage: python3 scripts/make_influence_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

from peft import PeftModel  # noqa: E402
from torch.func import functional_call, grad  # noqa: E402
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_fixtures import encode_example  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "tiny"
OUT = ROOT / "tests" / "fixtures" / "influence"


def encode(tok, path: Path) -> list[dict]:
    out = []
    for line in open(path):
        c = json.loads(line)
        _, ids, mask = encode_example(tok, c["messages"], "<|im_end|>")
        out.append({"id": c["id"], "ids": ids, "mask": mask})
    return out


def lora_functions(adapter: Path):
    """tiny/llama + `adapter`: its LoRA weights, a sample's summed target NLL as a function of
    them, that function's gradient, and a gradient flattened in a fixed weight order."""
    base = LlamaForCausalLM.from_pretrained(TINY / "llama", torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).eval()
    lora = {n: p.detach() for n, p in model.named_parameters() if "lora_" in n}
    names = sorted(lora)

    def nll_sum(params, ids, mask):
        logits = functional_call(model, params, (torch.tensor([ids]),)).logits[0].double()
        logp = torch.log_softmax(logits[:-1], dim=-1)
        picked = logp.gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
        m = torch.tensor(mask[1:], dtype=torch.float64)
        return -(picked * m).sum()

    flat = lambda g: torch.cat([g[n].reshape(-1).double() for n in names])
    return lora, names, nll_sum, grad(nll_sum), flat


def gradsim_at(adapter: Path, train: list[dict], query: list[dict]) -> dict[str, float]:
    """−⟨∇f, ∇ℓ(z)⟩ per training sample at tiny/llama + `adapter` (the chat query)."""
    lora, _, _, g_sum, flat = lora_functions(adapter)
    total = sum(sum(e["mask"][1:]) for e in query)
    q = sum(flat(g_sum(lora, e["ids"], e["mask"])) for e in query) / total
    return {e["id"]: -float(q @ (flat(g_sum(lora, e["ids"], e["mask"])) / sum(e["mask"][1:])))
            for e in train}


def tracin_reference(tok, train: list[dict], query: list[dict]) -> dict:
    run = OUT / "tracin_run"
    steps = [json.loads(l) for l in open(run / "train.jsonl") if l.strip()]
    points = sorted((int(d.name.split("-")[1]), d) for d in (run / "checkpoints").iterdir())
    final = json.loads((run / "final" / "trainer_state.json").read_text())["samples_seen"]
    if not points or final > points[-1][0]:
        points.append((final, run / "final"))
    scores = {e["id"]: 0.0 for e in train}
    out_points = []
    for samples, folder in points:
        lr = next(s["lr"] for s in steps if s["samples_seen"] >= samples)
        terms = gradsim_at(folder, train, query)
        for k, v in terms.items():
            scores[k] += lr * v
        out_points.append({"samples": samples, "lr": lr, "terms": terms})
    return {"points": out_points, "scores": scores}


def main() -> None:
    tok = PreTrainedTokenizerFast.from_pretrained(TINY / "llama")
    train = encode(tok, TINY / "chat.jsonl")
    query = encode(tok, OUT / "query.jsonl")
    lora, names, nll_sum, g_sum, flat = lora_functions(TINY / "llama_lora")
    total = sum(sum(e["mask"][1:]) for e in query)
    q = sum(flat(g_sum(lora, e["ids"], e["mask"])) for e in query) / total
    with torch.no_grad():
        q_value = float(sum(nll_sum(lora, e["ids"], e["mask"]) for e in query)) / total
    grads = {}
    for e in train:
        grads[e["id"]] = (flat(g_sum(lora, e["ids"], e["mask"])) / sum(e["mask"][1:]))

    def chat(messages, answer):
        return messages + [{"role": "assistant", "content": answer}]

    def scored(messages, text):
        _, ids, mask = encode_example(tok, chat(messages, text), "<|im_end|>")
        return ids, mask

    metric_queries = {}
    # paired: weights ±1/(N·n_targets); choice: 1/(N·bytes). f = Σ w·Σ log p = −Σ w·NLL.
    for name, file, kind in (("hack", "paired.jsonl", "paired"), ("facts", "choice.jsonl", "choice")):
        rows = []
        items = [json.loads(l) for l in open(OUT / file)]
        for it in items:
            if kind == "paired":
                for text, sign in ((it["hack"], 1.0), (it["honest"], -1.0)):
                    ids, mask = scored(it["messages"], text)
                    rows.append((ids, mask, sign / (len(items) * sum(mask[1:]))))
            else:
                text = it["choices"][it["answer"]]
                ids, mask = scored(it["messages"], text)
                rows.append((ids, mask, 1.0 / (len(items) * len(text.encode()))))
        qg = sum(-w * flat(g_sum(lora, ids, mask)) for ids, mask, w in rows)
        with torch.no_grad():
            value = float(sum(-w * nll_sum(lora, ids, mask) for ids, mask, w in rows))
        metric_queries[name] = {
            "query_value": value,
            "gradsim": {k: -float(qg @ g) for k, g in grads.items()},
        }
    # DataInf per module (A and B of one module together).
    modules = sorted({n.rsplit(".lora_", 1)[0] for n in names})
    offsets, pos = {}, 0
    for n in names:
        size = lora[n].numel()
        offsets.setdefault(n.rsplit(".lora_", 1)[0], []).append((pos, pos + size))
        pos += size
    ids = list(grads)
    n_samples = len(ids)
    datainf = {k: 0.0 for k in ids}
    exact = {k: 0.0 for k in ids}
    lambdas = []
    for m in modules:
        idx = torch.cat([torch.arange(a, b) for a, b in offsets[m]])
        v = q[idx]
        gs = torch.stack([grads[k][idx] for k in ids])
        lam = 0.1 * float((gs ** 2).mean())
        lambdas.append(lam)
        sq = (gs ** 2).sum(dim=1)
        vg = gs @ v
        c = vg / (lam + sq)
        gram = gs @ gs.T
        corr = (c.unsqueeze(1) * gram).sum(dim=0) / n_samples
        di = -(vg - corr) / lam
        h = gs.T @ gs / n_samples + lam * torch.eye(gs.shape[1], dtype=gs.dtype)
        ex = -(gs @ torch.linalg.solve(h, v))
        for j, k in enumerate(ids):
            datainf[k] += float(di[j])
            exact[k] += float(ex[j])
    rank = lambda d: {k: r for r, k in enumerate(sorted(ids, key=lambda k: d[k]))}
    ra, rb = rank(datainf), rank(exact)
    spearman = 1 - 6 * sum((ra[k] - rb[k]) ** 2 for k in ids) / (n_samples * (n_samples ** 2 - 1))
    samples = {}
    for e in train:
        n = sum(e["mask"][1:])
        g = flat(g_sum(lora, e["ids"], e["mask"])) / n
        dot = float(q @ g)
        norm = float(g.norm())
        samples[e["id"]] = {"gradsim": -dot, "gradsim_unit": -dot / norm, "grad_norm": norm}
    tracin = tracin_reference(tok, train, query)
    import peft
    import transformers

    ref = {
        "about": "scripts/make_influence_reference.py: gradsim on tiny/llama + llama_lora, "
        "train tiny/chat.jsonl, query influence/query.jsonl; torch.func gradients",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "query_value": q_value,
        "query_grad_norm": float(q.norm()),
        "samples": samples,
        "metric_queries": metric_queries,
        "datainf": {"scores": datainf, "exact_inverse": exact, "spearman_vs_exact": spearman,
                    "lambdas": lambdas},
        "tracin": tracin,
    }
    (OUT / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(json.dumps(ref, indent=1))


if __name__ == "__main__":
    main()
