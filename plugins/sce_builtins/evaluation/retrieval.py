"""Video retrieval recall (the reference ``retrieval_from_bank``): test videos query a bank.

Optionally both sides are centred by the bank's mean feature; then they are L2-normalised and
compared by dot product. ``R@k`` is the fraction of queries whose ``k`` most similar bank videos
include one of the query's class (a fraction in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_KS = (1, 5, 10, 20, 50)


def check_ks(ks: Sequence[int], owner: str) -> tuple[int, ...]:
    """``ks`` as a tuple of positive integers, else a one-line error."""
    out = tuple(ks)
    if not out or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in out):
        raise ValueError(f"{owner}: ks must be positive integers, e.g. [1, 5, 10, 20, 50], got {list(ks)!r}")
    return out


@torch.no_grad()
def retrieval_recall(
    query: Tensor,
    query_labels: Tensor,
    bank: Tensor,
    bank_labels: Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    center: bool = True,
    chunk_size: int = 1024,
) -> dict[int, float]:
    """``{k: R@k}`` of labelled queries (label -1 rows are left out on both sides).

    Args:
        query: ``(Q, D)`` features of the query videos.
        query_labels: ``(Q,)`` their labels.
        bank: ``(N, D)`` features of the bank videos.
        bank_labels: ``(N,)`` their labels.
        ks: the recalls to compute (k larger than the bank: the whole bank).
        center: subtract the bank's mean feature from both sides before normalising.
        chunk_size: queries compared at once (bounds the ``Q x N`` similarity memory).
    """
    ks = check_ks(ks, "retrieval")
    keep_q, keep_b = query_labels != -1, bank_labels != -1
    query, query_labels = query[keep_q].float(), query_labels[keep_q].long()
    bank, bank_labels = bank[keep_b].float().to(query.device), bank_labels[keep_b].long().to(query.device)
    if query.shape[0] == 0 or bank.shape[0] == 0:
        raise ValueError("retrieval: needs labelled query and bank videos (labels other than -1)")
    if center:
        mean = bank.mean(dim=0, keepdim=True)
        query, bank = query - mean, bank - mean
    query, bank = F.normalize(query, dim=1), F.normalize(bank, dim=1)
    widest = min(max(ks), bank.shape[0])
    hits = {k: 0 for k in ks}
    for start in range(0, query.shape[0], chunk_size):
        sim = query[start:start + chunk_size] @ bank.T
        top = sim.topk(widest, dim=1).indices
        same = bank_labels[top] == query_labels[start:start + chunk_size, None]
        for k in ks:
            hits[k] += int(same[:, :k].any(dim=1).sum())
    return {k: hits[k] / query.shape[0] for k in ks}
