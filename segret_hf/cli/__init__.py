"""The command-line layer: argument dataclasses parsed with `transformers.HfArgumentParser`, and `main`s.

Each command's options are a dataclass documented once, here or beside its command; `scripts/*.py` only call
the `main` of their command (also installed as `segret-evaluate`, `segret-convert`). `segret-train` and
`segret-prepare-dataset` live with their work (`segret_hf.training.run`, `segret_hf.data.preparation`) and
share :class:`~segret_hf.cli.dataset_arguments.DatasetArguments` and :func:`~segret_hf.cli.errors.report_error`.
Library functions never take these dataclasses: the `main`s turn them into plain values.
"""
