"""Training augmentation on 8-bit images, checked against a step-by-step reference of mmseg's pipeline, and the
decoding of stored image bytes.

The reference below is mmseg 0.x's code written out plainly on a BGR image, as mmseg holds it: mmcv's
`imrescale` (`cv2.resize`, bilinear for the image, nearest for the full-size label map), `np.unique` per crop
try, `np.flip`, `PhotoMetricDistortion` with mmcv's `bgr2hsv` / `hsv2bgr` (`cv2.cvtColor`) and its `convert`
per step, and mmcv's `imnormalize`. It consumes the random draws in the pipeline's documented order, and
must give the same samples.
"""

from __future__ import annotations

import io

import cv2
import datasets
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from segret_hf import SegRetImageProcessor
from segret_hf.data.label_maps import LabelMapping
from segret_hf.training.arguments import SizeArguments
from segret_hf.training.data import INDEX_COLUMN, SegmentationDataError, SplitSource
from segret_hf.training.decoding import decode_rgb, keep_encoded
from segret_hf.training.kernels import nearest_indices, resize_bilinear
from segret_hf.training.photometric import PhotometricParams, photometric_distortion
from segret_hf.training.transforms import CategoryBalancedCrop, PaperAugmentation, SplitTransform, sample_seed

from helpers import png_bytes

PROCESSOR = SegRetImageProcessor()
MEAN = np.array(PROCESSOR.image_mean, dtype=np.float32) * 255
STD = np.array(PROCESSOR.image_std, dtype=np.float32) * 255


# ---------------------------------------------------------------------------------------------------------
# The reference: mmseg 0.x, step by step
# ---------------------------------------------------------------------------------------------------------


def mmseg_convert(image: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
    """mmseg's `PhotoMetricDistortion.convert`."""
    return np.clip(image.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def mmseg_saturation(bgr: np.ndarray, alpha: float) -> np.ndarray:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hsv[:, :, 1] = mmseg_convert(hsv[:, :, 1], alpha=alpha)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def mmseg_hue(bgr: np.ndarray, delta: int) -> np.ndarray:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + delta) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def reference_photometric(bgr: np.ndarray, params: PhotometricParams) -> np.ndarray:
    """mmseg's `PhotoMetricDistortion.__call__` on an `(H, W, 3)` uint8 BGR image with the drawn parameters."""
    if params.brightness is not None:
        bgr = mmseg_convert(bgr, beta=params.brightness)
    if params.contrast_first and params.contrast is not None:
        bgr = mmseg_convert(bgr, alpha=params.contrast)
    if params.saturation is not None:
        bgr = mmseg_saturation(bgr, params.saturation)
    if params.hue is not None:
        bgr = mmseg_hue(bgr, params.hue)
    if not params.contrast_first and params.contrast is not None:
        bgr = mmseg_convert(bgr, alpha=params.contrast)
    return bgr


def reference_sample(
    image: np.ndarray,
    label: np.ndarray,
    generator: torch.Generator,
    sizes: SizeArguments,
    ratio_range: tuple[float, float],
    cat_max_ratio: float,
) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """mmseg's train pipeline on `(H, W, 3)` uint8 RGB and its `(H, W)` label map: `(normalised image, labels,
    the branches taken)`."""
    branches = set()
    bgr = image[:, :, ::-1].copy()  # mmcv.imread
    # Resize(img_scale, ratio_range, keep_ratio=True): mmcv's rescale_size, then mmcv.imresize (cv2).
    ratio = float(torch.empty(()).uniform_(*ratio_range, generator=generator))
    long_edge, short_edge = int(sizes.train_scale[0] * ratio), int(sizes.train_scale[1] * ratio)
    height, width = label.shape
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    new_height, new_width = int(height * factor + 0.5), int(width * factor + 0.5)
    bgr = cv2.resize(bgr, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label.astype(np.uint8), (new_width, new_height), interpolation=cv2.INTER_NEAREST)

    # RandomCrop(crop_size, cat_max_ratio).
    crop_height, crop_width = sizes.crop_size

    def crop_box() -> tuple[int, int]:
        top = int(torch.randint(max(new_height - crop_height, 0) + 1, (), generator=generator))
        return top, int(torch.randint(max(new_width - crop_width, 0) + 1, (), generator=generator))

    top, left = crop_box()
    if cat_max_ratio < 1.0:
        for _ in range(10):
            values, counts = np.unique(label[top : top + crop_height, left : left + crop_width], return_counts=True)
            counts = counts[values != 255]
            if len(counts) > 1 and np.max(counts) / np.sum(counts) < cat_max_ratio:
                break
            branches.add("crop retried")
            top, left = crop_box()
    bgr = bgr[top : top + crop_height, left : left + crop_width]
    label = label[top : top + crop_height, left : left + crop_width]

    # RandomFlip(0.5): mmcv.imflip.
    if torch.rand(1, generator=generator) < 0.5:
        bgr, label = np.flip(bgr, axis=1), np.flip(label, axis=1)
        branches.add("flipped")

    params = PhotometricParams.draw(generator)
    bgr = reference_photometric(bgr, params)
    branches |= {name for name in ("brightness", "contrast", "saturation", "hue") if getattr(params, name) is not None}
    branches.add("contrast first" if params.contrast_first else "contrast last")

    # Normalize(to_rgb=True): mmcv.imnormalize. Then Pad(crop_size, pad_val=0, seg_pad_val=255).
    normalised = cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2RGB)
    cv2.subtract(normalised, np.float64(MEAN.reshape(1, -1)), normalised)
    cv2.multiply(normalised, 1 / np.float64(STD.reshape(1, -1)), normalised)
    pixel_values = np.zeros((crop_height, crop_width, 3), dtype=np.float32)
    labels = np.full((crop_height, crop_width), 255, dtype=np.int64)
    pixel_values[: bgr.shape[0], : bgr.shape[1]] = normalised
    labels[: label.shape[0], : label.shape[1]] = label
    if label.shape != labels.shape:
        branches.add("padded")
    return pixel_values.transpose(2, 0, 1), labels, branches


def scene(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A colourful image with smooth gradients and noise, and a label map of 4 classes plus 255: class 0 alone
    on the left half (crops there are retried), blocks of all classes on the right."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([rows * 255 / height, cols * 255 / width, (rows + cols) * 128 / (height + width)], -1)
    image = np.clip(image + rng.normal(0, 30, image.shape), 0, 255).astype(np.uint8)
    label = np.where(cols < width // 2, 0, (rows // 12 + 2 * (cols // 20)) % 4).astype(np.int64)
    label[rng.random(label.shape) < 0.05] = 255
    return image, label


# ---------------------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio_range", "cat_max_ratio"), [((0.5, 2.0), 0.75), ((1.0, 1.5), 1.0)], ids=["paper", "custom"]
)
def test_augmentation_matches_the_mmseg_reference(ratio_range: tuple[float, float], cat_max_ratio: float) -> None:
    sizes = SizeArguments(crop_size=(48, 56), train_scale=(200, 50), test_scale=(200, 50))
    augmentation = PaperAugmentation(
        sizes, PROCESSOR, seed=3, ignore_index=255, ratio_range=ratio_range, cat_max_ratio=cat_max_ratio
    )
    augmentation.epoch = 1
    branches: set[str] = set()
    for row in range(24):
        image, label = scene(60 + row, 80 - row, seed=row)
        pixel_values, labels = augmentation(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(label), row)

        generator = torch.Generator().manual_seed(sample_seed(3, 1, row))
        expected_pixels, expected_labels, taken = reference_sample(
            image, label, generator, sizes, ratio_range, cat_max_ratio
        )
        assert pixel_values.shape == (3, 48, 56) and labels.dtype == torch.int64
        np.testing.assert_array_equal(labels.numpy(), expected_labels, err_msg=f"row {row}")
        # The same grey levels: only the normalisation's float32 rounding differs (mmcv multiplies by 1 / std).
        grey_levels = np.abs(pixel_values.numpy() - expected_pixels) * STD[:, None, None]
        assert grey_levels.max() < 1e-3, f"row {row}: {grey_levels.max()} grey levels apart"
        branches |= taken
    expected = {"flipped", "brightness", "contrast", "saturation", "hue", "contrast first", "contrast last"}
    if cat_max_ratio < 1:
        expected |= {"crop retried", "padded"}  # ratios below crop / scale pad
    assert expected <= branches, f"rows never exercised {expected - branches}"


def test_uint8_resize_is_within_one_grey_level_of_exact_bilinear() -> None:
    image = scene(45, 70, seed=0)[0]
    for size in [(90, 140), (30, 47), (64, 99), (45, 70)]:
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        exact = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
        resized = resize_bilinear(image, size)
        assert resized.dtype == np.uint8 and resized.shape == (*size, 3)
        assert (torch.from_numpy(resized).float() - exact).abs().max() <= 1.0


def test_label_resize_follows_cv2_nearest() -> None:
    """OpenCV's nearest neighbour is `floor(i * (source / target))` in floating point, which differs from the
    integer rule for some sizes (e.g. 2 -> 428: index 214 maps to 0); the crop's index maps follow cv2."""
    rng = np.random.default_rng(0)
    for source, target in [((2, 3), (428, 694)), ((60, 80), (121, 163)), ((512, 683), (256, 341)), ((7, 9), (7, 9))]:
        label = rng.integers(0, 255, source, dtype=np.uint8)
        expected = cv2.resize(label, target[::-1], interpolation=cv2.INTER_NEAREST)
        rows, cols = nearest_indices(source[0], target[0]), nearest_indices(source[1], target[1])
        np.testing.assert_array_equal(label[rows][:, cols], expected, err_msg=str((source, target)))
    assert nearest_indices(2, 428)[214] == 0  # the integer rule would give 1


def test_photometric_steps_are_mmsegs_on_every_colour() -> None:
    """Each step alone on every 8-bit colour class (greys, black, saturated, random), several factors and every
    hue shift: the lookup tables on RGB give what mmseg's code gives on BGR."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    image[:5] = image[:5, :, :1]  # greys
    image[5:7] = 0
    image[7:9, :, 0] = 255  # red channel at its maximum
    bgr = image[:, :, ::-1].copy()

    def only(**draws: object) -> PhotometricParams:
        params = {"brightness": None, "contrast_first": True, "contrast": None, "saturation": None, "hue": None}
        return PhotometricParams(**{**params, **draws})

    cases = [(only(saturation=alpha), mmseg_saturation(bgr, alpha)) for alpha in [0.5, 0.7731, 1.0, 1.25, 1.4999]]
    cases += [(only(hue=shift), mmseg_hue(bgr, shift)) for shift in range(-18, 18)]
    cases += [(only(brightness=beta), mmseg_convert(bgr, beta=beta)) for beta in [-31.5, -0.2, 7.9]]
    cases += [(only(contrast=alpha, contrast_first=False), mmseg_convert(bgr, alpha=alpha)) for alpha in [0.6, 1.3]]
    for params, expected in cases:
        np.testing.assert_array_equal(photometric_distortion(image, params), expected[:, :, ::-1], err_msg=str(params))


def _block_labels(height: int = 64, width: int = 80, block: int = 16) -> torch.Tensor:
    rows, cols = torch.arange(height)[:, None] // block, torch.arange(width)[None] // block
    return (rows * (width // block) + cols).to(torch.int64)


def test_augmentation_keeps_image_and_label_aligned() -> None:
    """Each label block has its own grey level; after the full pipeline every block must still be uniform
    in the image and grey levels must still increase with the block id (the photometric part is global)."""
    labels = _block_labels()
    grey = (40 + 8 * labels).to(torch.uint8).expand(3, -1, -1)
    sizes = SizeArguments(crop_size=(48, 56), train_scale=(256, 64), test_scale=(256, 64))
    augmentation = PaperAugmentation(sizes, PROCESSOR, seed=0)
    mean, std = torch.from_numpy(MEAN)[:, None, None], torch.from_numpy(STD)[:, None, None]
    flips = set()
    for row in range(20):
        image, mask = augmentation(grey, labels, row)
        assert image.shape == (3, 48, 56) and mask.shape == (48, 56)
        pixels = (image * std + mean)[0]
        padded = mask == 255
        assert torch.allclose(image[:, padded], torch.zeros(())), "padding must be 0 in normalised space"
        # Pixels at least 2 pixels away from a block edge: bilinear (image) and nearest (mask, floor rule as
        # cv2/mmseg) resizing put an edge up to ~1.5 pixels apart.
        interior = torch.zeros_like(mask, dtype=torch.bool)
        interior[2:-2, 2:-2] = True
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                interior &= torch.roll(mask, (dy, dx), (0, 1)) == mask
        medians = []
        for value in torch.unique(mask[interior & ~padded]).tolist():
            values = pixels[interior & (mask == value)]
            assert values.max() - values.min() < 2.0, f"row {row}: block {value} is not uniform"
            medians.append(values.median().item())
        assert medians == sorted(medians), f"row {row}: grey levels no longer follow the blocks"
        first_row = mask[0][mask[0] != 255]
        flips.add(bool(first_row[0] > first_row[-1]) if len(first_row) > 1 and first_row[0] != first_row[-1] else None)
    assert {True, False} <= flips, "both flipped and unflipped crops should occur"


def test_category_balanced_crop_avoids_single_class_crops() -> None:
    label = np.zeros((64, 64), dtype=np.uint8)
    label[:, 48:] = 1  # class 1 only in the right quarter: most 32x32 crops see class 0 alone

    def balanced_fraction(ratio: float) -> float:
        crop = CategoryBalancedCrop((32, 32), cat_max_ratio=ratio)
        hits = 0
        for seed in range(40):
            _, _, window = crop(label, (64, 64), torch.Generator().manual_seed(seed))
            counts = np.bincount(window.ravel(), minlength=2)
            hits += bool(counts.max() / counts.sum() < 0.75)
        return hits / 40

    assert balanced_fraction(0.75) > 0.9 > balanced_fraction(1.0)


def test_augmentation_refuses_bad_settings() -> None:
    sizes = SizeArguments(crop_size=(8, 8), train_scale=(32, 8), test_scale=(32, 8))
    with pytest.raises(ValueError, match="ratio_range"):
        PaperAugmentation(sizes, PROCESSOR, seed=0, ratio_range=(2.0, 0.5))
    with pytest.raises(ValueError, match="ignore_index"):
        PaperAugmentation(sizes, PROCESSOR, seed=0, ignore_index=-1)


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------


def _encoded(image: PIL.Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _as_datasets_decodes(data: bytes) -> np.ndarray:
    decoded = datasets.Image().decode_example({"bytes": data, "path": None})
    return PROCESSOR.process_image(decoded, do_convert_rgb=True).numpy()


def test_decoding_stored_bytes_gives_the_pixels_datasets_gives() -> None:
    colour = PIL.Image.fromarray(scene(30, 40, seed=1)[0])
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # rotated: the decoded image must be transposed
    cases = {
        "jpeg": _encoded(colour, "JPEG", quality=90),
        "jpeg with orientation": _encoded(colour, "JPEG", exif=exif),
        "cmyk jpeg": _encoded(colour.convert("CMYK"), "JPEG"),
        "png": _encoded(colour, "PNG"),
        "palette png": _encoded(colour.convert("P"), "PNG"),
        "greyscale png": _encoded(colour.convert("L"), "PNG"),
        "rgba png": _encoded(colour.convert("RGBA"), "PNG"),
        "bmp (PIL path)": _encoded(colour, "BMP"),
        "16-bit png (PIL path)": _encoded(PIL.Image.fromarray(np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50), "PNG"),
    }
    for name, data in cases.items():
        decoded = decode_rgb({"bytes": data, "path": None}, PROCESSOR)
        expected = _as_datasets_decodes(data)
        assert decoded.shape == expected.shape, name
        np.testing.assert_array_equal(decoded.numpy(), expected, err_msg=name)
    assert decode_rgb({"bytes": cases["jpeg with orientation"], "path": None}, PROCESSOR).shape == (3, 40, 30)
    assert decode_rgb({"bytes": cases["16-bit png (PIL path)"], "path": None}, PROCESSOR).dtype == torch.float32


def test_split_transform_reads_encoded_and_decoded_columns_alike() -> None:
    image, label = scene(50, 60, seed=2)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.Image(), INDEX_COLUMN: datasets.Value("int64")}
    )
    rows = {"image": [{"bytes": _encoded(PIL.Image.fromarray(image), "JPEG"), "path": None}]}
    rows["label"] = [{"bytes": png_bytes(np.where(label == 255, 0, label + 1).astype(np.uint8)), "path": None}]
    rows[INDEX_COLUMN] = [0]
    decoded = datasets.Dataset.from_dict(rows, features=features)
    encoded = keep_encoded(decoded, "image")
    assert not encoded.features["image"].decode and encoded.features["label"].decode
    assert keep_encoded(decoded.cast_column("image", datasets.Image(mode="L")), "image").features["image"].decode

    sizes = SizeArguments(crop_size=(32, 32), train_scale=(128, 32), test_scale=(128, 32))
    source = SplitSource("scenes", "train", "image", "label")
    mapping = LabelMapping(4, reduce=True)
    outputs = [
        SplitTransform(PROCESSOR, mapping, source, PaperAugmentation(sizes, PROCESSOR, seed=0)).__call__(
            split[:1]
        )
        for split in (decoded, encoded)
    ]
    for key in ("pixel_values", "labels"):
        assert torch.equal(outputs[0][key][0], outputs[1][key][0])


def test_undecodable_image_names_the_row() -> None:
    source = SplitSource("scenes", "train", "image", "label")
    transform = SplitTransform(PROCESSOR, LabelMapping(2), source, PaperAugmentation(
        SizeArguments((8, 8), (32, 8), (32, 8)), PROCESSOR, seed=0
    ))
    batch = {"image": [{"bytes": b"not an image", "path": None}], "label": [np.zeros((4, 4), np.uint8)], INDEX_COLUMN: [7]}
    with pytest.raises(SegmentationDataError, match=r"row 7.*'image'|'image'.*row 7"):
        transform(batch)


def test_photometric_draws_follow_a_fixed_order() -> None:
    first = PhotometricParams.draw(torch.Generator().manual_seed(5))
    assert first == PhotometricParams.draw(torch.Generator().manual_seed(5))
    draws = [PhotometricParams.draw(torch.Generator().manual_seed(seed)) for seed in range(200)]
    assert all(-18 <= d.hue < 18 for d in draws if d.hue is not None)
    assert all(0.5 <= d.contrast <= 1.5 for d in draws if d.contrast is not None)
    assert 0.35 < np.mean([d.saturation is not None for d in draws]) < 0.65


def test_persistent_loader_workers_follow_the_epoch() -> None:
    """Workers started in epoch 0 and kept alive must augment epoch 1 as epoch 1 (exact resume relies on it)."""
    sizes = SizeArguments(crop_size=(16, 16), train_scale=(64, 16), test_scale=(64, 16))
    augmentation = PaperAugmentation(sizes, PROCESSOR, seed=0)
    image, label = scene(20, 24, seed=0)
    pixels, labels = torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(label)

    class Rows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, row: int) -> torch.Tensor:
            return augmentation(pixels, labels, row)[0]

    loader = torch.utils.data.DataLoader(Rows(), batch_size=2, num_workers=1, persistent_workers=True)
    for epoch in range(2):
        augmentation.epoch = epoch
        (batch,) = list(loader)
        expected = torch.stack([augmentation(pixels, labels, row)[0] for row in range(2)])
        assert torch.equal(batch, expected), f"epoch {epoch}"


def test_opencv_runs_single_threaded_in_loader_workers() -> None:
    """The loader's parallelism is one worker process per core: OpenCV must not add a thread pool to each."""

    class Threads(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, row: int) -> int:
            return cv2.getNumThreads()

    assert cv2.getNumThreads() == 1
    (threads,) = torch.utils.data.DataLoader(Threads(), num_workers=1)
    assert int(threads) == 1
