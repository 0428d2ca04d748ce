"""Initialisation maths: SVD segment choice, expert factors, W_res and scaling rules.

Every function here is a direct transcription of a paper equation; the docstrings cite it.
Conventions: a weight ``W`` is ``[m, n]`` = ``[out_features, in_features]``, ``W = U diag(S) Vh``.
"""

from __future__ import annotations

import math

import torch

from goat.adapters import svd_cache
from goat.adapters.config import Scaling

Factors = tuple[torch.Tensor, torch.Tensor]  # (A [E, d, n], B [E, m, d])


def segment_starts(h: int, d: int, num_experts: int, init: str, generator: torch.Generator | None = None) -> list[int]:
    """First singular index of each expert's d-wide slice of the spectrum (App. E.3).

    ``h = min(m, n)``, ``t = floor(h / E)``:

    - ``spread`` (O, eq. 13): ``k_j = j * t`` — the head of each of E equal spectrum segments.
    - ``principal`` (P): ``k_j = j * d`` — the top ``r`` triplets, E consecutive chunks.
    - ``minor`` (M): ``k_j = h - (j + 1) * d`` — the bottom ``r`` triplets, expert 1 the smallest.
    - ``random`` (R): E distinct d-aligned blocks ``k_j = b_j * d``, ``b_j`` drawn without
      replacement from ``[0, h/d)`` with ``generator`` and sorted. (App. E.3 writes "k = tj,
      t = random(0, h/d - 1)"; we read it as a random block index per expert.)
    """
    if d * num_experts > h:
        raise ValueError(f"r = {d * num_experts} exceeds min(m, n) = {h}; lower r.")
    if init == "spread":
        t = h // num_experts
        return [j * t for j in range(num_experts)]
    if init == "principal":
        return [j * d for j in range(num_experts)]
    if init == "minor":
        return [h - (j + 1) * d for j in range(num_experts)]
    if init == "random":
        blocks = torch.randperm(h // d, generator=generator)[:num_experts]
        return sorted(int(b) * d for b in blocks)
    raise ValueError(f"init={init!r} has no SVD segments; expected spread, principal, minor or random.")


def svd_float32(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of a weight in float32, whatever the model dtype (paper §3.2).

    Served from the active :mod:`goat.adapters.svd_cache` if one is set (``get_goat_model(svd_cache_dir=)``).
    """
    cache = svd_cache.active_cache()
    return _thin_svd(weight) if cache is None else cache.get_or_compute(weight, _thin_svd)


def _thin_svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U, S, Vh`` of ``weight``; a wide matrix (out < in) is decomposed through its transpose,
    which LAPACK does 3-7x faster here and which is the same thin SVD (W = V' S U'^T)."""
    matrix = weight.detach().float()
    if matrix.shape[0] >= matrix.shape[1]:
        return torch.linalg.svd(matrix, full_matrices=False)
    U, S, Vh = torch.linalg.svd(matrix.T, full_matrices=False)
    return Vh.T, S, U.T


def expert_svd_factors(
    U: torch.Tensor,
    S: torch.Tensor,
    Vh: torch.Tensor,
    starts: list[int],
    d: int,
    scalings: torch.Tensor,
    rho: float,
) -> Factors:
    """Expert factors from singular triplets [k_j, k_j + d) (eq. 13, 19).

    ``B_j = U' Σ'^½ / sqrt(s_j ρ)``, ``A_j = Σ'^½ V'ᵀ / sqrt(s_j ρ)``, so that
    ``s_j B_j A_j = U' Σ' V'ᵀ / ρ`` for every expert (with GOAT+'s per-expert ``s_j`` too).
    Returns ``A [E, d, n]`` and ``B [E, m, d]`` in float32.
    """
    A, B = [], []
    for k, s in zip(starts, scalings.tolist()):
        root = (S[k : k + d] / (s * rho)).sqrt()
        A.append(root[:, None] * Vh[k : k + d])
        B.append(U[:, k : k + d] * root[None, :])
    return torch.stack(A), torch.stack(B)


def residual_factors(A: torch.Tensor, B: torch.Tensor, scalings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-r factors ``(A_res [E*d, n], B_res [m, E*d])`` with ``B_res @ A_res = W_res``.

    ``W_res = (1/E) sum_j s_j B_j A_j`` (Theorem 3.4; eq. 18's minimiser under E[w_j] = 1/E), from
    expert factors ``A [E, d, n]`` and ``B [E, m, d]``: the experts side by side, each B_j carrying
    its weight s_j / E.
    """
    E, m, d = B.shape
    B_res = (B * (scalings.to(B.device, B.dtype) / E)[:, None, None]).permute(1, 0, 2).reshape(m, E * d)
    return A.reshape(E * d, A.shape[-1]), B_res


def scaling_value(rule: Scaling, *, lora_alpha: float, expert_rank: int, in_features: int, eta: float) -> float:
    """The scaling s of one expert of rank d.

    - ``theory``: ``sqrt(3 n η / d)`` (Theorem 3.5, n = in_features).
    - ``alpha``: ``α / d`` (LoRA; the authors' GOAT scripts).
    - ``rs``: ``α / sqrt(d)`` (rsLoRA).
    - a number: used as is.
    """
    if rule == "theory":
        return math.sqrt(3.0 * in_features * eta / expert_rank)
    if rule == "alpha":
        return lora_alpha / expert_rank
    if rule == "rs":
        return lora_alpha / math.sqrt(expert_rank)
    return float(rule)


def goat_plus_scalings(first_scaling: float, S: torch.Tensor, starts: list[int], d: int) -> torch.Tensor:
    """GOAT+ per-expert scalings ``s_j = s_1 sqrt(σ_1 / σ_j)`` (App. D, eq. 83).

    For ranks d > 1, σ_j is the sum of the segment's singular values (App. D).
    """
    sigma = torch.stack([S[k : k + d].sum() for k in starts]).double()
    return (first_scaling * (sigma[0] / sigma).sqrt()).float()


def kaiming_zero_factors(
    num_experts: int, d: int, in_features: int, out_features: int, generator: torch.Generator
) -> Factors:
    """Zero-init LoRA experts: A ~ kaiming_uniform(a=√5) = U(-1/√n, 1/√n), B = 0 (MoLoRA)."""
    bound = 1.0 / math.sqrt(in_features)
    A = (torch.rand(num_experts, d, in_features, generator=generator) * 2 - 1) * bound
    B = torch.zeros(num_experts, out_features, d)
    return A, B
