"""How fast, and in how much memory, the evaluator ranks a whole catalog.

    python -m bench.eval_bench --users 100000 --items 50000 --dim 64 --item-chunk 8192

Synthetic embeddings (users x items dot products), random seen items masked, one target per
user: the evaluator's own cost (scoring, masking, top-K, metrics), as a model with
`score_items` would see it. `benchmark_full_ranking` is the function other tools call.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from bench.evaluation import MetricAccumulator


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def benchmark_full_ranking(n_users: int, n_items: int, dim: int = 64, user_batch: int = 1024,
                           item_chunk: int | None = None, ks: tuple[int, ...] = (10, 20),
                           n_seen: int = 20, seed: int = 0, device: str = "cpu") -> dict:
    """Rank every item for every user; returns seconds (evaluation only, batch synthesis
    excluded), users per second and the process's peak RSS in MB (before and after)."""
    rss_before = _peak_rss_mb()
    g = torch.Generator().manual_seed(seed)
    user_emb = torch.randn(n_users, dim, generator=g).to(device)
    item_emb = torch.randn(n_items, dim, generator=g).to(device)
    acc = MetricAccumulator(list(ks), n_items, torch.rand(n_items, generator=g), item_chunk)
    eval_s = 0.0
    for start in range(0, n_users, user_batch):
        users = torch.arange(start, min(start + user_batch, n_users))
        rows = torch.arange(len(users))
        seen = torch.stack([rows.repeat_interleave(n_seen),
                            torch.randint(0, n_items, (len(users) * n_seen,), generator=g)])
        targets = torch.stack([rows, torch.randint(0, n_items, (len(users),), generator=g)])
        batch = {"users": users, "seen": seen, "targets": targets}
        if device != "cpu":
            torch.cuda.synchronize()
        started = time.perf_counter()
        vectors = user_emb[users.to(device)]
        top = acc.rank(lambda a, b, v=vectors: v @ item_emb[a:b].T, batch)
        acc.update_ranked(top, batch)
        if device != "cpu":
            torch.cuda.synchronize()
        eval_s += time.perf_counter() - started
    summary = acc.summary()
    out = {
        "n_users": n_users, "n_items": n_items, "dim": dim, "user_batch": user_batch,
        "item_chunk": item_chunk, "device": device, "threads": torch.get_num_threads(),
        "eval_s": round(eval_s, 3), "users_per_s": round(n_users / max(eval_s, 1e-9)),
        "peak_rss_mb_before": round(rss_before), "peak_rss_mb": round(_peak_rss_mb()),
        "ndcg@10": round(summary["ndcg@10"], 6),
    }
    if device != "cpu":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.eval_bench", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--users", type=int, default=6040)
    p.add_argument("--items", type=int, default=3706)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--user-batch", type=int, default=1024)
    p.add_argument("--item-chunk", type=int, default=None, help="default: the whole catalog")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(benchmark_full_ranking(args.users, args.items, args.dim, args.user_batch,
                                            args.item_chunk, device=args.device)))


if __name__ == "__main__":
    main()
