"""scripts/prepare_dataset.py on miniature copies of the official ADE20K, Cityscapes and COCO-Stuff releases.

Each release is rebuilt with its real archive names, folder layout and file naming (a handful of 32x24
images), zipped and extracted. The prepared folders are loaded with `datasets.load_dataset`, their labels
compared pixel by pixel with the original files, and used for a few training and evaluation steps.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import scipy.io

from segret_hf.cli.evaluate import build_parser as build_evaluation_parser
from segret_hf.data.label_maps import LabelMapping, label_map_array
from segret_hf.data.loading import DatasetScriptError, load_split
from segret_hf.data.preparation import LAYOUTS
from segret_hf.data.preparation import prepare as prepare_module
from segret_hf.data.presets import get_preset
from segret_hf.training.data import SegmentationDataError
from segret_hf.training.run import main as train_main

from helpers import load_script, save_tiny_model

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 24, 32
STUFF_MAPS = "stuffthingmaps_trainval2017.zip"

prepare_script = load_script(ROOT / "scripts" / "prepare_dataset.py")
evaluate_script = load_script(ROOT / "scripts" / "evaluate.py")


# ---------------------------------------------------------------------------------------------------------
# Miniature official releases
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Release:
    """A miniature official release: `{archive file name: {member path: bytes}}` and the raw label of each id."""

    archives: dict[str, dict[str, bytes]]
    labels: dict[str, np.ndarray]
    images: dict[str, bytes]

    def zipped(self, folder: Path) -> list[Path]:
        """The archives as zip files, in reverse order (the script accepts any order)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, members in self.archives.items():
            with zipfile.ZipFile(folder / name, "w") as archive:
                for member, data in members.items():
                    archive.writestr(member, data)
            paths.append(folder / name)
        return paths[::-1]

    def extracted(self, folder: Path) -> list[Path]:
        """Each archive extracted into a folder named after it."""
        paths = []
        for name, members in self.archives.items():
            root = folder / name.removesuffix(".zip")
            for member, data in members.items():
                (root / member).parent.mkdir(parents=True, exist_ok=True)
                (root / member).write_bytes(data)
            paths.append(root)
        return paths


def encoded(array: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format=image_format)
    return buffer.getvalue()


def photo(rng: np.random.Generator, image_format: str) -> bytes:
    return encoded(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), image_format)


def label_with(rng: np.random.Generator, values: list[int]) -> np.ndarray:
    """A label map holding every value of `values` (small blocks), the rest drawn from them at random."""
    label = rng.choice(values, size=(HEIGHT, WIDTH)).astype(np.uint8)
    label.flat[: len(values)] = values
    return label


def ade20k_release() -> Release:
    rng = np.random.default_rng(0)
    members, labels, images = {}, {}, {}
    for split, prefix, count in (("training", "ADE_train", 3), ("validation", "ADE_val", 2)):
        for index in range(1, count + 1):
            name = f"{prefix}_{index:08d}"
            labels[name] = label_with(rng, [0, 1, 2, 75, 150])
            images[name] = photo(rng, "JPEG")
            members[f"ADEChallengeData2016/images/{split}/{name}.jpg"] = images[name]
            members[f"ADEChallengeData2016/annotations/{split}/{name}.png"] = encoded(labels[name], "PNG")
    members["ADEChallengeData2016/objectInfo150.txt"] = b"Idx\tRatio\tTrain\tVal\tName\n"
    members["ADEChallengeData2016/sceneCategories.txt"] = b"ADE_train_00000001 airport_terminal\n"
    return Release({"ADEChallengeData2016.zip": members}, labels, images)


def cityscapes_release() -> Release:
    rng = np.random.default_rng(1)
    left = {"README": b"Cityscapes", "license.txt": b"licence"}
    fine = {"README": b"Cityscapes", "license.txt": b"licence"}
    labels, images = {}, {}
    files = [("train", "aachen", 19), ("train", "aachen", 20), ("train", "bochum", 7), ("val", "frankfurt", 294),
             ("val", "lindau", 19), ("test", "berlin", 19)]  # fmt: skip
    for split, city, frame in files:
        name = f"{city}_000000_{frame:06d}"
        label = label_with(rng, [0, 1, 7, 8, 24, 26, 33])
        image = photo(rng, "PNG")
        left[f"leftImg8bit/{split}/{city}/{name}_leftImg8bit.png"] = image
        base = f"gtFine/{split}/{city}/{name}_gtFine"
        fine[f"{base}_labelIds.png"] = encoded(label if split != "test" else np.zeros_like(label), "PNG")
        fine[f"{base}_color.png"] = encoded(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "PNG")
        fine[f"{base}_instanceIds.png"] = encoded(label.astype(np.uint16) * 1000, "PNG")
        fine[f"{base}_polygons.json"] = b"{}"
        if split != "test":
            labels[name], images[name] = label, image
    return Release({"leftImg8bit_trainvaltest.zip": left, "gtFine_trainvaltest.zip": fine}, labels, images)


def coco_stuff_release() -> Release:
    rng = np.random.default_rng(2)
    archives: dict[str, dict[str, bytes]] = {name: {} for name in ("train2017.zip", "val2017.zip", STUFF_MAPS)}
    labels, images = {}, {}
    for split, ids in (("train2017", (9, 25, 30)), ("val2017", (139, 285))):
        for image_id in ids:
            name = f"{image_id:012d}"
            labels[name] = label_with(rng, [0, 11, 91, 181, 255])
            images[name] = photo(rng, "JPEG")
            archives[f"{split}.zip"][f"{split}/{name}.jpg"] = images[name]
            archives[STUFF_MAPS][f"{split}/{name}.png"] = encoded(labels[name], "PNG")
    return Release(archives, labels, images)


def mat_bytes(label: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"S": label.astype(np.uint16), "names": np.array(["unlabeled", "person"], dtype=object)})
    return buffer.getvalue()


def coco_stuff_10k_release() -> Release:
    rng = np.random.default_rng(3)
    members, labels, images = {}, {}, {}
    names = {"train": ["COCO_train2014_000000000077", "COCO_train2014_000000000078", "COCO_train2014_000000000081"],
             "test": ["COCO_train2014_000000000113", "COCO_train2014_000000000315"]}  # fmt: skip
    for split, split_names in names.items():
        members[f"imageLists/{split}.txt"] = ("\n".join(split_names) + "\n").encode()
        for name in split_names:
            labels[name] = label_with(rng, [0, 1, 12, 92, 182])
            images[name] = photo(rng, "JPEG")
            members[f"images/{name}.jpg"] = images[name]
            members[f"annotations/{name}.mat"] = mat_bytes(labels[name])
    members["imageLists/all.txt"] = ("\n".join(sorted(labels)) + "\n").encode()
    return Release({"cocostuff-10k-v1.1.zip": members}, labels, images)


RELEASES = {
    "ade20k": ade20k_release,
    "cityscapes": cityscapes_release,
    "coco-stuff": coco_stuff_release,
    "coco-stuff-10k": coco_stuff_10k_release,
}
SPLIT_SIZES = {
    "ade20k": {"train": 3, "validation": 2},
    "cityscapes": {"train": 3, "validation": 2},
    "coco-stuff": {"train": 3, "validation": 2},
    "coco-stuff-10k": {"train": 3, "validation": 2},
}


def sources(release: Release, folder: Path, form: str) -> list[Path]:
    """The release as given to the script: zip files, or extracted folders (ADE20K: without its top folder,
    COCO-Stuff: all three archives extracted into one folder)."""
    paths = release.zipped(folder) if form == "zip" else release.extracted(folder)
    if form == "folder" and "ADEChallengeData2016.zip" in release.archives:
        return [paths[0] / "ADEChallengeData2016"]
    if form == "folder" and "stuffthingmaps_trainval2017.zip" in release.archives:
        merged = folder / "coco"
        for path in paths:
            for file in path.rglob("*"):
                if file.is_file():
                    (merged / file.relative_to(path)).parent.mkdir(parents=True, exist_ok=True)
                    file.rename(merged / file.relative_to(path))
        return [merged]
    return paths


def run_prepare(dataset: str, source_paths: list[Path], output: Path, *extra: str) -> int:
    return prepare_script.main(
        ["--dataset", dataset, "--source", *map(str, source_paths), "--output_dir", str(output), *extra]
    )


def assert_labels_round_trip(output: Path, dataset: str, release: Release, train_ids: bool) -> None:
    """Through its preset, every stored pixel gives the train id the preset's table gives the original file."""
    preset = get_preset(LAYOUTS[dataset].preset)
    mapping = LabelMapping.for_dataset(preset.num_labels, preset, None, labels_are_train_ids=train_ids)
    table = preset.label_set.lut()
    loaded = datasets.load_dataset(str(output))
    assert {split: len(rows) for split, rows in loaded.items()} == SPLIT_SIZES[dataset]
    for split in loaded.values():
        for row in split:
            raw = release.labels[row["image_id"]]
            stored = label_map_array(row["annotation"])
            np.testing.assert_array_equal(mapping(stored), table[raw])
            np.testing.assert_array_equal(stored, table[raw] if train_ids else raw)


# ---------------------------------------------------------------------------------------------------------
# Layout, contents and labels
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["zip", "folder"])
@pytest.mark.parametrize("dataset", list(RELEASES))
def test_official_release_becomes_a_loadable_hub_dataset(dataset: str, form: str, tmp_path: Path) -> None:
    release = RELEASES[dataset]()
    output = tmp_path / "prepared"
    assert run_prepare(dataset, sources(release, tmp_path / "src", form), output) == 0

    assert sorted(path.name for path in (output / "data").iterdir()) == [
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    assert sorted(path.name for path in output.parent.iterdir()) == ["prepared", "src"]  # no temporary folder left
    loaded = datasets.load_dataset(str(output))
    columns = ["image", "annotation", "image_id", *(["city"] if dataset == "cityscapes" else [])]
    assert loaded["train"].column_names == columns
    assert isinstance(loaded["train"].features["annotation"], datasets.Image)
    undecoded = loaded["validation"].cast_column("image", datasets.Image(decode=False))
    for row in undecoded:
        assert row["image"]["bytes"] == release.images[row["image_id"]]  # copied, never re-encoded
    assert_labels_round_trip(output, dataset, release, train_ids=False)

    id2label = json.loads((output / "id2label.json").read_text())
    assert id2label == {str(k): v for k, v in get_preset(dataset).label_set.id2label.items()}
    card = (output / "README.md").read_text()
    assert f"--dataset_preset {LAYOUTS[dataset].preset}" in card and "official raw values" in card
    assert "@inproceedings" in card and "## Licence" in card and "path: data/train-*" in card


def test_cityscapes_keeps_the_city_and_skips_the_placeholder_test_split(tmp_path: Path, caplog) -> None:
    release = cityscapes_release()
    with caplog.at_level(logging.WARNING):
        assert run_prepare("cityscapes", release.zipped(tmp_path / "src"), tmp_path / "out") == 0
    assert "split 'test' skipped" in caplog.text
    train = datasets.load_dataset(str(tmp_path / "out"), split="train")
    assert train["image_id"] == ["aachen_000000_000019", "aachen_000000_000020", "bochum_000000_000007"]
    assert train["city"] == ["aachen", "aachen", "bochum"]
    assert "test split is not included" in (tmp_path / "out" / "README.md").read_text()
    stream = load_split(str(tmp_path / "out"), "validation", streaming=True)  # read from the parquet files
    assert isinstance(stream, datasets.IterableDataset)
    assert [row["image_id"] for row in stream] == ["frankfurt_000000_000294", "lindau_000000_000019"]


@pytest.mark.parametrize("dataset", list(RELEASES))
def test_train_ids_are_stored_and_read_as_train_ids(dataset: str, tmp_path: Path) -> None:
    release = RELEASES[dataset]()
    output = tmp_path / "prepared"
    assert run_prepare(dataset, release.zipped(tmp_path / "src"), output, "--train_ids") == 0
    assert_labels_round_trip(output, dataset, release, train_ids=True)
    card = (output / "README.md").read_text()
    assert "**train ids**" in card and f"--dataset_preset {LAYOUTS[dataset].preset} --labels_are_train_ids" in card


def test_small_shards_roll_over_and_parallel_runs_write_identical_files(tmp_path: Path) -> None:
    release = ade20k_release()
    archive = release.zipped(tmp_path / "src")
    assert run_prepare("ade20k", archive, tmp_path / "one", "--max_shard_size", "2KB") == 0
    assert run_prepare("ade20k", archive, tmp_path / "two", "--max_shard_size", "2KB", "--num_proc", "2") == 0
    names = sorted(path.name for path in (tmp_path / "one" / "data").iterdir())
    assert names == [f"train-0000{i}-of-00003.parquet" for i in range(3)] + [
        f"validation-0000{i}-of-00002.parquet" for i in range(2)
    ]
    for name in names:
        assert (tmp_path / "one" / "data" / name).read_bytes() == (tmp_path / "two" / "data" / name).read_bytes()
    assert datasets.load_dataset(str(tmp_path / "two"), split="train")["image_id"] == [
        "ADE_train_00000001", "ADE_train_00000002", "ADE_train_00000003"
    ]  # fmt: skip


def test_fewer_images_than_the_official_release_is_a_warning(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert run_prepare("ade20k", ade20k_release().zipped(tmp_path / "src"), tmp_path / "out") == 0
    assert "ade20k split 'train': 3 image/annotation pairs, the official release has 20210" in caplog.text
    assert "split 'validation': 2 image/annotation pairs, the official release has 2000" in caplog.text


def test_a_subset_of_the_archives_prepares_the_splits_it_holds(tmp_path: Path, caplog) -> None:
    release = coco_stuff_release()
    paths = {path.name: path for path in release.zipped(tmp_path / "src")}
    with caplog.at_level(logging.WARNING):
        code = run_prepare("coco-stuff", [paths["val2017.zip"], paths[STUFF_MAPS]], tmp_path / "o")
    assert code == 0
    assert list(datasets.load_dataset(str(tmp_path / "o"))) == ["validation"]
    assert "annotations of split 'train2017' found but none of its images" in caplog.text


# ---------------------------------------------------------------------------------------------------------
# Training and evaluating on prepared datasets
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "train_ids", "streaming"),
    [("ade20k", False, False), ("cityscapes", True, True), ("coco-stuff", False, False),
     ("coco-stuff-10k", True, False)],
)
def test_training_and_evaluation_run_on_a_prepared_dataset(
    dataset: str, train_ids: bool, streaming: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Streamed parquet pauses 5 s whenever a pass over the files ends (a guard for pyarrow's thread shutdown at
    # interpreter exit); the test process lives on, and 3-row epochs would spend most of their time there.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0.1)
    release = RELEASES[dataset]()
    data = tmp_path / "data"
    assert run_prepare(dataset, release.zipped(tmp_path / "src"), data, *(["--train_ids"] if train_ids else [])) == 0
    preset = get_preset(dataset)
    model = save_tiny_model(tmp_path / "model", preset.label_set.id2label)
    label_flags = ["--dataset_preset", dataset, *(["--labels_are_train_ids"] if train_ids else [])]
    metrics = train_main(
        ["--dataset_name", str(data), *label_flags, "--model_name_or_path", str(model),
         "--output_dir", str(tmp_path / "run"), "--crop_size", "32", "--max_steps", "2",
         "--per_device_train_batch_size", "3", "--per_device_eval_batch_size", "1",
         "--report_to", "none",
         "--disable_tqdm", "true", "--dataloader_pin_memory", "false", "--save_strategy", "no",
         *(["--streaming"] if streaming else [])]
    )  # fmt: skip
    assert 0.0 <= metrics["eval_overall_accuracy"] <= 1.0
    status = evaluate_script.main(
        ["--model", str(tmp_path / "run"), "--dataset_name", str(data), *label_flags, "--split", "validation",
         "--output_file", str(tmp_path / "eval.json"), "--no_progress"]
    )  # fmt: skip
    assert status == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    mapping = LabelMapping.for_dataset(preset.num_labels, preset, None, labels_are_train_ids=train_ids)
    assert result["num_samples"] == 2 and result["dataset"]["labels"] == mapping.describe()


# ---------------------------------------------------------------------------------------------------------
# Bad input: one clear error naming the file, and nothing written
# ---------------------------------------------------------------------------------------------------------


def prepare_fails(tmp_path: Path, release: Release, dataset: str, match: str, num_proc: int = 1) -> None:
    output = tmp_path / "out"
    source = [str(path) for path in release.zipped(tmp_path / "src")]
    with pytest.raises(prepare_module.DatasetPreparationError, match=match):
        prepare_module.prepare_dataset(
            prepare_module.PrepareArguments(dataset=dataset, source=source, output_dir=str(output), num_proc=num_proc)
        )
    assert not output.exists() and sorted(path.name for path in tmp_path.iterdir()) == ["src"]


def test_an_image_without_its_annotation_is_named(tmp_path: Path) -> None:
    release = cityscapes_release()
    del release.archives["gtFine_trainvaltest.zip"]["gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"]
    prepare_fails(
        tmp_path, release, "cityscapes",
        r"leftImg8bit_trainvaltest.zip:leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png has no annotation "
        r"in the sources \(expected lindau_000000_000019_gtFine_labelIds.png\)",
    )  # fmt: skip


def test_an_annotation_without_its_image_is_named(tmp_path: Path) -> None:
    release = ade20k_release()
    del release.archives["ADEChallengeData2016.zip"]["ADEChallengeData2016/images/training/ADE_train_00000002.jpg"]
    prepare_fails(
        tmp_path, release, "ade20k",
        r"ADEChallengeData2016/annotations/training/ADE_train_00000002.png has no image in the sources",
    )  # fmt: skip


def test_a_listed_10k_image_missing_from_the_sources_is_named(tmp_path: Path) -> None:
    release = coco_stuff_10k_release()
    members = release.archives["cocostuff-10k-v1.1.zip"]
    del members["images/COCO_train2014_000000000315.jpg"], members["annotations/COCO_train2014_000000000315.mat"]
    prepare_fails(tmp_path, release, "coco-stuff-10k", r"imageLists/test.txt lists 'COCO_train2014_000000000315'")


def test_image_and_annotation_of_different_sizes_are_refused(tmp_path: Path) -> None:
    release = coco_stuff_release()
    release.archives[STUFF_MAPS]["val2017/000000000139.png"] = encoded(
        np.zeros((HEIGHT, WIDTH + 1), np.uint8), "PNG"
    )
    prepare_fails(
        tmp_path, release, "coco-stuff",
        r"stuffthingmaps_trainval2017.zip:val2017/000000000139.png is 33x24 but its image .*val2017.zip:"
        r"val2017/000000000139.jpg is 32x24 \(width x height\)",
        num_proc=2,  # raised in a worker process, reported the same way
    )  # fmt: skip


@pytest.mark.parametrize(
    ("dataset", "member", "value"),
    [("ade20k", "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png", 151),
     ("cityscapes", "gtFine/train/bochum/bochum_000000_000007_gtFine_labelIds.png", 34),
     ("coco-stuff", "train2017/000000000025.png", 200)],
)  # fmt: skip
def test_annotation_values_the_dataset_does_not_define_are_refused(
    dataset: str, member: str, value: int, tmp_path: Path
) -> None:
    release = RELEASES[dataset]()
    archive = next(members for members in release.archives.values() if member in members)
    label = np.array(PIL.Image.open(io.BytesIO(archive[member])))
    label[3, 4] = value
    archive[member] = encoded(label, "PNG")
    prepare_fails(tmp_path, release, dataset, rf"{member} holds values \[{value}\] that {dataset} does not define")


def test_10k_label_values_outside_the_release_are_refused(tmp_path: Path) -> None:
    release = coco_stuff_10k_release()
    release.archives["cocostuff-10k-v1.1.zip"]["annotations/COCO_train2014_000000000078.mat"] = mat_bytes(
        np.full((HEIGHT, WIDTH), 183)
    )
    prepare_fails(tmp_path, release, "coco-stuff-10k", r"COCO_train2014_000000000078.mat holds values \[183\]")


def test_unreadable_images_and_annotations_are_named(tmp_path: Path) -> None:
    release = ade20k_release()
    members = release.archives["ADEChallengeData2016.zip"]
    image = "ADEChallengeData2016/images/training/ADE_train_00000003.jpg"
    members[image] = members[image][: len(members[image]) // 2]
    prepare_fails(tmp_path / "image", release, "ade20k", rf"{image} is not a readable image")
    release = cityscapes_release()
    members = release.archives["leftImg8bit_trainvaltest.zip"]
    image = "leftImg8bit/train/bochum/bochum_000000_000007_leftImg8bit.png"
    damaged = bytearray(members[image])
    damaged[len(damaged) // 2] ^= 0xFF
    members[image] = bytes(damaged)
    prepare_fails(tmp_path / "png", release, "cityscapes", rf"{image} is not a readable image")
    release = coco_stuff_10k_release()
    release.archives["cocostuff-10k-v1.1.zip"]["annotations/COCO_train2014_000000000081.mat"] = b"not a mat file"
    prepare_fails(tmp_path / "mat", release, "coco-stuff-10k", r"COCO_train2014_000000000081.mat is not a readable")


def test_colour_annotations_are_refused(tmp_path: Path) -> None:
    release = ade20k_release()
    member = "ADEChallengeData2016/annotations/training/ADE_train_00000001.png"
    release.archives["ADEChallengeData2016.zip"][member] = encoded(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "PNG")
    prepare_fails(tmp_path, release, "ade20k", rf"{member} is not a class-id map: it is a 'RGB' image")


def test_wrong_sources_are_refused_by_name(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.zip").write_text("not a zip")
    assert run_prepare("ade20k", [tmp_path / "notes.zip"], tmp_path / "out") == 2
    assert "notes.zip' is not a readable zip archive" in capsys.readouterr().err
    assert run_prepare("ade20k", [tmp_path / "missing.zip"], tmp_path / "out") == 2
    assert "missing.zip' does not exist" in capsys.readouterr().err
    cityscapes = cityscapes_release().zipped(tmp_path / "city")
    assert run_prepare("ade20k", cityscapes, tmp_path / "out") == 2
    assert "gtFine_trainvaltest.zip' holds no ade20k files. Expected the official layout" in capsys.readouterr().err
    archive = ade20k_release().zipped(tmp_path / "ade")
    assert run_prepare("ade20k", archive + archive, tmp_path / "out") == 2
    assert "are the same file of ade20k; pass each archive" in capsys.readouterr().err
    assert run_prepare("ade20k", archive, tmp_path / "out", "--max_shard_size", "lots") == 2
    assert "--max_shard_size 'lots' is not a size" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_non_empty_output_dir_is_kept_unless_overwriting(tmp_path: Path, capsys) -> None:
    archive = ade20k_release().zipped(tmp_path / "src")
    output = tmp_path / "out"
    output.mkdir()
    (output / "mine.txt").write_text("keep me")
    assert run_prepare("ade20k", archive, output) == 2
    assert "is not empty. Pass --overwrite_output_dir" in capsys.readouterr().err
    assert (output / "mine.txt").read_text() == "keep me"
    assert run_prepare("ade20k", archive, output, "--overwrite_output_dir") == 0
    assert sorted(path.name for path in output.iterdir()) == ["README.md", "data", "id2label.json"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "src"]


def test_missing_scipy_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "scipy.io", None)
    prepare_fails(
        tmp_path, coco_stuff_10k_release(), "coco-stuff-10k", r"needs scipy.*pip install 'segret-hf\[prepare\]'"
    )


def test_push_to_hub_creates_the_dataset_repo_and_uploads_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    class RecordingApi:
        def create_repo(self, repo_id: str, **kwargs) -> None:
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs) -> None:
            calls.append(("upload_folder", sorted(p.name for p in Path(kwargs["folder_path"]).iterdir()), kwargs))

    monkeypatch.setattr(prepare_module, "HfApi", RecordingApi)
    archive = ade20k_release().zipped(tmp_path / "src")
    assert run_prepare("ade20k", archive, tmp_path / "out", "--push_to_hub", "me/ade20k", "--private") == 0
    assert calls[0] == ("create_repo", "me/ade20k", {"repo_type": "dataset", "private": True, "exist_ok": True})
    name, files, kwargs = calls[1]
    assert name == "upload_folder" and files == ["README.md", "data", "id2label.json"]
    assert kwargs["repo_id"] == "me/ade20k" and kwargs["repo_type"] == "dataset"
    assert kwargs["folder_path"] == str((tmp_path / "out").resolve())
    assert "--dataset_name me/ade20k" in (tmp_path / "out" / "README.md").read_text()


# ---------------------------------------------------------------------------------------------------------
# Datasets that are only a loading script
# ---------------------------------------------------------------------------------------------------------

BOTH_WAYS_OUT = r"--dataset_revision refs/convert/parquet.*scripts/prepare_dataset.py"


def test_a_local_loading_script_folder_names_both_ways_out(tmp_path: Path) -> None:
    for folder in (tmp_path / "scene_parse_150", tmp_path / "copy"):
        folder.mkdir()
        (folder / "scene_parse_150.py").write_text("import datasets\n")
        (folder / "README.md").write_text("# scene parsing\n")
        with pytest.raises(DatasetScriptError, match=rf"scene_parse_150.py.*{BOTH_WAYS_OUT}"):
            load_split(str(folder), "train")


def test_a_hub_loading_script_names_both_ways_out_in_training_and_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def script_only(*args, **kwargs):
        raise RuntimeError("Dataset scripts are no longer supported, but found scene_parse_150.py")

    monkeypatch.setattr(datasets, "load_dataset", script_only)
    with pytest.raises(SegmentationDataError, match=rf"'scene_parse_150' is a loading script.*{BOTH_WAYS_OUT}"):
        train_main(["--dataset_name", "scene_parse_150", "--dataset_preset", "ade20k", "--model_variant", "tiny",
                    "--output_dir", str(tmp_path / "run"), "--report_to", "none"])  # fmt: skip
    status = evaluate_script.main(["--model", str(tmp_path), "--dataset_name", "scene_parse_150"])
    assert status == 2 and "refs/convert/parquet" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_dataset_revision_reaches_load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise FileNotFoundError("offline")

    monkeypatch.setattr(datasets, "load_dataset", record)
    with pytest.raises(FileNotFoundError):
        load_split("scene_parse_150", "validation", "scene_parsing", revision="refs/convert/parquet")
    assert seen["revision"] == "refs/convert/parquet"
    assert build_evaluation_parser().parse_args(
        ["--model", "m", "--dataset_name", "d", "--dataset_revision", "refs/convert/parquet"]
    ).dataset_revision == "refs/convert/parquet"


def test_the_benchmark_builds_archives_the_script_accepts(tmp_path: Path) -> None:
    """The benchmark's synthetic Cityscapes archives (tiny here) go through preparation; no timing is checked."""
    benchmark = load_script(ROOT / "benchmarks" / "prepare_dataset_benchmark.py")
    archives = benchmark.build_archives(tmp_path, 12, HEIGHT, WIDTH)
    assert run_prepare("cityscapes", archives, tmp_path / "out") == 0
    loaded = datasets.load_dataset(str(tmp_path / "out"))
    assert {split: len(rows) for split, rows in loaded.items()} == {"train": 10, "validation": 2}
    images = loaded["train"].cast_column("image", datasets.Image(decode=False))["image"]
    assert len({image["bytes"] for image in images}) == 10  # every file distinct, as in a real release
