"""ONNX export against PyTorch: peak memory and time of one forward pass of a SegRet (random weights, 150 classes)
on onnxruntime and on PyTorch `sdpa`, each in a fresh subprocess (see benchmarks/README.md, "ONNX export").

    python benchmarks/onnx_memory.py --sizes 512x512 1024x1024 1024x2048 --threads 2

The model is exported with `segret_hf.onnx_export.to_onnx` (or `--onnx FILE` reuses an export of the same
variant). Both children import the same modules, so their resident sets start alike; the figures are the peak
RSS of the first call, that peak minus the RSS after loading, and the time of a second call, with their ratio
onnxruntime / PyTorch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

# The suite lives next to this script (benchmarks/segret_bench), not in the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = Path(__file__).resolve().parent / "results"

from segret_bench.environment import describe_environment, device_slug, load  # noqa: E402
from segret_bench.memory import MEMORY_METHOD, probe_memory, probe_onnx_memory  # noqa: E402
from segret_bench.models import build_model, segret_spec  # noqa: E402

from segret_hf.configuration_segret import SEGRET_VARIANTS  # noqa: E402
from segret_hf.inference import hw_argument  # noqa: E402
from segret_hf.onnx_export import DEFAULT_MAX_SIDE, to_onnx  # noqa: E402
from segret_hf.onnx_inference import import_onnxruntime  # noqa: E402


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


def _row(size: tuple[int, int], backend: str, result: dict[str, Any]) -> str:
    def number(key: str, digits: int) -> str:
        return "-" if result.get(key) is None else f"{result[key]:.{digits}f}"

    cells = [f"1x3x{size[0]}x{size[1]}", backend, result["status"], number("after_build_mib", 0)]
    cells += [number("peak_mib", 0), number("peak_delta_mib", 0), number("first_call_s", 2), number("steady_call_s", 2)]
    return "| " + " | ".join(cells) + " |"


def render_markdown(report: dict[str, Any]) -> str:
    """The measurements as a markdown table, then the ratios per size."""
    lines = [
        f"SegRet-{report['variant']}, {report['threads']} threads; {report['environment']['device']['cpu_model']}; "
        f"torch {report['environment']['torch']}, onnxruntime {report['onnxruntime']}",
        "",
        "| input | backend | status | RSS after load (MiB) | peak RSS (MiB) | peak − after load (MiB) | first call (s) "
        "| second call (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["results"]:
        size = tuple(entry["size"])
        lines.append(_row(size, "PyTorch sdpa", entry["pytorch"]))
        lines.append(_row(size, "onnxruntime", entry["onnxruntime"]))
    lines.append("")
    for entry in report["results"]:
        ratios = ", ".join(
            f"{name} {value:.2f}" for name, value in entry["ratios"].items() if value is not None
        )
        lines.append(f"onnxruntime / PyTorch at {entry['size'][0]}x{entry['size'][1]}: {ratios or 'n/a'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=list(SEGRET_VARIANTS), default="tiny")
    parser.add_argument("--sizes", nargs="+", type=hw_argument, default=[(1024, 2048)], help="HxW, batch 1")
    parser.add_argument("--threads", type=int, help="threads of both runtimes (default: torch's default)")
    parser.add_argument("--onnx", type=Path, help="an export of the same variant's random weights to reuse")
    parser.add_argument("--timeout_s", type=float, default=900, help="per child process (default: 900)")
    parser.add_argument("--memory_limit_gib", type=float, default=16, help="address-space limit per child")
    parser.add_argument("--output_dir", type=Path, default=RESULTS, help="where the JSON + markdown pair goes")
    parser.add_argument("--tag", default="onnx-memory", help="file name: <output_dir>/cpu-<threads>t_<tag>.{json,md}")
    args = parser.parse_args(argv)
    ort = import_onnxruntime()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = segret_spec(args.variant, "sdpa")
    report: dict[str, Any] = {
        "variant": args.variant,
        "threads": torch.get_num_threads(),
        "onnxruntime": ort.__version__,
        "method": MEMORY_METHOD.format(limit=f"{args.memory_limit_gib:g} GiB", timeout=f"{args.timeout_s:g} s"),
        "environment": describe_environment(torch.device("cpu")),
        "results": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = args.onnx
        if onnx_path is None:
            onnx_path = Path(folder) / f"segret-{args.variant}.onnx"
            print(f"Exporting SegRet-{args.variant} to {onnx_path} ...", file=sys.stderr, flush=True)
            model = build_model(spec, torch.device("cpu"), torch.float32)  # the weights the PyTorch child builds
            max_side = max(DEFAULT_MAX_SIDE, *(max(size) for size in args.sizes))
            to_onnx(model, max_side=max_side).save(onnx_path, external_data=False)
        for height, width in args.sizes:
            print(f"Measuring 1x3x{height}x{width} ...", file=sys.stderr, flush=True)
            limits = (args.timeout_s, args.memory_limit_gib)
            pytorch = asdict(probe_memory(spec, height, width, 1, torch.device("cpu"), torch.float32, *limits))
            onnx = asdict(probe_onnx_memory(onnx_path, height, width, 1, *limits))
            ratios = {
                "peak RSS": _ratio(onnx["peak_mib"], pytorch["peak_mib"]),
                "peak − after load": _ratio(onnx["peak_delta_mib"], pytorch["peak_delta_mib"]),
                "second call time": _ratio(onnx["steady_call_s"], pytorch["steady_call_s"]),
            }
            report["results"].append(
                {"size": [height, width], "pytorch": pytorch, "onnxruntime": onnx, "ratios": ratios}
            )
    report["load_end"] = load()
    markdown = render_markdown(report)
    stem = args.output_dir / f"{device_slug(report['environment']['device'])}_{args.tag}"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)
    print(f"Wrote {stem}.json and {stem}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
