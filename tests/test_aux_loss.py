"""The balance loss belongs to the model (issue 19): outputs.loss = task loss + aux_loss_coef * L_b (App. B,
eq. 26-28) in training mode, checked against L_b recomputed from each router's input; exact under gradient
accumulation; saved with the adapter; and a helper for losses computed from the logits."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import goat
from goat.adapters.aux_loss import add_aux_loss, find_hook
from tests.conftest import ROBERTA_TARGETS, tiny_roberta
from tests.tiny_models import tiny_llama

INPUTS = {"input_ids": torch.randint(3, 100, (4, 10), generator=torch.Generator().manual_seed(0))}
LABELS = torch.tensor([0, 1, 2, 1])


def _classifier(coef: float) -> goat.GoatModel:
    base = tiny_roberta()
    for module in base.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return goat.get_goat_model(
        base,
        goat.GoatConfig(
            r=8,
            num_experts=4,
            top_k=2,
            lora_dropout=0.0,
            aux_loss_coef=coef,
            target_modules=ROBERTA_TARGETS,
            modules_to_save=["classifier"],
        ),
    )


def _balance_from_routers(model: goat.GoatModel, router_inputs: dict[int, torch.Tensor]) -> torch.Tensor:
    """L_b = sum over layers of sum_i f_i P_i, f_i = E/(kT) * #tokens routed to i, P_i = mean p_i (eq. 26-28)."""
    total = torch.zeros(())
    for layer in model.adapted_layers().values():
        x = router_inputs[id(layer)].reshape(-1, layer.router.weight.shape[1])
        probs = F.softmax(x @ layer.router.weight.T, dim=-1)
        counts = torch.bincount(
            probs.topk(layer.router.top_k, dim=-1).indices.flatten(), minlength=probs.shape[1]
        ).float()
        total = total + (probs.shape[1] / (layer.router.top_k * x.shape[0]) * counts * probs.mean(0)).sum()
    return total


@pytest.mark.parametrize("coef", [0.0, 1e-3, 0.5])
@pytest.mark.parametrize("call", ["goat_model", "adapted_model"])
def test_outputs_loss_is_task_loss_plus_coef_times_balance_loss(coef, call):
    model = _classifier(coef)
    target = model if call == "goat_model" else model.get_base_model()  # the model adapted in place works alike
    captured: dict[int, torch.Tensor] = {}
    hooks = [
        layer.register_forward_pre_hook(lambda mod, args: captured.__setitem__(id(mod), args[0].detach()))
        for layer in model.adapted_layers().values()
    ]
    model.train()
    loss = target(**INPUTS, labels=LABELS).loss
    for hook in hooks:
        hook.remove()
    task = F.cross_entropy(model.eval()(**INPUTS).logits, LABELS)  # no dropout: eval = train numerically
    expected = task + coef * _balance_from_routers(model, captured)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)
    if coef:
        assert loss.item() > task.item()  # L_b >= 1 per layer: the term is really there
    assert model(**INPUTS, labels=LABELS).loss.item() == pytest.approx(task.item(), rel=1e-6)  # eval: task loss only


def test_the_balance_term_reaches_the_routers_only_with_a_coefficient():
    grads = {}
    for coef in (0.0, 0.5):
        model = _classifier(coef).train()
        model(**INPUTS, labels=LABELS).loss.backward()
        grads[coef] = torch.cat([p.grad.flatten() for n, p in model.named_parameters() if n.endswith("router.weight")])
    assert (grads[0.5] - grads[0.0]).norm() > 1e-3 * grads[0.0].norm()


def test_aux_loss_coef_is_saved_with_the_adapter_and_has_one_default(tmp_path):
    assert goat.GoatConfig().aux_loss_coef == 1e-3
    _classifier(0.25).save_pretrained(tmp_path / "a")
    restored = goat.load_goat_model(tiny_roberta(), tmp_path / "a")
    assert restored.goat_config.aux_loss_coef == 0.25
    config_file = tmp_path / "a" / "adapter_config.json"  # a folder saved before the field existed: the default
    record = json.loads(config_file.read_text())
    del record["goat_config"]["aux_loss_coef"]
    config_file.write_text(json.dumps(record))
    assert goat.load_goat_model(tiny_roberta(), tmp_path / "a").goat_config.aux_loss_coef == 1e-3
    with pytest.raises(ValueError, match="aux_loss_coef=-1 must be a number >= 0"):
        goat.GoatConfig(aux_loss_coef=-1)


def _causal_lm(coef: float) -> tuple[goat.GoatModel, torch.Tensor, torch.Tensor]:
    model = goat.get_goat_model(
        tiny_llama(),
        goat.GoatConfig(
            r=8, num_experts=4, top_k=2, lora_dropout=0.0, aux_loss_coef=coef, target_modules=["q_proj", "v_proj"]
        ),
    )
    ids = torch.randint(3, 64, (8, 12), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[:, :4] = -100
    return model.train(), ids, labels


def _router_grads_of_step(coef: float, micro: int, labels_fn=None) -> torch.Tensor:
    """One optimiser step's router gradient over 8 rows as Trainer runs a causal LM: micro-batches of ``micro``
    rows, each loss normalised by the whole step's label-token count (``num_items_in_batch``), summed."""
    model, ids, labels = _causal_lm(coef)
    ids, labels = ids[:1].repeat(8, 1), labels[:1].repeat(8, 1)  # 8 copies: every micro-batch routes alike
    num_items = labels[:, 1:].ne(-100).sum()
    for start in range(0, 8, micro):
        rows = slice(start, start + micro)
        model(input_ids=ids[rows], labels=labels[rows], num_items_in_batch=num_items).loss.backward()
    return torch.cat([p.grad.flatten() for n, p in model.named_parameters() if n.endswith("router.weight")])


def test_gradient_accumulation_keeps_the_term_exact_with_num_items_in_batch():
    """GA 1 x 8 and 4 x 2: the balance term's router gradient is the same (each micro-batch weighted by its
    share of the step's label tokens), not 4 times larger."""
    aux = {micro: _router_grads_of_step(1.0, micro) - _router_grads_of_step(0.0, micro) for micro in (8, 2)}
    assert aux[8].norm() > 1e-4
    torch.testing.assert_close(aux[2], aux[8], rtol=1e-4, atol=1e-5 * aux[8].abs().max().item())


def test_an_uneven_micro_batch_is_weighted_by_its_label_token_share():
    model, ids, labels = _causal_lm(0.5)
    labels[:2, :9] = -100  # rows 0-1: 2 label tokens each; rows 2-7: 7 each
    num_items = labels[:, 1:].ne(-100).sum()
    model(input_ids=ids[:2], labels=labels[:2], num_items_in_batch=num_items)
    term, added = find_hook(model).latest
    share = labels[:2, 1:].ne(-100).sum() / num_items
    assert 0 < share < 0.25 and added.item() == pytest.approx(term.item() * share.item(), rel=1e-6)
    assert term.item() == pytest.approx(0.5 * goat.balance_loss(model).item(), rel=1e-6)


def test_add_aux_loss_keeps_the_term_of_the_forward_with_gradients():
    """A loss computed from the logits (as DPO's) gets the training forward's term; a second forward under
    no_grad (a reference pass) does not replace it, and the term carries the router gradient."""
    model = _classifier(0.5).train()
    logits = model(**INPUTS).logits
    expected = 0.5 * goat.balance_loss(model).item()
    with torch.no_grad():
        model(input_ids=INPUTS["input_ids"].flip(0)[:, :5])  # other tokens: other routing
    assert 0.5 * goat.balance_loss(model).item() != pytest.approx(expected)
    own = F.cross_entropy(logits, LABELS)
    loss = add_aux_loss(own, model)
    assert (loss - own).item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n.endswith("router.weight"))
    with pytest.raises(RuntimeError, match="no training-mode forward"):
        add_aux_loss(own, model)


def test_unload_removes_the_term():
    model = _classifier(0.5)
    base = model.unload().train()
    assert find_hook(base) is None
    task = F.cross_entropy(base.eval()(**INPUTS).logits, LABELS)
    assert base.train()(**INPUTS, labels=LABELS).loss.item() == pytest.approx(task.item(), rel=1e-6)
