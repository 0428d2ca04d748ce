"""Adapted linear layers for the MoE methods: goat, goat_plus, molora, hydralora, adamole, full_moe.

The LoRA-expert forward (eq. 12) is computed without a Python loop over experts: all experts
together form one rank-r product ``x -> A_all -> gate -> B_all`` whose r channels are gated by the
sparse routing matrix. With small expert ranks this costs the same as one rank-r LoRA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from goat import init as goat_init
from goat.config import SVD_INITS, GoatConfig


class Router(nn.Module):
    """Bias-free linear router in -> E with softmax, then top-k or AdaMoLE thresholding (eq. 9-10).

    ``forward`` returns the dense gate matrix ``w [T, E]`` (zero outside the selected experts)
    and records the balance loss of App. B (eq. 26-28) and the expert load counts.
    """

    def __init__(self, in_features: int, num_experts: int, top_k: int, *, adaptive_threshold: bool):
        super().__init__()
        self.num_experts = num_experts
        self.top_k = top_k
        self.weight = nn.Parameter(torch.empty(num_experts, in_features))
        # AdaMoLE (Liu & Luo, 2024): per-token threshold tau(x) = sigmoid(w_tau x) / E; experts with
        # p_i >= tau are active with weight (p_i - tau), renormalised. Bias-free, as App. F.1 counts it.
        self.threshold = nn.Linear(in_features, 1, bias=False) if adaptive_threshold else None
        self.last_balance_loss: torch.Tensor | None = None
        self.load_counts = torch.zeros(num_experts)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's nn.Linear default, U(-1/sqrt(n), 1/sqrt(n)), drawn from ``generator``."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        with torch.no_grad():
            self.weight.copy_((torch.rand(self.weight.shape, generator=generator) * 2 - 1) * bound)
            if self.threshold is not None:
                self.threshold.weight.copy_(
                    (torch.rand(self.threshold.weight.shape, generator=generator) * 2 - 1) * bound
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(F.linear(x, self.weight).float(), dim=-1)  # p^i(x), eq. 9
        if self.threshold is None:
            top_p, top_i = probs.topk(self.top_k, dim=-1)
            # eq. 10: softmax restricted to the top-k logits == renormalised top-k probabilities
            gates = torch.zeros_like(probs).scatter(-1, top_i, top_p / top_p.sum(-1, keepdim=True))
            counts = torch.bincount(top_i.flatten(), minlength=self.num_experts)
        else:
            tau = torch.sigmoid(self.threshold(x).float()) / self.num_experts
            kept = F.relu(probs - tau)
            active = probs >= tau  # never empty: max_i p_i >= 1/E >= tau
            gates = kept / kept.sum(-1, keepdim=True).clamp_min(torch.finfo(kept.dtype).tiny)
            counts = active.sum(0)
        counts = counts.float()
        # App. B: L_b = sum_i f_i P_i, f_i = E/(kT) * #tokens to i (k*T = total selections), P_i = mean p_i
        f = self.num_experts * counts / counts.sum()
        self.last_balance_loss = (f * probs.mean(0)).sum()
        self.load_counts = self.load_counts.to(counts.device) + counts.detach()
        return gates


class LoraMoELinear(nn.Module):
    """``y = W' x + sum_j w_j(x) s_j B_j A_j dropout(x)`` with ``W' = W0 - W_res`` (eq. 12, 15).

    Storage: ``lora_A [E_A, d, n]`` (``E_A = 1`` for hydralora's shared A, else E) and
    ``lora_B [E, d, m]`` (B_j transposed, so all experts flatten to one ``[E*d, m]`` matrix).
    Adapter and router parameters are float32 whatever the base dtype.
    """

    def __init__(self, base_layer: nn.Linear, config: GoatConfig):
        super().__init__()
        self.base_layer = base_layer
        self.method = config.method
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.num_experts = config.num_experts
        self.expert_rank = config.expert_rank
        shared_a = config.method == "hydralora"
        E, d = self.num_experts, self.expert_rank
        device = base_layer.weight.device
        self.lora_A = nn.Parameter(torch.zeros(1 if shared_a else E, d, self.in_features, device=device))
        self.lora_B = nn.Parameter(torch.zeros(E, d, self.out_features, device=device))
        self.router = Router(
            self.in_features, E, config.top_k, adaptive_threshold=config.method == "adamole"
        ).to(device)
        self.register_buffer("scalings", torch.ones(E, device=device))
        self.dropout = nn.Dropout(config.lora_dropout) if config.lora_dropout > 0 else nn.Identity()
        # Low-rank factors of W_res (W_res = residual_B @ residual_A), kept on CPU outside the
        # state dict (DDP would broadcast buffers every step); written by save_pretrained.
        self.residual_A: torch.Tensor | None = None
        self.residual_B: torch.Tensor | None = None
        base_layer.requires_grad_(False)

    # ------------------------------------------------------------------ init
    def initialize(self, config: GoatConfig, generator: torch.Generator) -> None:
        """Set router, experts, scalings and subtract W_res from the base weight."""
        self.router.reset_parameters(generator)
        E, d, n, m = self.num_experts, self.expert_rank, self.in_features, self.out_features
        rule = config.resolved_scaling
        s = goat_init.scaling_value(rule, lora_alpha=config.lora_alpha, expert_rank=d, in_features=n, eta=config.eta)
        scalings = torch.full((E,), s)
        uses_svd = config.method in ("goat", "goat_plus") and config.init in SVD_INITS
        if not uses_svd:
            A, B = goat_init.kaiming_zero_factors(self.lora_A.shape[0], d, n, m, generator)
            self._set(A, B.new_zeros(E, m, d), scalings)
            return
        U, S, Vh = goat_init.svd_float32(self.base_layer.weight)
        starts = goat_init.segment_starts(min(m, n), d, E, config.init, generator)
        if config.method == "goat_plus":
            scalings = goat_init.goat_plus_scalings(s, S, starts, d)
        A, B = goat_init.expert_svd_factors(U, S, Vh, starts, d, scalings, config.rho)
        self._set(A, B, scalings)
        # Theorem 3.4: W_res = (1/E) sum_j s_j B_j A_j, as factors of rank r.
        residual_B = (B * (scalings / E)[:, None, None]).permute(1, 0, 2).reshape(m, E * d)
        self.subtract_residual(A.reshape(E * d, n), residual_B)

    def _set(self, A: torch.Tensor, B: torch.Tensor, scalings: torch.Tensor) -> None:
        with torch.no_grad():
            self.lora_A.copy_(A)
            self.lora_B.copy_(B.transpose(1, 2))
            self.scalings.copy_(scalings)

    def subtract_residual(self, residual_A: torch.Tensor, residual_B: torch.Tensor) -> None:
        """``W <- W - residual_B @ residual_A`` in the base dtype; remembers the factors for saving."""
        weight = self.base_layer.weight
        with torch.no_grad():
            weight.sub_((residual_B.float() @ residual_A.float()).to(device=weight.device, dtype=weight.dtype))
        self.residual_A = residual_A.detach().float().cpu()
        self.residual_B = residual_B.detach().float().cpu()

    # --------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        E, d = self.num_experts, self.expert_rank
        tokens = x.reshape(-1, self.in_features).to(self.lora_A.dtype)
        gates = self.router(tokens) * self.scalings  # [T, E]: w_j(x) * s_j
        hidden = F.linear(self.dropout(tokens), self.lora_A.reshape(-1, self.in_features))
        if self.lora_A.shape[0] == 1 and E > 1:  # hydralora: one shared A feeds every B head
            hidden = hidden.unsqueeze(1).expand(-1, E, d)
        gated = (hidden.reshape(-1, E, d) * gates.unsqueeze(-1).to(hidden.dtype)).reshape(-1, E * d)
        delta = gated @ self.lora_B.reshape(E * d, self.out_features)
        return result + delta.reshape(result.shape).to(result.dtype)

    # ------------------------------------------------------------ inspection
    def expert_factors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(A_j [d, n], B_j [m, d])]`` per expert (hydralora: the shared A repeated)."""
        return [
            (self.lora_A[min(j, self.lora_A.shape[0] - 1)], self.lora_B[j].T) for j in range(self.num_experts)
        ]

    def expert_scaling(self) -> list[float]:
        """``[s_j]`` per expert."""
        return self.scalings.tolist()

    def extra_repr(self) -> str:
        return (
            f"method={self.method}, in={self.in_features}, out={self.out_features}, "
            f"experts={self.num_experts}, expert_rank={self.expert_rank}, top_k={self.router.top_k}"
        )


class FullMoELinear(nn.Module):
    """Upcycled full-rank MoE (Full FT MoE baseline): E trainable copies of W0 (and bias), same router.

    ``y = sum_j w_j(x) (W_j x + b_j)``; at init every ``W_j = W0`` so the output equals the base.
    Tokens are dispatched sparsely, expert by expert: a full-rank expert is too costly to run densely.
    """

    def __init__(self, base_layer: nn.Linear, config: GoatConfig):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        self.method = config.method
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.num_experts = config.num_experts
        E = self.num_experts
        self.expert_weight = nn.Parameter(base_layer.weight.detach().float().unsqueeze(0).repeat(E, 1, 1))
        bias = base_layer.bias
        self.expert_bias = None if bias is None else nn.Parameter(bias.detach().float().unsqueeze(0).repeat(E, 1))
        self.router = Router(self.in_features, E, config.top_k, adaptive_threshold=False).to(self.expert_weight.device)
        self.residual_A = self.residual_B = None

    def initialize(self, config: GoatConfig, generator: torch.Generator) -> None:
        self.router.reset_parameters(generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, self.in_features).float()
        gates = self.router(tokens)
        out = tokens.new_zeros(tokens.shape[0], self.out_features)
        for j in range(self.num_experts):
            rows = gates[:, j].nonzero(as_tuple=True)[0]
            bias = None if self.expert_bias is None else self.expert_bias[j]
            expert_out = F.linear(tokens[rows], self.expert_weight[j], bias)
            out.index_add_(0, rows, expert_out * gates[rows, j, None])
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def expert_weights(self) -> list[torch.Tensor]:
        """``[W_j [m, n]]``: full-rank experts have no low-rank factors."""
        return list(self.expert_weight)

    def expert_scaling(self) -> list[float]:
        return [1.0] * self.num_experts


MOE_LAYER_TYPES = (LoraMoELinear, FullMoELinear)
