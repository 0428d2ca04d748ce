"""Image-classification data and backbones (paper Table 1: CLIP ViT-B/32 on seven datasets).

Everything here is offline: open_clip models use ``pretrained=None``, HF CLIP models are built
from a tiny config, and datasets come from PIL fixtures or scikit-learn's bundled digits.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from goat.tasks import vision_data as vd
from goat.tasks import vision_models as vm

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
        for ci, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for j in range(per_class):
                # Colour encodes the class so we can check labels against pixels.
                colour = {"zebra": (250, 0, 0), "apple": (0, 250, 0), "mango": (0, 0, 250)}[cls]
                Image.new("RGB", (12 + j, 10), colour).save(d / f"{j}.png")


def test_local_imagefolder_label_mapping(tmp_path) -> None:
    root = tmp_path / "data"
    # Written in non-sorted order on purpose.
    _write_imagefolder(root, ["zebra", "apple", "mango"], ["mango", "zebra", "apple"])
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
    with pytest.raises(vd.DatasetUnavailableError, match=r"(?s)EuroSAT.*test.*local_dir"):
        vd.load_image_dataset("eurosat", local_dir=tmp_path)


def test_unknown_dataset_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"imagenet.*cars.*dtd.*eurosat.*gtsrb.*resisc45.*sun397.*svhn"):
        vd.load_image_dataset("imagenet")


def test_hub_failure_names_dataset_and_instructions(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(vd, "_hub_load", offline)
    with pytest.raises(vd.DatasetUnavailableError) as info:
        vd.load_image_dataset("Cars")
    msg = str(info.value)
    assert "Stanford Cars" in msg and "tanganke/stanford_cars" in msg and "no network" in msg
    assert "local_dir" in msg and "offline" in msg  # manual-download note for the dead original site
    with pytest.raises(vd.DatasetUnavailableError, match="my/mirror"):
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
    assert vd.load_image_dataset("digits")["train"].column_names == ["image", "label"]


def test_with_transforms_produces_pixel_values_and_labels() -> None:
    raw = vd.load_digits_smoke(n_train=8, n_test=4)
    dd = vd.with_transforms(raw, image_size=32)
    ex = dd["train"][0]
    assert set(ex) == {"pixel_values", "labels"} and ex["pixel_values"].shape == (3, 32, 32)
    assert ex["labels"] == raw["train"][0]["label"]
    assert torch.equal(dd["test"][0]["pixel_values"], dd["test"][0]["pixel_values"])  # eval deterministic
    assert raw["train"].column_names == ["image", "label"] and "image" in raw["train"][0]  # input untouched
    batch = vd.collate_image_batch([dd["train"][i] for i in range(3)])
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["labels"].dtype == torch.long


def test_drop_val_holdout_matches_random_split() -> None:
    raw = vd.load_digits_smoke(n_train=50, n_test=1)["train"]
    kept = vd.drop_val_holdout(raw, seed=0)
    assert len(kept) == 45
    ref, _ = torch.utils.data.random_split(range(50), [45, 5], generator=torch.Generator().manual_seed(0))
    assert kept["label"] == [raw[i]["label"] for i in ref.indices]


# -------------------------------------------------------------------------------- models


def test_hf_clip_classifier_logits_loss_and_targets() -> None:
    torch.manual_seed(0)
    model = vm.build_hf_clip_classifier(vm.smoke_clip_vision_config(), num_classes=5)
    x = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 4, 2])
    out = model(pixel_values=x, labels=labels)
    assert out.logits.shape == (3, 5)
    assert torch.allclose(out.loss, nn.functional.cross_entropy(out.logits, labels), atol=1e-6)
    # Head = linear on the mean of last-layer patch tokens (CLS excluded, before post_layernorm).
    hidden = model.vision_model(pixel_values=x).last_hidden_state
    assert torch.allclose(out.logits, model.classifier(hidden[:, 1:].mean(1)), atol=1e-5)
    out.loss.backward()
    assert model.classifier.weight.grad is not None
    names = vm.target_module_names(model)
    assert len(names) == 2 * 6 and all(isinstance(model.get_submodule(n), nn.Linear) for n in names)
    assert {n.rsplit(".", 1)[1] for n in names} == set(vm.HF_CLIP_TARGET_SUFFIXES)
    assert vm.HEAD_MODULE_NAMES == ("classifier",) and not any("classifier" in n for n in names)


def test_trainer_scales_mean_loss_for_grad_accumulation(tmp_path) -> None:
    """The Trainer must divide our per-batch-mean losses by the accumulation steps."""
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, gradient_accumulation_steps=2)
    hf = vm.build_hf_clip_classifier(vm.smoke_clip_vision_config(), num_classes=3)
    linear_head = vm.OpenClipClassifier(nn.Identity(), nn.Linear(4, 3))
    for model in (hf, linear_head):
        assert Trainer(model=model, args=args).model_accepts_loss_kwargs is False


def test_hf_clip_classifier_loads_vision_weights_from_clip_checkpoint(tmp_path) -> None:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(vision_config=vm.smoke_clip_vision_config().to_dict(), projection_dim=32))
    clip.save_pretrained(tmp_path)
    model = vm.build_hf_clip_classifier(str(tmp_path), num_classes=3, class_names=["a", "b", "c"])
    src = dict(clip.vision_model.named_parameters())
    dst = dict(model.vision_model.named_parameters())
    assert src.keys() == dst.keys() and all(torch.equal(src[k], dst[k]) for k in src)
    assert model.config.id2label[2] == "c" and model.classifier.out_features == 3


@pytest.fixture(scope="module")
def open_clip_vit_b32() -> nn.Module:
    import open_clip

    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-32", pretrained=None).eval()


def test_split_qkv_attention_equals_packed_visual_tower(open_clip_vit_b32) -> None:
    visual = open_clip_vit_b32.visual
    split = copy.deepcopy(visual)
    assert vm.split_qkv_attention(split) == 12
    assert not any(isinstance(m, nn.MultiheadAttention) for m in split.modules())
    torch.manual_seed(1)
    x = torch.randn(2, 3, 224, 224)
    for train in (False, True):  # eval uses MHA's fast path, train the reference path
        visual.train(train), split.train(train)
        with torch.no_grad():
            assert torch.allclose(visual(x), split(x), atol=1e-5, rtol=0)
    visual.eval()
    names = vm.target_module_names(split)
    assert len(names) == 12 * 6 and {n.rsplit(".", 1)[1] for n in names} == set(vm.OPEN_CLIP_TARGET_SUFFIXES)


@pytest.mark.parametrize("batch_first", [True, False])
def test_split_attention_masks_and_weights_match_mha(batch_first: bool) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    split = vm.SplitQKVAttention.from_mha(mha)
    b, l = 3, 5
    x = torch.randn(b, l, 16) if batch_first else torch.randn(l, b, 16)
    causal = torch.ones(l, l, dtype=torch.bool).triu(1)
    pad = torch.zeros(b, l, dtype=torch.bool)
    pad[0, -2:] = True
    float_mask = torch.randn(b * 4, l, l)
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


def test_open_clip_linear_head_classifier() -> None:
    torch.manual_seed(0)
    model = vm.build_open_clip_classifier("ViT-B-32", pretrained=None, num_classes=4, head="linear")
    assert isinstance(model.classifier, nn.Linear) and model.classifier.weight.requires_grad
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    x = torch.randn(2, 3, 224, 224)
    out = model(pixel_values=x, labels=torch.tensor([1, 3]))
    assert out.logits.shape == (2, 4) and out.loss.ndim == 0
    assert torch.allclose(out.logits, model.classifier(model.visual(x)), atol=1e-6)


def test_open_clip_zeroshot_head_is_frozen_text_classifier(open_clip_vit_b32) -> None:
    import open_clip
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    names, templates = ["cat", "dog", "car"], ["a photo of a {}.", "a drawing of a {}."]
    torch.manual_seed(0)  # same seed as the fixture: identical random CLIP
    model = vm.build_open_clip_classifier(
        "ViT-B-32", pretrained=None, head="zeroshot", class_names=names, templates=templates
    )
    head = model.classifier
    assert isinstance(head, vm.ZeroShotHead) and not list(head.parameters())
    ref = build_zero_shot_classifier(
        open_clip_vit_b32, open_clip.get_tokenizer("ViT-B-32"), names, templates, num_classes_per_batch=None
    )
    assert torch.allclose(head.weight, ref.T, atol=1e-5)
    assert torch.allclose(head.weight.norm(dim=-1), torch.ones(3), atol=1e-5)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = model(pixel_values=x).logits
        image = open_clip_vit_b32.encode_image(x, normalize=True)
    scale = open_clip_vit_b32.logit_scale.exp()
    assert torch.allclose(logits, scale * image @ ref, atol=1e-4)
    with pytest.raises(ValueError, match="class_names"):
        vm.build_open_clip_classifier("ViT-B-32", pretrained=None, num_classes=3, head="zeroshot")
