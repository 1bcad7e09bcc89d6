"""The argparse front end of ``needle train`` (and ``python -m needle.training``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .config import OPTIMIZERS, TrainConfig, TrainConfigError
from .tasks import TASKS

__all__ = ["add_train_parser", "build_parser", "main", "run"]


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    lines = [f"  {t.name:<17} {t.description}" for t in TASKS.values()]
    parser.description = "Train a model and report test metrics. Tasks:\n" + "\n".join(lines)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("task", choices=sorted(TASKS), help="what to train")
    parser.add_argument(
        "--backend",
        default=None,
        help="array backend (default: NEEDLE_BACKEND, else the best CPU one)",
    )
    parser.add_argument("--epochs", type=int, help="passes over the training data")
    parser.add_argument("--batch-size", type=int, dest="batch_size")
    parser.add_argument(
        "--lr", type=float, help="initial learning rate (cosine decay to 5%% by the last epoch)"
    )
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS))
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, dest="weight_decay")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        dest="data_dir",
        default=None,
        help="folder holding the data set (else NEEDLE_DATA, then data/)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="save model, optimizer, epoch and RNG state here after each epoch",
    )
    parser.add_argument("--resume", default=None, help="continue from this checkpoint")
    parser.add_argument(
        "--metrics-json",
        dest="metrics_json",
        default=None,
        help="write final metrics as JSON to this file",
    )
    parser.add_argument(
        "--limit-batches",
        dest="limit_batches",
        type=int,
        default=None,
        help="at most this many batches per pass (for quick runs and tests)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replay each training step with needle.compile (the default where the task "
        "allows it: classification without --clip, one process); --no-compile runs eagerly",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the ranks of an MPI launcher (mpiexec -n 2 needle train "
        "TASK --distributed); --batch-size stays the global batch; see docs/distributed.md",
    )
    for name in ("embedding_size", "hidden_size", "num_layers", "bptt"):
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=int,
            help="language models: " + name.replace("_", " "),
        )
    parser.add_argument("--clip", type=float, help="language models: gradient-norm clip")
    parser.add_argument(
        "--dropout", type=float, help="Transformer: dropout in the layers (training only)"
    )
    parser.set_defaults(func=run, handler=run)
    return parser


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train`` on ``subparsers`` (from ``ArgumentParser.add_subparsers()``).

    The parsed namespace's ``func`` (also ``handler``) is :func:`run`, which returns
    the exit status.
    """
    return _configure(subparsers.add_parser("train", help="train a model on a real data set"))


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser for ``python -m needle.training``."""
    return _configure(argparse.ArgumentParser(prog="needle train"))


def run(args: argparse.Namespace) -> int:
    """Train as the parsed options say; print and optionally save the final metrics.

    Returns:
        0 on success; 2, with the reason on stderr, when an option has an invalid
        value (other errors raise).
    """
    from .trainer import train

    try:
        config = TrainConfig.from_namespace(args)
    except TrainConfigError as e:
        print(f"needle train: error: {e}", file=sys.stderr)
        return 2
    if getattr(args, "distributed", False):
        from ..distributed._train import train_distributed

        train_distributed(config)
    else:
        train(config)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m needle.training``."""
    return run(build_parser().parse_args(argv))
