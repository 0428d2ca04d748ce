"""Image-classification data and backbones (paper Table 1: CLIP ViT-B/32 on seven datasets).

Everything here is offline: both backbones are tiny random CLIPs of the real classes (the smoke
configs), and datasets come from PIL fixtures, stubbed hub loads or scikit-learn's bundled digits.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import goat
from goat.adapters.layers import LoraMoELinear
from goat.tasks import vision_data as vd
from goat.tasks import vision_models as vm
from goat.tasks.errors import DataUnavailableError

MEAN = torch.tensor(vd.CLIP_MEAN).view(3, 1, 1)
STD = torch.tensor(vd.CLIP_STD).view(3, 1, 1)


def _image(mode: str, size: tuple[int, int] = (40, 30), seed: int = 0) -> Image.Image:
    rng = np.random.RandomState(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.randint(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if channels == 1 else arr, mode=mode)


# ------------------------------------------------------------------------------ transforms


@pytest.mark.parametrize("mode", ["L", "RGBA", "RGB"])
@pytest.mark.parametrize("train", [True, False])
def test_transforms_give_normalised_3x224x224(mode: str, train: bool) -> None:
    transform = vd.clip_train_transform() if train else vd.clip_eval_transform()
    x = transform(_image(mode))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    # De-normalising must land back in [0, 1]: the CLIP mean/std were applied.
    raw = x * STD + MEAN
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    if mode == "L":  # greyscale is replicated into three equal channels
        assert torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[1], raw[2], atol=1e-5)


def test_eval_transform_is_deterministic_and_matches_manual_pipeline() -> None:
    img = _image("RGB", size=(300, 200))
    t = vd.clip_eval_transform()
    a, b = t(img), t(img)
    assert torch.equal(a, b)
    # bicubic short side -> 224, centre crop, normalise
    resized = img.resize((336, 224), Image.BICUBIC)
    left = (336 - 224) // 2
    crop = np.asarray(resized.crop((left, 0, left + 224, 224)), dtype=np.float32) / 255.0
    manual = (torch.from_numpy(crop).permute(2, 0, 1) - MEAN) / STD
    assert (a - manual).abs().mean() < 0.02


def test_train_transform_is_random_crop_near_full_image() -> None:
    img = _image("RGB", size=(64, 64))
    t = vd.clip_train_transform(image_size=32)
    torch.manual_seed(0)
    outs = [t(img) for _ in range(4)]
    assert all(o.shape == (3, 32, 32) for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


# ------------------------------------------------------------------------------- datasets


def _write_imagefolder(root, classes_train, classes_test, per_class=2) -> None:
    for split, classes in (("train", classes_train), ("test", classes_test)):
        for cls in classes:
            d = root / split / cls
            d.mkdir(parents=True)
            for j in range(per_class):
                # Colour encodes the class so we can check labels against pixels.
                colour = {"zebra": (250, 0, 0), "apple": (0, 250, 0), "mango": (0, 0, 250)}[cls]
                Image.new("RGB", (12 + j, 10), colour).save(d / f"{j}.png")


def test_local_imagefolder_label_mapping(tmp_path) -> None:
    root = tmp_path / "data"
    # <root>/<task>/{train,test}/<class>/, classes written in non-sorted order on purpose.
    _write_imagefolder(root / "dtd", ["zebra", "apple", "mango"], ["mango", "zebra", "apple"])
    dd = vd.load_image_dataset("dtd", local_dir=root, cache_dir=str(tmp_path / "cache"))
    assert set(dd) == {"train", "test"}
    assert dd["train"].column_names == ["image", "label"] == dd["test"].column_names
    names = vd.class_names(dd)
    assert names == ["apple", "mango", "zebra"] == vd.class_names(dd["test"])
    channel = {"zebra": 0, "apple": 1, "mango": 2}
    for split in ("train", "test"):
        assert len(dd[split]) == 6
        for ex in dd[split]:
            label = ex["label"]
            assert 0 <= label < 3
            pixel = ex["image"].convert("RGB").getpixel((0, 0))
            assert int(np.argmax(pixel)) == channel[names[label]]


def test_local_dir_missing_split_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataUnavailableError, match=r"EuroSAT.*test.*local_dir") as info:
        vd.load_image_dataset("eurosat", local_dir=tmp_path)
    assert "\n" not in str(info.value)  # the CLI prints it as one line


def test_unknown_dataset_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"imagenet.*cars.*dtd.*eurosat.*gtsrb.*resisc45.*sun397.*svhn"):
        vd.load_image_dataset("imagenet")


def test_hub_failure_names_dataset_and_instructions(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(vd, "_hub_load", offline)
    with pytest.raises(DataUnavailableError) as info:
        vd.load_image_dataset("Cars")
    msg = str(info.value)
    assert "Stanford Cars" in msg and "tanganke/stanford_cars" in msg and "no network" in msg
    assert "--data-dir" in msg and "--dataset-id" in msg and "offline" in msg  # + the dead original site
    assert "\n" not in msg
    with pytest.raises(DataUnavailableError, match="my/mirror"):
        vd.load_image_dataset("sun397", hub_id="my/mirror")


def test_hub_loader_maps_splits_and_columns(monkeypatch) -> None:
    import datasets

    seen = {}

    def fake(path, name, splits, cache_dir):
        seen.update(path=path, name=name, splits=list(splits))
        img = Image.new("RGB", (4, 4))
        return [
            datasets.Dataset.from_dict(
                {"image": [img] * n, "label": [9, 3][:n], "extra": [0] * n},
                features=datasets.Features(
                    {"image": datasets.Image(), "label": datasets.Value("int64"), "extra": datasets.Value("int64")}
                ),
            )
            for n in (2, 1)
        ]

    monkeypatch.setattr(vd, "_hub_load", fake)
    dd = vd.load_image_dataset("svhn")
    assert seen == {"path": "ufldl-stanford/svhn", "name": "cropped_digits", "splits": ["train", "test"]}
    assert dd["train"].column_names == ["image", "label"]
    # Non-ClassLabel labels are remapped onto 0..C-1 in sorted value order.
    assert vd.class_names(dd) == ["3", "9"] and dd["train"]["label"] == [1, 0] and dd["test"]["label"] == [1]
    vd.load_image_dataset("svhn", hub_id="me/svhn-mirror")  # the spec's config belongs to the default id
    assert seen["path"] == "me/svhn-mirror" and seen["name"] is None


@pytest.mark.parametrize("name", sorted(vd.VISION_DATASETS))
def test_each_hub_adapter_keeps_class_labels(name: str, monkeypatch) -> None:
    """Every Table 1 adapter reads its spec's id, config, splits and columns; ClassLabel ids survive."""
    import datasets

    spec = vd.VISION_DATASETS[name]
    names = [f"{name} class {i}" for i in range(spec.num_classes)]
    labels = {"train": [spec.num_classes - 1, 0, 1], "test": [2, spec.num_classes - 1]}
    seen = {}

    def fake(path, config, splits, cache_dir):
        seen.update(path=path, config=config, splits=list(splits))
        columns = {spec.image_column: datasets.Image(), spec.label_column: datasets.ClassLabel(names=names)}
        features = datasets.Features({**columns, "id": datasets.Value("int64")})
        return [
            datasets.Dataset.from_dict(
                {
                    spec.image_column: [Image.new("RGB", (4, 4), (y % 256, 0, 0)) for y in labels[split]],
                    spec.label_column: labels[split],
                    "id": list(range(len(labels[split]))),  # an extra column, dropped by the adapter
                },
                features=features,
            )
            for split in ("train", "test")
        ]

    monkeypatch.setattr(vd, "_hub_load", fake)
    dd = vd.load_image_dataset(name)
    assert seen == {"path": spec.hub_id, "config": spec.hub_config, "splits": [spec.train_split, spec.test_split]}
    assert len(vd.class_names(dd)) == spec.num_classes and vd.class_names(dd) == names
    for split in ("train", "test"):
        assert dd[split].column_names == ["image", "label"] and dd[split]["label"] == labels[split]
        assert [ex["image"].getpixel((0, 0))[0] for ex in dd[split]] == [y % 256 for y in labels[split]]


def test_specs_follow_table10_epochs() -> None:
    epochs = {n: s.epochs for n, s in vd.VISION_DATASETS.items()}
    assert epochs == {"cars": 35, "dtd": 76, "eurosat": 12, "gtsrb": 11, "resisc45": 15, "sun397": 14, "svhn": 4}
    assert vd.get_dataset_spec("SUN397").manual_download  # large: says so
    assert [n for n, s in vd.VISION_DATASETS.items() if not s.holdout_val] == ["eurosat"]


def test_digits_smoke_columns_seeded_and_disjoint() -> None:
    a = vd.load_digits_smoke(n_train=40, n_test=20, seed=0)
    b = vd.load_digits_smoke(n_train=40, n_test=20, seed=0)
    c = vd.load_digits_smoke(n_train=40, n_test=20, seed=1)
    assert set(a) == {"train", "test"} and a["train"].column_names == ["image", "label"]
    assert len(a["train"]) == 40 and len(a["test"]) == 20
    assert vd.class_names(a) == [str(d) for d in range(10)]
    img = a["train"][0]["image"]
    assert img.mode == "RGB" and img.size == (32, 32)
    key = lambda ds: [(np.asarray(ex["image"]).tobytes(), ex["label"]) for ex in ds]  # noqa: E731
    assert key(a["train"]) == key(b["train"]) and key(a["test"]) == key(b["test"])
    assert key(a["train"]) != key(c["train"])
    assert not set(key(a["train"])) & set(key(a["test"]))


def test_image_classification_set_transforms_per_access() -> None:
    raw = vd.load_digits_smoke(n_train=8, n_test=4)
    train = vd.ImageClassificationSet(raw["train"], vd.clip_train_transform(32))
    test = vd.ImageClassificationSet(raw["test"], vd.clip_eval_transform(32))
    assert len(train) == 8 and len(test) == 4
    ex = train[0]
    assert set(ex) == {"pixel_values", "labels"} and ex["pixel_values"].shape == (3, 32, 32)
    assert ex["labels"] == raw["train"][0]["label"]
    assert torch.equal(test[1]["pixel_values"], test[1]["pixel_values"])  # eval is deterministic
    assert raw["train"].column_names == ["image", "label"]  # the split itself is untouched
    batch = vd.collate_image_batch([train[i] for i in range(3)])
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["labels"].dtype == torch.long
    assert batch["labels"].tolist() == raw["train"]["label"][:3]


def test_drop_val_holdout_matches_random_split() -> None:
    raw = vd.load_digits_smoke(n_train=50, n_test=1)["train"]
    kept = vd.drop_val_holdout(raw, seed=0)
    assert len(kept) == 45
    ref, _ = torch.utils.data.random_split(range(50), [45, 5], generator=torch.Generator().manual_seed(0))
    assert kept["label"] == [raw[i]["label"] for i in ref.indices]


# -------------------------------------------------------------------------------- models


def _targets(model: nn.Module, backbone: str) -> list[str]:
    targets = list(vm.TARGET_SUFFIXES[backbone])
    config = goat.GoatConfig(method="lora", r=4, target_modules=targets, modules_to_save=["classifier"])
    return goat.find_target_layers(model, config)


def test_hf_clip_classifier_logits_loss_and_targets() -> None:
    torch.manual_seed(0)
    model = vm.build_hf_clip_classifier(vm.smoke_clip_vision_config(), num_classes=5)
    x = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 4, 2])
    out = model(pixel_values=x, labels=labels)
    assert out.logits.shape == (3, 5) and vm.image_size(model) == 32
    assert torch.allclose(out.loss, nn.functional.cross_entropy(out.logits, labels), atol=1e-6)
    # Head = linear on the mean of last-layer patch tokens (CLS excluded, before post_layernorm).
    hidden = model.vision_model(pixel_values=x).last_hidden_state
    assert torch.allclose(out.logits, model.classifier(hidden[:, 1:].mean(1)), atol=1e-5)
    out.loss.backward()
    assert model.classifier.weight.grad is not None
    names = _targets(model, "hf")
    assert len(names) == 2 * 6 and {n.rsplit(".", 1)[1] for n in names} == set(vm.TARGET_SUFFIXES["hf"])
    assert vm.HEAD_MODULE_NAMES == ("classifier",) and not any("classifier" in n for n in names)


def test_vit_b32_shape_has_72_adapted_layers() -> None:
    """ViT-B/32 (built on the meta device: no weights): 12 blocks x (q, k, v, out, fc1, fc2)."""
    from transformers import CLIPVisionConfig

    with torch.device("meta"):
        model = vm.build_hf_clip_classifier(CLIPVisionConfig(patch_size=32), num_classes=10)
    assert vm.image_size(model) == 224
    assert len(_targets(model, "hf")) == 72


def test_trainer_scales_mean_loss_for_grad_accumulation(tmp_path) -> None:
    """The Trainer must divide our per-batch-mean losses by the accumulation steps."""
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, gradient_accumulation_steps=2)
    hf = vm.build_hf_clip_classifier(vm.smoke_clip_vision_config(), num_classes=3)
    open_clip_model = vm.open_clip_classifier(vm.smoke_open_clip(), 3)
    for model in (hf, open_clip_model):
        assert Trainer(model=model, args=args).model_accepts_loss_kwargs is False


def test_hf_clip_classifier_loads_vision_weights_from_clip_checkpoint(tmp_path) -> None:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4)
    clip = CLIPModel(
        CLIPConfig(text_config=text, vision_config=vm.smoke_clip_vision_config().to_dict(), projection_dim=32)
    )
    clip.save_pretrained(tmp_path)
    model = vm.build_hf_clip_classifier(str(tmp_path), num_classes=3, class_names=["a", "b", "c"])
    src = dict(clip.vision_model.named_parameters())
    dst = dict(model.vision_model.named_parameters())
    assert src.keys() == dst.keys() and all(torch.equal(src[k], dst[k]) for k in src)
    assert model.config.id2label[2] == "c" and model.classifier.out_features == 3


def test_split_qkv_attention_equals_packed_visual_tower() -> None:
    torch.manual_seed(0)
    visual = vm.smoke_open_clip().visual
    split = copy.deepcopy(visual)
    assert vm.split_qkv_attention(split) == 2
    assert not any(isinstance(m, nn.MultiheadAttention) for m in split.modules())
    x = torch.randn(2, 3, 32, 32)
    for train in (False, True):  # eval may take MHA's fast path, train the reference path
        visual.train(train), split.train(train)
        with torch.no_grad():
            assert torch.allclose(visual(x), split(x), atol=1e-5, rtol=0)
    names = _targets(split, "open_clip")
    assert len(names) == 2 * 6 and {n.rsplit(".", 1)[1] for n in names} == set(vm.TARGET_SUFFIXES["open_clip"])


@pytest.mark.parametrize("batch_first", [True, False])
def test_split_attention_masks_and_weights_match_mha(batch_first: bool) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    split = vm.SplitQKVAttention.from_mha(mha)
    b, n = 3, 5
    x = torch.randn(b, n, 16) if batch_first else torch.randn(n, b, 16)
    causal = torch.ones(n, n, dtype=torch.bool).triu(1)
    pad = torch.zeros(b, n, dtype=torch.bool)
    pad[0, -2:] = True
    float_mask = torch.randn(b * 4, n, n)
    cases = [
        dict(need_weights=False),
        dict(need_weights=True, attn_mask=causal),
        dict(need_weights=True, attn_mask=float_mask, average_attn_weights=False),
        dict(need_weights=False, attn_mask=causal, key_padding_mask=pad),
    ]
    for kwargs in cases:
        ref_out, ref_w = mha(x, x, x, **kwargs)
        out, w = split(x, x, x, **kwargs)
        assert torch.allclose(out, ref_out, atol=1e-5), kwargs
        assert (w is None) == (ref_w is None) and (w is None or torch.allclose(w, ref_w, atol=1e-6))


def _zero_routers(model: nn.Module) -> int:
    layers = [m for m in model.modules() if isinstance(m, LoraMoELinear)]
    with torch.no_grad():
        for layer in layers:
            layer.router.weight.zero_()
    return len(layers)


@pytest.mark.parametrize("backbone", ["hf", "open_clip"])
def test_goat_adapted_clip_equals_unadapted_at_init_with_zeroed_router(backbone: str) -> None:
    """Thm 3.4: W_res = (s/E) sum_i B_i A_i, so uniform routing over all E experts (zero router,
    top_k = E) restores W0 exactly; open_clip's q, k and v are three separately adapted linears."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    if backbone == "hf":
        model = vm.build_hf_clip_classifier(vm.smoke_clip_vision_config(), num_classes=3).eval()
        unadapted = copy.deepcopy(model)
        plain_attn, attn = (
            unadapted.vision_model.encoder.layers[0].self_attn,
            model.vision_model.encoder.layers[0].self_attn,
        )
    else:
        clip = vm.smoke_open_clip()
        packed = copy.deepcopy(clip.visual)  # nn.MultiheadAttention, q/k/v packed in in_proj_weight
        model = vm.open_clip_classifier(clip, 3)
        unadapted = lambda pixel_values: SimpleNamespace(logits=model.classifier(packed(pixel_values)))  # noqa: E731
        plain_attn, attn = packed.transformer.resblocks[0].attn, model.visual.transformer.resblocks[0].attn
    with torch.no_grad():
        expected = unadapted(pixel_values=x).logits
    h = torch.randn(2, 17, 64)  # 16 patches + CLS, width 64
    with torch.no_grad():
        expected_attn = plain_attn(h, h, h)[0] if backbone == "open_clip" else plain_attn(h)[0]
    config = goat.GoatConfig(
        method="goat",
        r=8,
        num_experts=8,
        top_k=8,
        lora_dropout=0.0,
        target_modules=list(vm.TARGET_SUFFIXES[backbone]),
        modules_to_save=["classifier"],
    )
    adapted = goat.get_goat_model(model, config).eval()
    assert all(isinstance(getattr(attn, name), LoraMoELinear) for name in ("q_proj", "k_proj", "v_proj", "out_proj"))
    assert not torch.allclose(attn.q_proj.lora_B, attn.k_proj.lora_B)  # each has its own SVD experts
    with torch.no_grad():
        routed = adapted(pixel_values=x).logits
        assert not torch.allclose(routed, expected, atol=1e-4)  # random router: W0 only in expectation
        assert _zero_routers(adapted) == 12
        logits = adapted(pixel_values=x).logits
        got_attn = attn(h, h, h)[0] if backbone == "open_clip" else attn(h)[0]
    assert torch.allclose(got_attn, expected_attn, atol=1e-5, rtol=0)
    assert torch.allclose(logits, expected, atol=1e-5, rtol=0)


def test_open_clip_linear_head_classifier() -> None:
    torch.manual_seed(0)
    model = vm.open_clip_classifier(vm.smoke_open_clip(), 4, head="linear")
    assert isinstance(model.classifier, nn.Linear) and model.classifier.weight.requires_grad
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    assert vm.image_size(model) == 32 and model.config.hidden_size == 64  # DeepSpeed "auto" buckets read it
    x = torch.randn(2, 3, 32, 32)
    out = model(pixel_values=x, labels=torch.tensor([1, 3]))
    assert out.logits.shape == (2, 4) and out.loss.ndim == 0
    assert torch.allclose(out.logits, model.classifier(model.visual(x)), atol=1e-6)


def test_open_clip_zeroshot_head_is_frozen_text_classifier() -> None:
    import open_clip
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    names, templates = ["cat", "dog", "car"], ["a photo of a {}.", "a drawing of a {}."]
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    torch.manual_seed(0)
    clip = vm.smoke_open_clip()
    reference = copy.deepcopy(clip)
    model = vm.open_clip_classifier(clip, head="zeroshot", class_names=names, templates=templates, tokenizer=tokenizer)
    head = model.classifier
    assert isinstance(head, vm.ZeroShotHead) and not list(head.parameters())
    ref = build_zero_shot_classifier(reference, tokenizer, names, templates, num_classes_per_batch=None)
    assert torch.allclose(head.weight, ref.T, atol=1e-5)
    assert torch.allclose(head.weight.norm(dim=-1), torch.ones(3), atol=1e-5)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(pixel_values=x).logits
        image = reference.encode_image(x, normalize=True)
    assert torch.allclose(logits, reference.logit_scale.exp() * image @ ref, atol=1e-4)
    with pytest.raises(ValueError, match="class_names and a tokenizer"):
        vm.open_clip_classifier(vm.smoke_open_clip(), 3, head="zeroshot")


def test_create_open_clip_rejects_non_open_clip_names() -> None:
    with pytest.raises(ValueError, match="not an open_clip architecture.*ViT-B-32"):
        vm.create_open_clip("openai/clip-vit-base-patch32")
