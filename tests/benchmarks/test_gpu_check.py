"""benchmarks/gpu_check.py (issue 21): ``--smoke`` runs every section's code on the CPU and writes the
JSON and Markdown outputs; a real run refuses a machine without CUDA. Timings are not asserted."""

from __future__ import annotations

import json

import pytest
import torch

from tests.benchmarks.test_benchmarks_quick import load

SECTIONS = ["layer", "svd", "model", "generation", "qlora", "layer_compiled"]


@pytest.fixture(scope="module")
def gpu_check():
    return load("gpu_check")


@pytest.fixture(scope="module")
def smoke_run(gpu_check, tmp_path_factory):
    """One ``--smoke`` run for the module's tests: (report returned, output folder)."""
    output_dir = tmp_path_factory.mktemp("gpu_check")
    threads = torch.get_num_threads()
    try:
        report = gpu_check.main(["--smoke", "--output_dir", str(output_dir)])
    finally:
        torch.set_num_threads(threads)
        torch._dynamo.reset()
    return report, output_dir


def test_smoke_runs_every_section_without_error(smoke_run):
    report, _ = smoke_run
    assert list(report["sections"]) == SECTIONS
    for name, section in report["sections"].items():
        assert not {"error", "skipped", "skipped_shapes"} & section.keys(), (name, section)


def test_smoke_writes_json_and_markdown_with_date_device_versions_settings(smoke_run):
    report, output_dir = smoke_run
    written = json.loads((output_dir / "gpu_check.json").read_text())
    assert written["sections"].keys() == report["sections"].keys()
    env = written["environment"]
    assert env["date"].endswith("UTC") and env["device"].startswith("CPU")
    assert {"torch", "transformers", "peft", "bitsandbytes", "safetensors"} <= env["versions"].keys()
    assert written["settings"]["smoke"] is True and written["settings"]["device"] == "cpu"
    markdown = (output_dir / "gpu_check.md").read_text()
    assert "SMOKE RUN (CPU, tiny shapes: not GPU figures)" in markdown
    assert all(f"## {name}" in markdown for name in SECTIONS)
    assert env["date"] in markdown and f"torch {torch.__version__}" in markdown


def test_layer_section_times_every_variant_per_shape(smoke_run, gpu_check):
    report, _ = smoke_run
    settings = gpu_check.smoke(gpu_check.Settings())
    for name in ("layer", "layer_compiled"):
        rows = report["sections"][name]["rows"]
        shapes = [(r["in_features"], r["out_features"]) for r in rows]
        assert shapes == [s for s in settings.layer_shapes for _ in gpu_check.LAYER_VARIANTS]
        assert [r["variant"] for r in rows] == list(gpu_check.LAYER_VARIANTS) * len(settings.layer_shapes)
        assert all(r["compiled"] == (name == "layer_compiled") and r["median_ms"] > 0 for r in rows)
        assert all(r["ratio_to_lora"] == 1.0 for r in rows if r["variant"] == "lora")
    # the loop reference computes goat's function (bf16 rounding apart)
    assert all(gap < 2e-2 for gap in report["sections"]["layer"]["loop_vs_goat_relative_gap"].values())


def test_model_generation_and_qlora_sections(smoke_run, gpu_check):
    report, _ = smoke_run
    model = report["sections"]["model"]
    assert model["layers"] == 2 and model["goat_init_svds"] == 2 * 5
    rows = {r["method"]: r for r in model["rows"]}
    assert list(rows) == list(gpu_check.STEP_METHODS)
    assert rows["lora"]["time_ratio_to_lora"] == 1.0 and rows["molora"]["time_ratio_to_molora"] == 1.0
    assert rows["goat"]["time_ratio_to_lora"] == pytest.approx(rows["goat"]["step_ms"] / rows["lora"]["step_ms"])
    assert rows["goat"]["trainable"] == rows["molora"]["trainable"] > rows["lora"]["trainable"] > 0
    assert all(r["peak_mib"] is None for r in rows.values())  # CUDA allocator figures only
    generation = report["sections"]["generation"]["rows"]
    assert [(r["batch_size"], r["variant"]) for r in generation] == [
        (b, v) for b in (1, 2) for v in gpu_check.DECODE_VARIANTS
    ]
    assert all(r["tokens_per_s"] > 0 and r["new_tokens"] == 3 for r in generation)
    qlora = report["sections"]["qlora"]
    assert qlora["quantized_linears"] == 2 * 7 and qlora["rows"][0]["method"] == "qlora_goat"
    assert report["sections"]["svd"]["totals"][0]["layers"] == 2 * 7  # every linear weight of the model


def test_real_run_refuses_a_machine_without_cuda(gpu_check, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--output_dir", str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert "no CUDA device" in message and "--smoke" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_quantize_4bit_replaces_every_decoder_linear(gpu_check):
    """NF4 layers replace the decoder's linears (not the embeddings or head) and stay close to them."""
    settings = gpu_check.smoke(gpu_check.Settings())
    model = gpu_check.build_llama(gpu_check.llama_config(settings, 1), settings)
    ids = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(input_ids=ids).logits.float()
    assert gpu_check.quantize_4bit(model, torch.bfloat16) == 7
    layer = model.model.layers[0]
    assert type(layer.mlp.down_proj.weight).__name__ == "Params4bit"
    assert type(model.lm_head) is torch.nn.Linear
    with torch.no_grad():
        after = model(input_ids=ids).logits.float()
    assert not torch.equal(before, after)
    assert (after - before).abs().max() < 0.5 * before.abs().max()


def test_layers_that_fit_the_svd_budget(gpu_check):
    settings = gpu_check.Settings(device="cpu", time_budget_s=100.0, svd_budget_fraction=0.3, layers=32)
    layers, why = gpu_check.layers_that_fit(settings, {"svd_s_per_layer_table12": 5.0}, torch.device("cpu"))
    assert layers == 3 and "SVD" in why  # 2 inits x 5 s x 3 layers <= 30 s
    assert gpu_check.layers_that_fit(settings, {"svd_s_per_layer_table12": 0.1}, torch.device("cpu")) == (
        32,
        "every layer",
    )
    assert gpu_check.layers_that_fit(settings, {"skipped": "time budget"}, torch.device("cpu"))[0] == 32


def test_a_section_that_raises_is_recorded_and_the_budget_skips(gpu_check):
    def broken():
        raise RuntimeError("out of memory")

    recorded = gpu_check.guarded(broken)
    assert recorded["error"] == "RuntimeError: out of memory"
    assert "in broken" in recorded["traceback"] and "raise RuntimeError" in recorded["traceback"]  # where it raised
    deadline = gpu_check.Deadline(0.0)
    assert not deadline.allows("layer") and gpu_check.Deadline(1e6).allows("layer_compiled")


def test_decode_speed_smoke_and_merged_lora_decodes_like_lora(tmp_path):
    decode_speed = load("decode_speed")
    threads = torch.get_num_threads()
    try:
        rows = decode_speed.main(["--smoke", "--json", str(tmp_path / "decode.json")])
    finally:
        torch.set_num_threads(threads)
    assert [(r.batch_size, r.variant) for r in rows] == [(b, v) for b in (1, 2) for v in decode_speed.VARIANTS]
    assert all(r.ratio_to_lora == 1.0 for r in rows if r.variant == "lora")
    assert len(json.loads((tmp_path / "decode.json").read_text())["rows"]) == 10
    # the variants are what they claim: LoRA merged generates LoRA's tokens; goat's W_res path is live
    settings = decode_speed.AdapterSettings(8, 16.0, 8, 2, decode_speed.LLAMA_TARGETS)
    models = decode_speed.build_decode_variants(decode_speed.tiny_llama(), settings)
    for layer in models["lora"].adapted_layers().values():
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)  # a non-zero LoRA update
    models["lora_merged"] = decode_speed.build_decode_variants(decode_speed.tiny_llama(), settings, ("lora",))["lora"]
    models["lora_merged"].load_state_dict(models["lora"].state_dict())
    models["lora_merged"] = models["lora_merged"].merge_and_unload().eval()
    ids = decode_speed.prompt_ids(256, 2, 8, torch.device("cpu"))
    config = decode_speed.greedy_config(6, pad_token_id=0)
    with torch.no_grad():
        out = {name: m.generate(input_ids=ids, generation_config=config) for name, m in models.items()}
    assert torch.equal(out["lora_merged"], out["lora"]) and not torch.equal(out["lora"], out["base"])
    assert all(o.shape == (2, 14) for o in out.values())


def test_reference_commit_variants_run_that_commits_forward_and_decode_alike(monkeypatch):
    """``--reference_commit``: goat@HEAD's adapters are the committed layers' classes, and no method of
    the live adapter classes runs in them (attacked: every live method raises), and they generate the
    same tokens as the live goat on the same weights."""
    from goat.adapters import layers

    decode_speed = load("decode_speed")
    settings = decode_speed.AdapterSettings(8, 16.0, 8, 2, decode_speed.LLAMA_TARGETS)
    models = decode_speed.build_decode_variants(decode_speed.tiny_llama(), settings, ("molora", "goat"))
    for layer in models["molora"].adapted_layers().values():
        torch.nn.init.normal_(layer.lora_B, std=0.5)  # MoLoRA starts at the base: make its experts matter
    models = decode_speed.add_reference_variants(models, "HEAD")
    assert list(models) == ["molora", "goat", "molora@HEAD", "goat@HEAD"]
    adapter = next(iter(models["goat@HEAD"].adapted_layers().values())).active
    assert type(adapter).__module__ == type(adapter.router).__module__ == "goat_layers_HEAD"
    ids = decode_speed.prompt_ids(256, 2, 8, torch.device("cpu"))
    config = decode_speed.greedy_config(6, pad_token_id=0)
    with torch.no_grad():
        out = {name: m.generate(input_ids=ids, generation_config=config) for name, m in models.items()}
        for cls in (layers.LoraExperts, layers.Router):
            for attr, value in vars(cls).items():
                if callable(value) and not attr.startswith("__"):
                    monkeypatch.setattr(cls, attr, _raises(f"live {cls.__name__}.{attr}"))
        reference_again = models["goat@HEAD"].generate(input_ids=ids, generation_config=config)
    assert torch.equal(reference_again, out["goat@HEAD"])
    assert torch.equal(out["goat@HEAD"], out["goat"]) and torch.equal(out["molora@HEAD"], out["molora"])
    assert not torch.equal(out["goat"], out["molora"])


def _raises(what: str):  # noqa: ANN202
    def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError(f"{what} ran")

    return call
