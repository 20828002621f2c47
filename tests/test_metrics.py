"""SegmentationMetric: exact values, agreement with reference implementations, streaming, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segret_hf.metrics import SegmentationMetric, format_per_class_table

# 3 classes; class 2 appears in neither labels nor (non-ignored) predictions. The two ignored
# pixels carry predictions 2 and 0 that must not be counted.
REFS = np.array([[0, 0, 0, 0], [1, 1, 255, 255]], dtype=np.uint8)
PREDS = np.array([[0, 0, 0, 1], [1, 0, 2, 0]], dtype=np.int64)


def reference_metrics(preds: np.ndarray, refs: np.ndarray, num_labels: int, ignore_index: int) -> dict:
    """Per-class boolean-mask computation, independent of the confusion-matrix code."""
    valid = refs != ignore_index
    ious, accs = [], []
    for c in range(num_labels):
        pred_c, ref_c = (preds == c) & valid, (refs == c) & valid
        intersection, union, labelled = (pred_c & ref_c).sum(), (pred_c | ref_c).sum(), ref_c.sum()
        ious.append(intersection / union if union else math.nan)
        accs.append(intersection / labelled if labelled else math.nan)
    return {
        "mean_iou": float(np.nanmean(ious)),
        "mean_accuracy": float(np.nanmean(accs)),
        "overall_accuracy": float(((preds == refs) & valid).sum() / valid.sum()),
        "per_category_iou": ious,
        "per_category_accuracy": accs,
    }


def assert_results_close(actual: dict, expected: dict) -> None:
    for key in ("mean_iou", "mean_accuracy", "overall_accuracy"):
        assert actual[key] == pytest.approx(expected[key], abs=1e-12), key
    for key in ("per_category_iou", "per_category_accuracy"):
        np.testing.assert_allclose(np.asarray(actual[key], float), np.asarray(expected[key], float), atol=1e-12)


def random_batch(seed: int, num_labels: int = 7, shape: tuple[int, ...] = (3, 17, 23)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    refs = rng.integers(0, num_labels, size=shape)
    refs[rng.random(shape) < 0.15] = 255
    preds = np.where(rng.random(shape) < 0.6, np.where(refs == 255, 0, refs), rng.integers(0, num_labels, size=shape))
    return preds, refs


def test_hand_computed_three_classes() -> None:
    metric = SegmentationMetric(num_labels=3)
    metric.update(PREDS, REFS)
    result = metric.compute()
    # class 0: TP 3, labelled 4, predicted 4 -> IoU 3/5, Acc 3/4
    # class 1: TP 1, labelled 2, predicted 2 -> IoU 1/3, Acc 1/2
    # class 2: absent -> NaN, excluded from the means
    assert result["per_category_iou"][:2] == pytest.approx([0.6, 1 / 3])
    assert result["per_category_accuracy"][:2] == pytest.approx([0.75, 0.5])
    assert math.isnan(result["per_category_iou"][2]) and math.isnan(result["per_category_accuracy"][2])
    assert result["mean_iou"] == pytest.approx((0.6 + 1 / 3) / 2)
    assert result["mean_accuracy"] == pytest.approx(0.625)
    assert result["overall_accuracy"] == pytest.approx(4 / 6)
    np.testing.assert_array_equal(metric.confusion_matrix.numpy(), [[3, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_predicted_but_unlabelled_class_has_zero_iou_and_nan_accuracy() -> None:
    metric = SegmentationMetric(num_labels=2)
    metric.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    result = metric.compute()
    assert result["per_category_iou"] == [0.5, 0.0]
    assert result["per_category_accuracy"][0] == 0.5 and math.isnan(result["per_category_accuracy"][1])
    assert result["mean_iou"] == 0.25


def test_agrees_with_independent_computation() -> None:
    preds, refs = random_batch(0)
    metric = SegmentationMetric(num_labels=7)
    metric.update(preds, refs)
    assert_results_close(metric.compute(), reference_metrics(preds, refs, 7, 255))


def test_agrees_with_evaluate_mean_iou() -> None:
    evaluate = pytest.importorskip("evaluate")
    try:
        mean_iou = evaluate.load("mean_iou")
    except Exception as error:  # the metric script is fetched from the Hub; offline there is none
        pytest.skip(f"evaluate's mean_iou is not available offline: {error}")
    preds, refs = random_batch(1)
    expected = mean_iou.compute(  # its features are images: pass 8-bit maps
        predictions=list(preds.astype(np.uint8)), references=list(refs.astype(np.uint8)), num_labels=7, ignore_index=255, reduce_labels=False
    )
    metric = SegmentationMetric(num_labels=7)
    metric.update(preds, refs)
    assert_results_close(metric.compute(), {k: expected[k] for k in metric.compute()})


def test_perfect_prediction() -> None:
    _, refs = random_batch(2)
    metric = SegmentationMetric(num_labels=7)
    metric.update(np.where(refs == 255, 3, refs), refs)
    result = metric.compute()
    assert result["mean_iou"] == 1.0 and result["mean_accuracy"] == 1.0 and result["overall_accuracy"] == 1.0


def test_streaming_equals_one_shot_and_merge() -> None:
    preds, refs = random_batch(3, shape=(6, 11, 13))
    one_shot = SegmentationMetric(num_labels=7)
    one_shot.update(torch.from_numpy(preds), torch.from_numpy(refs))
    streamed = SegmentationMetric(num_labels=7)
    for i in range(6):
        streamed.update(preds[i], refs[i])
    assert torch.equal(streamed.confusion_matrix, one_shot.confusion_matrix)
    assert_results_close(streamed.compute(), one_shot.compute())

    # Two "processes", each with half of the data, combined afterwards.
    first, second = SegmentationMetric(num_labels=7), SegmentationMetric(num_labels=7)
    first.update(preds[:3], refs[:3])
    second.update(preds[3:], refs[3:])
    assert torch.equal(first.merge(second).confusion_matrix, one_shot.confusion_matrix)
    summed = SegmentationMetric(num_labels=7).merge(
        SegmentationMetric(7).merge(one_shot.confusion_matrix.numpy())
    )
    assert torch.equal(summed.confusion_matrix, one_shot.confusion_matrix)


def test_reset_and_empty() -> None:
    metric = SegmentationMetric(num_labels=3)
    metric.update(PREDS, REFS)
    metric.reset()
    assert int(metric.confusion_matrix.sum()) == 0
    result = metric.compute()
    assert math.isnan(result["mean_iou"]) and math.isnan(result["overall_accuracy"])


def test_custom_ignore_index_and_out_of_range_ignored_values() -> None:
    metric = SegmentationMetric(num_labels=3, ignore_index=-100)
    metric.update(torch.tensor([0, 1, 99]), torch.tensor([0, 1, -100]))
    assert metric.compute()["overall_accuracy"] == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors() -> None:
    preds, refs = random_batch(4)
    metric = SegmentationMetric(num_labels=7)
    metric.update(torch.from_numpy(preds).cuda(), torch.from_numpy(refs).cuda())
    assert metric.confusion_matrix.is_cuda
    metric.update(preds, refs)  # a later CPU batch joins the same matrix
    expected = reference_metrics(np.concatenate([preds, preds]), np.concatenate([refs, refs]), 7, 255)
    assert_results_close(metric.compute(), expected)


def test_shape_mismatch_error() -> None:
    metric = SegmentationMetric(num_labels=3)
    with pytest.raises(ValueError, match=r"shape \(2, 4\).*shape \(1, 2, 4\).*Resize the logits"):
        metric.update(PREDS, REFS[None])


def test_label_value_out_of_range_error() -> None:
    metric = SegmentationMetric(num_labels=3)
    refs = REFS.copy()
    refs[0, 1] = 7
    with pytest.raises(ValueError, match=r"references contain the value 7.*\[0, 2\].*ignore_index=255.*label_lut"):
        metric.update(PREDS, refs)
    assert int(metric.confusion_matrix.sum()) == 0  # a rejected batch leaves no trace


def test_prediction_out_of_range_error() -> None:
    metric = SegmentationMetric(num_labels=3)
    preds = PREDS.copy()
    preds[0, 0] = 5
    with pytest.raises(ValueError, match="predictions contain the value 5"):
        metric.update(preds, REFS)


def test_float_predictions_are_rejected() -> None:
    metric = SegmentationMetric(num_labels=3)
    with pytest.raises(TypeError, match="argmax"):
        metric.update(torch.zeros(2, 4), torch.from_numpy(REFS))


def test_merge_shape_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        SegmentationMetric(3).merge(SegmentationMetric(4))


def test_format_per_class_table() -> None:
    metric = SegmentationMetric(num_labels=3)
    metric.update(PREDS, REFS)
    table = format_per_class_table(metric.compute(), {0: "wall", 1: "bed ", 2: "sky"})
    lines = table.splitlines()
    assert "| Class |   IoU |   Acc |" in lines
    assert "| wall  | 60.00 | 75.00 |" in lines
    assert "| bed   | 33.33 | 50.00 |" in lines
    assert "| sky   |   nan |   nan |" in lines
    assert lines[-1] == "mIoU: 46.67  mAcc: 62.50  aAcc: 66.67"
    assert "| 2 " in format_per_class_table(metric.compute())
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        format_per_class_table(metric.compute(), ["a", "b"])
