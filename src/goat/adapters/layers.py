"""Adapted linear layers for the MoE methods: goat, goat_plus, molora, hydralora, adamole, full_moe.

The LoRA-expert forward (eq. 12) is computed without a Python loop over experts: all experts
together form one rank-r product ``x -> A_all -> gate -> B_all`` whose r channels are gated by the
sparse routing matrix. With small expert ranks this costs the same as one rank-r LoRA.

The frozen base weight is never modified. W_res (Theorem 3.4) is a frozen rank-r path subtracted in
the forward, ``y = W0 x - B_res A_res x + sum_j w_j(x) s_j B_j A_j x``, which equals eq. 15's
``(W0 - W_res) x + ...``. This keeps W0 exact for ``unload``/``disable_adapter``, lets several
adapters share one base (each one's W_res applies only while it is active) and works on a quantized
base, whose weights cannot absorb a subtraction. Its cost is one more rank-r product per layer.

A layer holds one or more named adapters (``adapters``), of which at most one is active.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from goat.adapters import init as goat_init
from goat.adapters.config import SVD_INITS, GoatConfig
from goat.adapters.quantization import dense_weight


@dataclass(slots=True)
class RoutingRecord:
    """What a router's forwards leave behind: the balance loss of the last one (or, after a forward
    without autograd, its inputs, to compute it from when read) and the expert choices since the last
    reset (counted into ``load_counts`` when read). A plain object: setting a module attribute costs
    more than a decoding step's routing operations."""

    load_counts: torch.Tensor
    balance_loss: torch.Tensor | None = None
    balance_inputs: tuple[torch.Tensor, torch.Tensor] | None = None  # (logits [T, E], selections)
    uncounted: list[torch.Tensor] = field(default_factory=list)  # selections not yet in load_counts


class Router(nn.Module):
    """Bias-free linear router in -> E with softmax, then top-k or AdaMoLE thresholding (eq. 9-10).

    ``forward`` returns the dense gate matrix ``w [T, E]`` (zero outside the selected experts)
    and records the balance loss of App. B (eq. 26-28) and the expert load counts. A forward without
    autograd (evaluation, decoding) does only what its output needs: it keeps the loss's inputs and
    its expert choices, and computes ``last_balance_loss`` and ``load_counts`` when they are read, by
    the same operations. Decoding pays per operation, and not for statistics that nothing reads.
    """

    # Forwards without autograd whose expert choices may wait to be counted (bounds what a long
    # generation holds).
    max_uncounted = 1024

    def __init__(self, in_features: int, num_experts: int, top_k: int, *, adaptive_threshold: bool):
        super().__init__()
        self.num_experts = num_experts
        self.top_k = top_k
        self.weight = nn.Parameter(torch.empty(num_experts, in_features))
        # AdaMoLE (Liu & Luo, 2024): per-token threshold tau(x) = sigmoid(w_tau x) / E; experts with
        # p_i >= tau are active with weight (p_i - tau), renormalised. Bias-free, as App. F.1 counts it.
        self.threshold = nn.Linear(in_features, 1, bias=False) if adaptive_threshold else None
        self.record = RoutingRecord(load_counts=torch.zeros(num_experts))

    @property
    def last_balance_loss(self) -> torch.Tensor | None:
        """The last forward's L_b (App. B), or None before any forward."""
        record = self.record
        if record.balance_inputs is not None:
            logits, selected = record.balance_inputs
            record.balance_loss = self._balance(F.softmax(logits, dim=-1), self._counts(selected))
            record.balance_inputs = None
        return record.balance_loss

    @last_balance_loss.setter
    def last_balance_loss(self, value: torch.Tensor | None) -> None:
        self.record.balance_inputs = None
        self.record.balance_loss = value

    @property
    def load_counts(self) -> torch.Tensor:
        """Selections of each expert ``[E]`` (float) since the last reset: tokens for top-k routing
        (k per token), active experts for AdaMoLE."""
        self._count_uncounted()
        return self.record.load_counts

    @load_counts.setter
    def load_counts(self, value: torch.Tensor) -> None:
        self.record.uncounted = []
        self.record.load_counts = value

    def _count_uncounted(self) -> None:
        record = self.record
        if record.uncounted:
            selected = torch.cat(record.uncounted)
            record.uncounted = []
            record.load_counts = record.load_counts.to(selected.device) + self._counts(selected)

    def _balance(self, probs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        # App. B: L_b = sum_i f_i P_i, f_i = E/(kT) * #tokens to i (k*T = total selections), P_i = mean p_i
        f = self.num_experts * counts / counts.sum()
        return (f * probs.mean(0)).sum()

    def _counts(self, selected: torch.Tensor) -> torch.Tensor:
        """Selections of each expert ``[E]``: from top-k indices ``[T, k]`` or AdaMoLE's mask ``[T, E]``.
        (Not ``torch.bincount``, which on a GPU waits for the device to size its output.)"""
        if selected.dtype == torch.bool:
            return selected.sum(0).float()
        zeros = torch.zeros(self.num_experts, device=selected.device)
        return zeros.index_put_((selected.flatten(),), zeros.new_ones(()), accumulate=True)

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
        threshold_logits = None if self.threshold is None else self.threshold(x)
        return self.route(F.linear(x, self.weight), threshold_logits)

    def route(self, logits: torch.Tensor, threshold_logits: torch.Tensor | None = None) -> torch.Tensor:
        """The dense gates ``w [T, E]`` from the router logits ``[T, E]`` (eq. 9-10); AdaMoLE also takes its
        threshold logits ``w_tau x [T, 1]``. Records the balance loss (or its inputs) and the expert load."""
        logits = logits.float()
        if not torch.is_grad_enabled():  # as LoraExperts decides: one grad mode, one arithmetic
            return self._route_without_autograd(logits, threshold_logits)
        probs = F.softmax(logits, dim=-1)  # p^i(x), eq. 9
        if self.threshold is None:
            top_p, selected = probs.topk(self.top_k, dim=-1)
            # eq. 10: softmax restricted to the top-k logits == renormalised top-k probabilities
            gates = torch.zeros_like(probs).scatter(-1, selected, top_p / top_p.sum(-1, keepdim=True))
        else:
            gates, selected = self._adaptive_gates(probs, threshold_logits)
        counts = self._counts(selected)
        self.last_balance_loss = self._balance(probs, counts)
        self.load_counts = self.load_counts.to(counts.device) + counts
        return gates

    def _route_without_autograd(self, logits: torch.Tensor, threshold_logits: torch.Tensor | None) -> torch.Tensor:
        """:meth:`route` under ``torch.no_grad``/``inference_mode``: eq. 10 as a softmax over the top-k logits
        (the same value to rounding, two operations fewer); the balance loss and the load are computed
        when read."""
        if threshold_logits is None:
            top_logits, selected = logits.topk(self.top_k, dim=-1)
            gates = torch.zeros_like(logits).scatter_(-1, selected, top_logits.softmax(-1))
        else:
            gates, selected = self._adaptive_gates(logits.softmax(-1), threshold_logits)
        record = self.record
        record.balance_inputs = (logits, selected)
        record.uncounted.append(selected)
        if len(record.uncounted) >= self.max_uncounted:
            self._count_uncounted()
        return gates

    def _adaptive_gates(self, probs: torch.Tensor, threshold_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """AdaMoLE's gates ``[T, E]`` and active-expert mask ``[T, E]`` from the probabilities."""
        tau = torch.sigmoid(threshold_logits.float()) / self.num_experts
        kept = F.relu(probs - tau)
        active = probs >= tau  # never empty: max_i p_i >= 1/E >= tau
        return kept / kept.sum(-1, keepdim=True).clamp_min(torch.finfo(kept.dtype).tiny), active


class LoraExperts(nn.Module):
    """One adapter of one layer: E LoRA experts, their router and the frozen W_res path (eq. 12, 15).

    Storage: ``lora_A [E_A, d, n]`` (``E_A = 1`` for hydralora's shared A, else E) and
    ``lora_B [E, d, m]`` (B_j transposed, so all experts flatten to one ``[E*d, m]`` matrix).
    ``residual_A [E*d, n]``, ``residual_B [m, E*d]`` (``W_res = residual_B @ residual_A``) exist for
    methods with an SVD prior; they are plain tensors, not buffers (DDP would broadcast buffers every
    step), moved with the module by ``_apply``. Everything is float32 whatever the base dtype.
    """

    def __init__(self, in_features: int, out_features: int, config: GoatConfig, device: torch.device):
        super().__init__()
        self.method = config.method
        self.in_features, self.out_features = in_features, out_features
        self.num_experts, self.expert_rank = config.num_experts, config.expert_rank
        E, d = self.num_experts, self.expert_rank
        shared_a = config.method == "hydralora"
        self.lora_A = nn.Parameter(torch.zeros(1 if shared_a else E, d, in_features, device=device))
        self.lora_B = nn.Parameter(torch.zeros(E, d, out_features, device=device))
        self.router = Router(in_features, E, config.top_k, adaptive_threshold=config.method == "adamole").to(device)
        self.register_buffer("scalings", torch.ones(E, device=device))
        self.dropout = nn.Dropout(config.lora_dropout) if config.lora_dropout > 0 else nn.Identity()
        self.residual_A: torch.Tensor | None = None
        self.residual_B: torch.Tensor | None = None
        if has_svd_prior(config):  # placeholders with the final shapes, so an uninitialised layer lists them
            self.residual_A = torch.zeros(E * d, in_features, device=device)
            self.residual_B = torch.zeros(out_features, E * d, device=device)

    def initialize(self, config: GoatConfig, generator: torch.Generator, base_layer: nn.Module) -> None:
        """Set router, experts and scalings, and W_res from the experts' initial values (Thm 3.4)."""
        self.router.reset_parameters(generator)
        E, d, n, m = self.num_experts, self.expert_rank, self.in_features, self.out_features
        s = goat_init.scaling_value(
            config.resolved_scaling, lora_alpha=config.lora_alpha, expert_rank=d, in_features=n, eta=config.eta
        )
        scalings = torch.full((E,), s)
        if not has_svd_prior(config):
            A, _ = goat_init.kaiming_zero_factors(self.lora_A.shape[0], d, n, m, generator)
            self._set(A, torch.zeros(E, m, d), scalings)
            return
        U, S, Vh = goat_init.svd_float32(dense_weight(base_layer))
        starts = goat_init.segment_starts(min(m, n), d, E, config.init, generator)
        if config.method == "goat_plus":
            scalings = goat_init.goat_plus_scalings(s, S, starts, d)
        A, B = goat_init.expert_svd_factors(U, S, Vh, starts, d, scalings, config.rho)
        self._set(A, B, scalings)
        self.set_residual(*goat_init.residual_factors(A, B, scalings))

    def _set(self, A: torch.Tensor, B: torch.Tensor, scalings: torch.Tensor) -> None:
        with torch.no_grad():
            self.lora_A.copy_(A)
            self.lora_B.copy_(B.transpose(1, 2))
            self.scalings.copy_(scalings)

    def set_residual(self, residual_A: torch.Tensor, residual_B: torch.Tensor) -> None:
        """``W_res = residual_B @ residual_A``, subtracted in every forward of this adapter."""
        device = self.lora_A.device
        self.residual_A = residual_A.detach().to(device=device, dtype=torch.float32).clone()
        self.residual_B = residual_B.detach().to(device=device, dtype=torch.float32).clone()

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 (nn.Module's signature)
        super()._apply(fn, recurse)
        if self.residual_A is not None:
            self.residual_A, self.residual_B = fn(self.residual_A), fn(self.residual_B)
        return self

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``sum_j w_j(x) s_j B_j A_j dropout(x) - W_res x`` for tokens ``[T, n]`` -> ``[T, m]``."""
        if not torch.is_grad_enabled() and (not self.training or isinstance(self.dropout, nn.Identity)):
            return self._forward_without_autograd(tokens)
        E, d = self.num_experts, self.expert_rank
        tokens = tokens.to(self.lora_A.dtype)
        gates = self.router(tokens) * self.scalings  # [T, E]: w_j(x) * s_j
        hidden = F.linear(self.dropout(tokens), self.lora_A.reshape(-1, self.in_features))
        if self.lora_A.shape[0] == 1 and E > 1:  # hydralora: one shared A feeds every B head
            hidden = hidden.unsqueeze(1).expand(-1, E, d)
        gated = (hidden.reshape(-1, E, d) * gates.unsqueeze(-1).to(hidden.dtype)).reshape(-1, E * d)
        B = self.lora_B.reshape(E * d, self.out_features)
        if self.residual_A is None:
            return gated @ B
        # - W_res x = - B_res (A_res x) rides in the experts' second product: one [T, 2Ed] @ [2Ed, m] GEMM
        # (measured ~10 % faster per layer than a second GEMM at width 384; benchmarks/layer_speed.py)
        residual = F.linear(tokens, self.residual_A)
        return torch.cat([gated, -residual], dim=1) @ torch.cat([B, self.residual_B.T.to(B.dtype)], dim=0)

    def _forward_without_autograd(self, tokens: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` when nothing needs gradients and dropout is off (evaluation, decoding).

        At decoding each layer sees one token per sequence, so the cost is the number of operations
        and Python steps, not FLOPs: the gates are applied in place, the router is not called as a
        module and skips what only training reads (:meth:`Router.route`), and tensors are read from
        the module's dicts. Equal to :meth:`forward` up to float rounding (``tests/test_layer_pins.py``).
        """
        E, d, T = self.num_experts, self.expert_rank, tokens.shape[0]
        params, router = self._parameters, self._modules["router"]  # nn.Module's attribute lookup costs a step
        A = params["lora_A"]
        if tokens.dtype != A.dtype:
            tokens = tokens.to(A.dtype)
        router_weight = router._parameters["weight"]
        if router.threshold is None and router_weight.numel():
            gates = router.route(F.linear(tokens, router_weight))
        else:  # AdaMoLE, or a router whose weight DeepSpeed ZeRO-3 gathers only when it is called
            gates = router(tokens)
        gates = gates.mul_(self._buffers["scalings"]).unsqueeze(-1)  # [T, E, 1]: w_j(x) * s_j
        hidden = F.linear(tokens, A.view(-1, self.in_features))  # (the parameters are contiguous: views)
        if A.shape[0] == 1 and E > 1:  # hydralora: one shared A feeds every B head
            hidden = hidden.unsqueeze(1) * gates
        else:
            hidden.view(T, E, d).mul_(gates)
        delta = hidden.view(T, E * d) @ params["lora_B"].view(E * d, self.out_features)
        if self.residual_A is None:
            return delta
        return delta.addmm_(F.linear(tokens, self.residual_A), self.residual_B.T, alpha=-1)

    def saved_tensors(self) -> dict[str, tuple[str | None, torch.Tensor]]:
        """``{key: (parameter name or None, tensor)}`` of what a saved adapter holds for this layer."""
        tensors = {name: (name, param) for name, param in self.named_parameters()}
        tensors["scalings"] = (None, self.scalings)
        if self.residual_A is not None:
            tensors["residual_A"] = (None, self.residual_A)
            tensors["residual_B"] = (None, self.residual_B)
        return tensors

    def load_saved(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy tensors keyed as :meth:`saved_tensors` keys them into this adapter."""
        residual = tensors.get("residual_A"), tensors.get("residual_B")
        live = {name: value for name, (_, value) in self.saved_tensors().items() if not name.startswith("residual_")}
        with torch.no_grad():
            for name, value in live.items():
                value.copy_(tensors[name])
        if residual[0] is not None:
            self.set_residual(*residual)

    def expert_factors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(A_j [d, n], B_j [m, d])]`` per expert (hydralora: the shared A repeated)."""
        return [(self.lora_A[min(j, self.lora_A.shape[0] - 1)], self.lora_B[j].T) for j in range(self.num_experts)]

    def expert_scaling(self) -> list[float]:
        """``[s_j]`` per expert."""
        return self.scalings.tolist()


class FullExperts(nn.Module):
    """One full-rank MoE adapter (Full FT MoE baseline): E trainable copies of W0 (and bias), a router.

    ``y = sum_j w_j(x) (W_j x + b_j)``; at init every ``W_j = W0`` so the output equals the base.
    Tokens are dispatched sparsely, expert by expert: a full-rank expert is too costly to run densely.
    """

    def __init__(self, base_layer: nn.Module, config: GoatConfig):
        super().__init__()
        self.method = config.method
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        self.num_experts = E = config.num_experts
        weight = dense_weight(base_layer).detach().float()
        self.expert_weight = nn.Parameter(weight.unsqueeze(0).repeat(E, 1, 1))
        bias = base_layer.bias
        self.expert_bias = None if bias is None else nn.Parameter(bias.detach().float().unsqueeze(0).repeat(E, 1))
        self.router = Router(self.in_features, E, config.top_k, adaptive_threshold=False).to(weight.device)

    def initialize(self, config: GoatConfig, generator: torch.Generator, base_layer: nn.Module) -> None:
        self.router.reset_parameters(generator)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``sum_j w_j(x) (W_j x + b_j)`` for tokens ``[T, n]`` -> ``[T, m]``."""
        tokens = tokens.float()
        gates = self.router(tokens)
        out = tokens.new_zeros(tokens.shape[0], self.out_features)
        for j in range(self.num_experts):
            rows = gates[:, j].nonzero(as_tuple=True)[0]
            bias = None if self.expert_bias is None else self.expert_bias[j]
            expert_out = F.linear(tokens[rows], self.expert_weight[j], bias)
            out.index_add_(0, rows, expert_out * gates[rows, j, None])
        return out

    def saved_tensors(self) -> dict[str, tuple[str | None, torch.Tensor]]:
        return {name: (name, param) for name, param in self.named_parameters()}

    def load_saved(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, param in self.named_parameters():
                param.copy_(tensors[name])

    def expert_scaling(self) -> list[float]:
        return [1.0] * self.num_experts


def has_svd_prior(config: GoatConfig) -> bool:
    """True when the experts start from SVD segments of W0, so that W_res is non-zero (§3.2)."""
    return config.method in ("goat", "goat_plus") and config.init in SVD_INITS


class MoELinear(nn.Module):
    """A frozen linear layer ``base_layer`` with named MoE adapters, at most one of them active.

    ``y = base_layer(x) + active adapter(x)``; with no active adapter here (another adapter of the
    model is active, or adapters are disabled) the layer is exactly ``base_layer``. Attribute
    shortcuts (``router``, ``lora_A``, ...) read the active adapter.
    """

    def __init__(self, base_layer: nn.Module):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.adapters = nn.ModuleDict()
        self.active_adapter: str | None = None
        self.disabled = False

    def make_adapter(self, config: GoatConfig) -> nn.Module:
        raise NotImplementedError

    def attach(self, name: str, adapter: nn.Module) -> None:
        """Hold ``adapter`` (from :meth:`make_adapter`) as adapter ``name``; the first one becomes active."""
        self.adapters[name] = adapter
        if self.active_adapter is None:
            self.active_adapter = name

    def delete_adapter(self, name: str) -> None:
        del self.adapters[name]
        if self.active_adapter == name:
            self.active_adapter = None

    @property
    def active(self) -> nn.Module | None:
        """The adapter this forward runs, or None."""
        if self.disabled or self.active_adapter not in self.adapters:
            return None
        return self.adapters[self.active_adapter]

    def _current(self) -> nn.Module:
        if self.active_adapter not in self.adapters:
            raise RuntimeError(f"this layer holds adapters {list(self.adapters)}, none of them active.")
        return self.adapters[self.active_adapter]

    @property
    def method(self) -> str:
        return self._current().method

    @property
    def num_experts(self) -> int:
        return self._current().num_experts

    @property
    def router(self) -> Router:
        return self._current().router

    def expert_scaling(self) -> list[float]:
        """``[s_j]`` per expert of the active adapter."""
        return self._current().expert_scaling()

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, active={self.active_adapter!r}, disabled={self.disabled}"
        )


class LoraMoELinear(MoELinear):
    """``y = W0 x - W_res x + sum_j w_j(x) s_j B_j A_j dropout(x)`` (eq. 12, 15): LoRA-expert adapters."""

    def make_adapter(self, config: GoatConfig) -> LoraExperts:
        return LoraExperts(self.in_features, self.out_features, config, self.base_layer.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        adapter = self.active
        if adapter is None:
            return result
        delta = adapter(x.reshape(-1, self.in_features))
        if delta.dtype != result.dtype:
            delta = delta.to(result.dtype)
        return result + delta.view(result.shape)

    @property
    def lora_A(self) -> nn.Parameter:
        return self._current().lora_A

    @property
    def lora_B(self) -> nn.Parameter:
        return self._current().lora_B

    @property
    def scalings(self) -> torch.Tensor:
        return self._current().scalings

    @property
    def dropout(self) -> nn.Module:
        return self._current().dropout

    @property
    def expert_rank(self) -> int:
        return self._current().expert_rank

    @property
    def residual_A(self) -> torch.Tensor | None:
        return self._current().residual_A

    @property
    def residual_B(self) -> torch.Tensor | None:
        return self._current().residual_B

    def expert_factors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(A_j [d, n], B_j [m, d])]`` per expert of the active adapter."""
        return self._current().expert_factors()


class FullMoELinear(MoELinear):
    """Full-rank MoE adapters: the active one replaces the base output, ``y = sum_j w_j(x) (W_j x + b_j)``."""

    def make_adapter(self, config: GoatConfig) -> FullExperts:
        return FullExperts(self.base_layer, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adapter = self.active
        if adapter is None:
            return self.base_layer(x)
        out = adapter(x.reshape(-1, self.in_features))
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    @property
    def expert_weight(self) -> nn.Parameter:
        return self._current().expert_weight

    @property
    def expert_bias(self) -> nn.Parameter | None:
        return self._current().expert_bias


MOE_LAYER_TYPES = (LoraMoELinear, FullMoELinear)
