"""Weighted k-nearest-neighbour classification on a feature bank (the common SSL form).

Features are L2-normalised, similarity is cosine, the ``k`` most similar bank entries vote for
their label with weight ``exp(similarity / temperature)``; the class with the largest summed
weight wins (ties: the smallest class index). Bank rows labelled ``-1`` (unlabelled) are
ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07
UNLABELLED = -1


def check_knn_args(k: int, temperature: float, owner: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{owner}: k must be a positive integer, got {k!r}")
    if not temperature > 0:
        raise ValueError(f"{owner}: temperature must be positive, got {temperature!r}")


def labelled_bank(bank: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The rows of ``bank`` whose label is not ``-1``."""
    keep = labels != UNLABELLED
    return bank[keep], labels[keep]


@torch.no_grad()
def knn_scores(
    query: Tensor,
    bank: Tensor,
    bank_labels: Tensor,
    num_classes: int | None = None,
    k: int = DEFAULT_K,
    temperature: float = DEFAULT_TEMPERATURE,
    chunk_size: int = 1024,
) -> Tensor:
    """Class scores ``(Q, num_classes)``: summed ``exp(cos / temperature)`` of the k nearest.

    Args:
        query: ``(Q, D)`` query features (normalised here).
        bank: ``(N, D)`` bank features (normalised here).
        bank_labels: ``(N,)`` integer labels; ``-1`` rows are ignored.
        num_classes: number of classes (default: largest bank label + 1).
        k: neighbours per query (clipped to the bank size).
        temperature: similarity temperature of the vote weights.
        chunk_size: queries processed at once (bounds the ``Q x N`` similarity memory).
    """
    check_knn_args(k, temperature, "knn")
    bank, bank_labels = labelled_bank(bank, bank_labels.long())
    if bank.shape[0] == 0:
        raise ValueError("knn: the feature bank has no labelled rows (all labels are -1)")
    if num_classes is None:
        num_classes = int(bank_labels.max()) + 1
    bank = F.normalize(bank.float(), dim=1)
    query = F.normalize(query.float().to(bank.device), dim=1)
    bank_labels = bank_labels.to(bank.device)
    kk = min(k, bank.shape[0])
    out = []
    for start in range(0, query.shape[0], chunk_size):
        sim = query[start:start + chunk_size] @ bank.T
        top_sim, top_idx = sim.topk(kk, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, device=bank.device, dtype=weights.dtype)
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        out.append(votes)
    if not out:
        return torch.zeros(0, num_classes, device=bank.device)
    return torch.cat(out)


def topk_correct(scores: Tensor, labels: Tensor, topk: Sequence[int] = (1,)) -> dict[int, int]:
    """Number of rows whose label is among the ``t`` best scores, for each ``t`` in ``topk``.

    Ties are broken towards the smaller class index (stable sort), matching ``argmax``.
    """
    labels = labels.long().to(scores.device)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    hits = order == labels[:, None]
    return {t: int(hits[:, : min(t, scores.shape[1])].any(dim=1).sum()) for t in topk}


@torch.no_grad()
def knn_accuracy(
    query: Tensor,
    query_labels: Tensor,
    bank: Tensor,
    bank_labels: Tensor,
    k: int = DEFAULT_K,
    temperature: float = DEFAULT_TEMPERATURE,
    num_classes: int | None = None,
    topk: Sequence[int] = (1,),
) -> dict[int, float]:
    """Weighted-kNN top-t accuracy (fraction in [0, 1]) of labelled queries, per ``t``.

    Args:
        query: ``(Q, D)`` query features.
        query_labels: ``(Q,)`` labels; ``-1`` queries are not scored.
        bank: ``(N, D)`` bank features.
        bank_labels: ``(N,)`` labels; ``-1`` rows are ignored.
        k: neighbours per query.
        temperature: similarity temperature.
        num_classes: number of classes (default: from the labels).
        topk: which top-t accuracies to return.
    """
    query, query_labels = labelled_bank(query, query_labels.long())
    if query.shape[0] == 0:
        raise ValueError("knn: no labelled query rows to score")
    if num_classes is None:
        num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    scores = knn_scores(query, bank, bank_labels, num_classes, k, temperature)
    hits = topk_correct(scores, query_labels, topk)
    return {t: hits[t] / query.shape[0] for t in topk}
