"""Image-classification data for the paper's Table 1 benchmark (CLIP ViT-B/32 on seven datasets).

Contract of every loader in this module: it returns a ``datasets.DatasetDict`` with exactly two
splits, ``"train"`` and ``"test"``, and exactly two columns, ``"image"`` (a PIL image feature) and
``"label"`` (a ``ClassLabel`` whose ints run over ``0..C-1``). :func:`class_names` gives the class
names in label order. :class:`ImageClassificationSet` then applies the CLIP preprocessing per
access and yields ``pixel_values`` / ``labels`` examples ready for a Trainer or a DataLoader.

Sources:

* the seven real datasets (paper Table 1; epochs from Table 10) come from the Hugging Face hub
  (defaults below, overridable per call) or from a local ImageFolder tree
  ``<local_dir>/{train,test}/<class name>/<image>``;
* ``"digits"`` is an offline smoke set built from scikit-learn's bundled 8x8 digits
  (:func:`load_digits_smoke`), so the whole pipeline runs without a network.

Preprocessing follows the authors' vision pipeline: images are converted to RGB, training uses
``RandomResizedCrop(224, scale=(0.9, 1.0))`` (bicubic, no flips) and evaluation a bicubic resize of
the short side followed by a centre crop; both normalise with the CLIP mean/std.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from goat.tasks.errors import DataUnavailableError

if TYPE_CHECKING:  # imported lazily at run time
    import datasets
    from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

TRAIN_SPLIT = "train"
TEST_SPLIT = "test"
IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class VisionDatasetSpec:
    """Where one Table 1 dataset lives and how to read it.

    ``hub_id``/``hub_config`` are defaults that users can override per call; ``train_split`` and
    ``test_split`` are the hub split names mapped onto ``"train"``/``"test"``; ``image_column`` and
    ``label_column`` are the hub column names (the label column must be a ``ClassLabel`` so the
    class names travel with the data). ``epochs`` is the paper's Table 10 value. ``holdout_val``
    says whether the authors trained on 90% of the official train split (all sets but EuroSAT,
    see :func:`drop_val_holdout`). ``templates`` are zero-shot prompt templates (``{}`` = class
    name) for an open_clip zero-shot head. ``manual_download`` is printed when loading fails.
    """

    name: str
    display_name: str
    hub_id: str
    num_classes: int
    epochs: int
    hub_config: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    image_column: str = "image"
    label_column: str = "label"
    holdout_val: bool = True
    templates: tuple[str, ...] = ("a photo of a {}.",)
    manual_download: str = ""


VISION_DATASETS: dict[str, VisionDatasetSpec] = {
    spec.name: spec
    for spec in (
        VisionDatasetSpec(
            name="cars",
            display_name="Stanford Cars",
            hub_id="tanganke/stanford_cars",
            num_classes=196,
            epochs=35,
            templates=("a photo of a {}.", "a photo of the {}, a type of car.", "a photo of my {}."),
            manual_download=(
                "The original Stanford Cars site (ai.stanford.edu/~jkrause/cars) is offline; use the hub "
                "mirror above or a copy such as the Kaggle 'torchvision-stanford-cars' archive, sorted "
                "into <local_dir>/train/<class>/ and <local_dir>/test/<class>/ (8,144 / 8,041 images)."
            ),
        ),
        VisionDatasetSpec(
            name="dtd",
            display_name="DTD",
            hub_id="tanganke/dtd",
            num_classes=47,
            epochs=76,
            templates=("a photo of a {} texture.", "a photo of a {} pattern.", "a photo of a {} object."),
            manual_download=(
                "Or download dtd-r1.0.1 from the VGG site and arrange split 1 (train1+val1 -> train, "
                "test1 -> test) as an ImageFolder tree."
            ),
        ),
        VisionDatasetSpec(
            name="eurosat",
            display_name="EuroSAT",
            hub_id="tanganke/eurosat",
            num_classes=10,
            epochs=12,
            holdout_val=False,
            templates=("a centered satellite photo of {}.", "a satellite photo of {}."),
            manual_download=(
                "Or download the RGB EuroSAT zip and split each class into train/test folders "
                "(the authors kept 270 test images per class)."
            ),
        ),
        VisionDatasetSpec(
            name="gtsrb",
            display_name="GTSRB",
            hub_id="tanganke/gtsrb",
            num_classes=43,
            epochs=11,
            templates=('a zoomed in photo of a "{}" traffic sign.', 'a centered photo of a "{}" traffic sign.'),
            manual_download="Or use torchvision.datasets.GTSRB and export it as an ImageFolder tree.",
        ),
        VisionDatasetSpec(
            name="resisc45",
            display_name="RESISC45",
            hub_id="tanganke/resisc45",
            num_classes=45,
            epochs=15,
            templates=("satellite imagery of {}.", "aerial imagery of {}."),
            manual_download="Or use the 'torchgeo/resisc45' archive with its train/test split files.",
        ),
        VisionDatasetSpec(
            name="sun397",
            display_name="SUN397",
            hub_id="tanganke/sun397",
            num_classes=397,
            epochs=14,
            templates=("a photo of a {}.", "a photo of the {}."),
            manual_download=(
                "SUN397 is large (~37 GB raw, ~100k images); make sure the disk has room. Alternatively "
                "download SUN397.tar.gz with the official Partitions and arrange Training_01 / "
                "Testing_01 as <local_dir>/train and <local_dir>/test."
            ),
        ),
        VisionDatasetSpec(
            name="svhn",
            display_name="SVHN",
            hub_id="ufldl-stanford/svhn",
            hub_config="cropped_digits",
            num_classes=10,
            epochs=4,
            templates=('a photo of the number: "{}".',),
            manual_download="Or use torchvision.datasets.SVHN (cropped digits) and export it as an ImageFolder tree.",
        ),
    )
}

SMOKE_DATASET = "digits"


def valid_dataset_names() -> list[str]:
    """All names accepted by :func:`load_image_dataset` (the seven Table 1 sets and ``"digits"``)."""
    return [*VISION_DATASETS, SMOKE_DATASET]


def get_dataset_spec(name: str) -> VisionDatasetSpec:
    """Return the spec of a Table 1 dataset (case-insensitive); unknown names raise ``ValueError``."""
    key = name.lower().replace("-", "").replace("_", "")
    key = {"stanfordcars": "cars"}.get(key, key)
    if key not in VISION_DATASETS:
        raise ValueError(f"Unknown image dataset {name!r}; valid names are: {', '.join(valid_dataset_names())}.")
    return VISION_DATASETS[key]


# ----------------------------------------------------------------------------------- loading


def load_image_dataset(
    name: str,
    *,
    hub_id: str | None = None,
    local_dir: str | os.PathLike[str] | None = None,
    hub_config: str | None = None,
    cache_dir: str | None = None,
) -> datasets.DatasetDict:
    """Load one Table 1 dataset as a ``DatasetDict`` with ``"train"``/``"test"`` splits.

    ``local_dir`` (an ImageFolder tree ``{train,test}/<class>/<image>``, class order = sorted folder
    names; ``<local_dir>/<name>/`` is tried before ``<local_dir>/``) wins over the hub;
    otherwise ``hub_id`` (default: the spec's) is read with ``datasets.load_dataset``; the spec's
    ``hub_config`` applies only to the default ``hub_id`` (pass ``hub_config`` for a mirror). The result
    always has the columns ``image`` and ``label`` (``ClassLabel``). ``name="digits"`` returns the
    offline smoke set. Unknown names raise ``ValueError``; unreadable data raises
    :class:`DataUnavailableError` naming the dataset and how to obtain it.
    """
    if name.lower() == SMOKE_DATASET:
        return load_digits_smoke()
    spec = get_dataset_spec(name)
    if local_dir is not None:
        folder = os.path.join(os.fspath(local_dir), spec.name)
        folder = folder if os.path.isdir(folder) else os.fspath(local_dir)
        return _load_local_imagefolder(spec, folder, cache_dir=cache_dir)
    if hub_id is None:
        hub_id, hub_config = spec.hub_id, hub_config or spec.hub_config
    return _load_from_hub(spec, hub_id, hub_config, cache_dir=cache_dir)


def _hub_load(path: str, name: str | None, splits: Sequence[str], cache_dir: str | None) -> list[datasets.Dataset]:
    """Thin wrapper around ``datasets.load_dataset`` (one place to stub in tests)."""
    import datasets

    return datasets.load_dataset(path, name, split=list(splits), cache_dir=cache_dir)


def _unavailable(spec: VisionDatasetSpec, source: str, err: BaseException) -> DataUnavailableError:
    """One-line error: what failed, and the three ways to obtain the dataset."""
    config = f", config {spec.hub_config!r}" if spec.hub_config else ""
    reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    message = (
        f"cannot load {spec.display_name} ({spec.name!r}) from {source}: {type(err).__name__}: {reason}. "
        f"With network access the hub copy {spec.hub_id!r}{config} downloads by itself (another mirror: "
        f"hub_id= / --dataset-id); or pass local_dir= / --data-dir <dir> holding "
        f"<dir>/[{spec.name}/]train/<class>/<image> and .../test/<class>/<image>. {spec.manual_download}"
    )
    return DataUnavailableError(message.rstrip())


def _load_from_hub(
    spec: VisionDatasetSpec, hub_id: str, hub_config: str | None, *, cache_dir: str | None
) -> datasets.DatasetDict:
    import datasets

    try:
        train, test = _hub_load(hub_id, hub_config, (spec.train_split, spec.test_split), cache_dir)
    except Exception as err:  # network, auth, missing repo: all re-raised with instructions
        raise _unavailable(spec, f"the hub ({hub_id!r})", err) from err
    dd = datasets.DatasetDict({TRAIN_SPLIT: train, TEST_SPLIT: test})
    return _normalise_columns(dd, spec.image_column, spec.label_column)


def _load_local_imagefolder(spec: VisionDatasetSpec, local_dir: str, *, cache_dir: str | None) -> datasets.DatasetDict:
    import datasets

    missing = [s for s in (TRAIN_SPLIT, TEST_SPLIT) if not os.path.isdir(os.path.join(local_dir, s))]
    if missing:
        err = FileNotFoundError(f"missing split folder(s) {missing} under {local_dir!r}")
        raise _unavailable(spec, f"local_dir {local_dir!r}", err)
    try:
        dd = datasets.load_dataset("imagefolder", data_dir=local_dir, drop_labels=False, cache_dir=cache_dir)
    except Exception as err:
        raise _unavailable(spec, f"local_dir {local_dir!r}", err) from err
    return _normalise_columns(datasets.DatasetDict({s: dd[s] for s in (TRAIN_SPLIT, TEST_SPLIT)}), "image", "label")


def _normalise_columns(dd: datasets.DatasetDict, image_column: str, label_column: str) -> datasets.DatasetDict:
    """Keep only ``image``/``label`` columns; make ``label`` a ``ClassLabel`` shared by both splits."""
    import datasets

    for split, ds in dd.items():
        for col in (image_column, label_column):
            if col not in ds.column_names:
                raise ValueError(
                    f"Split {split!r} has no column {col!r} (columns: {ds.column_names}); "
                    "override image_column/label_column in the dataset spec."
                )
    out = {}
    for split, ds in dd.items():
        ds = ds.select_columns([image_column, label_column])
        renames = {c: t for c, t in ((image_column, IMAGE_COLUMN), (label_column, LABEL_COLUMN)) if c != t}
        out[split] = ds.rename_columns(renames) if renames else ds
    dd = datasets.DatasetDict(out)
    if not isinstance(dd[TRAIN_SPLIT].features[LABEL_COLUMN], datasets.ClassLabel):
        values = sorted(set(dd[TRAIN_SPLIT][LABEL_COLUMN]) | set(dd[TEST_SPLIT][LABEL_COLUMN]))
        names = [str(v) for v in values]
        if values != list(range(len(values))):
            index = {v: i for i, v in enumerate(values)}
            dd = dd.map(lambda ex: {LABEL_COLUMN: index[ex[LABEL_COLUMN]]})
        dd = dd.cast_column(LABEL_COLUMN, datasets.ClassLabel(names=names))
    return dd


def class_names(ds: datasets.Dataset | datasets.DatasetDict) -> list[str]:
    """Class names in label order (index ``i`` names label ``i``) of a Dataset or DatasetDict."""
    if hasattr(ds, "features"):
        feature = ds.features[LABEL_COLUMN]
    else:
        feature = ds[TRAIN_SPLIT].features[LABEL_COLUMN]
    return list(feature.names)


def drop_val_holdout(train: datasets.Dataset, *, seed: int = 0, max_val: int = 5000) -> datasets.Dataset:
    """The part of ``train`` the authors actually trained on (reference section 4.1).

    For every Table 1 set except EuroSAT (``spec.holdout_val``), the authors split the official
    train split with ``torch.utils.data.random_split(..., [N - v, v], Generator().manual_seed(seed))``
    where ``v = min(int(0.1 * N), max_val)``, trained on the first part and never used the second.
    This reproduces that index selection on whatever order the given dataset has (assumption: the
    training part is listed first; the authors' image order on disk is not reproducible anyway).
    """
    n = len(train)
    n_val = min(int(0.1 * n), max_val)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return train.select(perm[: n - n_val])


# ------------------------------------------------------------------------------- smoke data


def load_digits_smoke(
    n_train: int = 1297,
    n_test: int = 500,
    seed: int = 0,
    image_size: int = 32,
) -> datasets.DatasetDict:
    """Offline stand-in for the real sets: scikit-learn's bundled 8x8 digits as RGB PIL images.

    Returns a ``DatasetDict`` with ``train``/``test`` splits and ``image``/``label`` columns
    (``ClassLabel`` names ``"0"``..``"9"``), like :func:`load_image_dataset`. Images are upsampled
    (nearest) to ``image_size`` x ``image_size``. The split is a seeded permutation of the 1,797
    digits: the same ``seed`` always gives the same split, disjoint between train and test.
    """
    import datasets
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    total = len(digits.target)
    if n_train < 1 or n_test < 1 or n_train + n_test > total:
        raise ValueError(f"n_train={n_train}, n_test={n_test} must be >= 1 and sum to at most {total}.")
    order = np.random.RandomState(seed).permutation(total)
    pixels = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)

    def _split(indices: np.ndarray) -> datasets.Dataset:
        images = [
            Image.fromarray(pixels[i], mode="L").resize((image_size, image_size), Image.NEAREST).convert("RGB")
            for i in indices
        ]
        features = datasets.Features(
            {IMAGE_COLUMN: datasets.Image(), LABEL_COLUMN: datasets.ClassLabel(names=[str(d) for d in range(10)])}
        )
        return datasets.Dataset.from_dict(
            {IMAGE_COLUMN: images, LABEL_COLUMN: [int(digits.target[i]) for i in indices]}, features=features
        )

    return datasets.DatasetDict(
        {TRAIN_SPLIT: _split(order[:n_train]), TEST_SPLIT: _split(order[n_train : n_train + n_test])}
    )


# ----------------------------------------------------------------------------- preprocessing


def clip_train_transform(image_size: int = 224) -> Callable[[Image.Image], torch.Tensor]:
    """Training transform: RGB, ``RandomResizedCrop(image_size, scale=(0.9, 1.0))`` (bicubic), CLIP normalise."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Lambda(_to_rgb),
            T.RandomResizedCrop(
                image_size, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3), interpolation=T.InterpolationMode.BICUBIC
            ),
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def clip_eval_transform(image_size: int = 224) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation transform (deterministic): RGB, bicubic short-side resize, centre crop, CLIP normalise."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Lambda(_to_rgb),
            T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(image_size),
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode (L, LA, RGBA, P, ...) to RGB (alpha is dropped, as in PIL)."""
    if getattr(image, "mode", None) == "RGB":
        return image
    return image.convert("RGB")


class ImageClassificationSet(torch.utils.data.Dataset):
    """A split with its transform applied per access: ``{"pixel_values": [3, H, W], "labels": int}``.

    A plain torch ``Dataset`` rather than ``datasets.Dataset.with_transform``: the HF Trainer
    drops the raw ``image``/``label`` columns of a ``datasets.Dataset`` before a transform could
    read them, and the random crop must be drawn afresh every epoch, so nothing is precomputed.
    """

    def __init__(self, split: datasets.Dataset, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.split[int(index)]
        return {"pixel_values": self.transform(example[IMAGE_COLUMN]), "labels": int(example[LABEL_COLUMN])}


def collate_image_batch(examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack transformed examples into ``pixel_values [B, 3, H, W]`` and ``labels [B]`` (long)."""
    pixel_values = torch.stack([ex["pixel_values"] for ex in examples])
    if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
        raise ValueError(f"expected [B, 3, H, W] pixel_values, got {tuple(pixel_values.shape)}")
    labels = torch.tensor([int(ex["labels"]) for ex in examples], dtype=torch.long)
    return {"pixel_values": pixel_values, "labels": labels}
