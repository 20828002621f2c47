#!/usr/bin/env python
"""Segment one image and save it with a colour overlay and a legend of the classes found.

    python examples/segment_image.py photo.jpg --model path/to/segret-model --output photo_segmented.png

`--model` is a model folder or Hub id saved with its image processor. No model is downloaded by default:
to try the script offline, use the small sample model the training example writes to `outputs/sample`
(`--model outputs/sample`). Colours follow the ADE20K, Cityscapes or COCO-Stuff palette when the model's
class names are those of the dataset, and a fixed generic palette otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import PIL.Image

from segret_hf.data.presets import MULTI_SCALE_RATIOS
from segret_hf.inference import DTYPES, InferenceProtocol, SegmentationInferencer
from segret_hf.output_files import check_output_file, image_format
from segret_hf.visualization import classes_by_area, palette_for_labels, render_segmentation


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, predict, draw, save; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="Path of the image to segment.")
    parser.add_argument("--model", default=None, help="Model folder or Hub id (e.g. outputs/sample).")
    parser.add_argument("--output", default=None, help="Output PNG (default: <image>_segmented.png).")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: where the model loads).")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--multi_scale", action="store_true", help=f"Average over ratios {MULTI_SCALE_RATIOS}.")
    parser.add_argument("--flip", action="store_true", help="Also average the horizontally flipped image.")
    parser.add_argument("--alpha", type=float, default=0.5, help="Overlay opacity in [0, 1].")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error(
            "no model given: pass --model with a SegRet model folder or Hub id, for example --model outputs/sample "
            "(the small sample model written by the training example)."
        )

    try:
        image = PIL.Image.open(args.image)
        image.load()
    except OSError as error:
        parser.error(f"cannot read image {args.image!r}: {error}")
    output = Path(args.output or Path(args.image).with_name(f"{Path(args.image).stem}_segmented.png"))
    try:  # the output is checked before inference, so a bad path costs nothing
        output_format = image_format(check_output_file(output, "--output"), "--output")
        protocol = InferenceProtocol(scales=MULTI_SCALE_RATIOS if args.multi_scale else (1.0,), flip=args.flip)
        inferencer = SegmentationInferencer.from_pretrained(args.model, protocol, device=args.device, dtype=args.dtype)
    except (ValueError, OSError) as error:  # the message names the path or the model
        print(f"error: {error}", file=sys.stderr)
        return 2
    segmentation = inferencer.predict([image])[0]

    id2label = inferencer.id2label
    palette, palette_source = palette_for_labels(id2label)
    picture = render_segmentation(image, segmentation, id2label, palette, alpha=args.alpha)
    output.parent.mkdir(parents=True, exist_ok=True)
    picture.save(output, format=output_format)

    print(f"Wrote {output} ({picture.width}x{picture.height}, {palette_source or 'generic'} palette)")
    for class_id, fraction in classes_by_area(segmentation):
        print(f"  {100 * fraction:5.1f}%  {id2label.get(class_id, class_id)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
