"""The argparse front end of ``needle train`` (and ``python -m needle.training``)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from ..serialization import _sigterm_as_interrupt
from .config import _FLOAT_MIN, _INT_MIN, OPTIMIZERS, TrainConfig, TrainConfigError
from .tasks import TASKS

__all__ = ["add_train_parser", "build_parser", "main", "run"]


def _int_option(name: str) -> Callable[[str], int]:
    """An argparse ``type`` for int option ``name`` with its range from ``TrainConfig``."""
    low = _INT_MIN[name]

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def _float_option(name: str, below: float | None = None) -> Callable[[str], float]:
    """An argparse ``type`` for float option ``name``: finite, in ``TrainConfig``'s range."""
    floor, inclusive = _FLOAT_MIN[name]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if value < floor or (value == floor and not inclusive):
            raise argparse.ArgumentTypeError(
                f"must be {'>=' if inclusive else '>'} {floor}, got {value}"
            )
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be < {below}, got {value}")
        return value

    parse.__name__ = "float"
    return parse


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
    parser.add_argument(
        "--epochs", type=_int_option("epochs"), help="passes over the training data"
    )
    parser.add_argument("--batch-size", type=_int_option("batch_size"), dest="batch_size")
    parser.add_argument(
        "--lr",
        type=_float_option("lr"),
        help="initial learning rate (cosine decay to 5%% by the last epoch)",
    )
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS))
    parser.add_argument(
        "--momentum", type=_float_option("momentum", below=1.0), default=0.9, help="SGD momentum"
    )
    parser.add_argument("--weight-decay", type=_float_option("weight_decay"), dest="weight_decay")
    parser.add_argument("--seed", type=_int_option("seed"), default=0)
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
        type=_int_option("limit_batches"),
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
            type=_int_option(name),
            help="language models: " + name.replace("_", " "),
        )
    parser.add_argument(
        "--clip", type=_float_option("clip"), help="language models: gradient-norm clip"
    )
    parser.add_argument(
        "--dropout",
        type=_float_option("dropout", below=1.0),
        help="Transformer: dropout in the layers (training only)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an error (also NEEDLE_DEBUG=1)",
    )
    parser.set_defaults(func=run, handler=run)

    def one_line_error(message: str) -> None:  # argparse's error, without the usage block
        print(f"{parser.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)

    parser.error = one_line_error  # type: ignore[method-assign,assignment]
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


def _debug(args: argparse.Namespace) -> bool:
    env = os.environ.get("NEEDLE_DEBUG", "").strip().lower()
    return bool(getattr(args, "debug", False)) or env in ("1", "true", "yes")


def run(args: argparse.Namespace) -> int:
    """Train as the parsed options say; print and optionally save the final metrics.

    Returns:
        0 on success; 2, with one line on stderr, when an option, a path or an input
        file is wrong (``--debug`` or ``NEEDLE_DEBUG=1`` adds the traceback); 130 on
        Ctrl-C or SIGTERM, after one line saying what was saved. Other errors raise.
    """
    from ..backends import BackendError
    from .trainer import TrainProgress, train

    progress = TrainProgress()
    try:
        config = TrainConfig.from_namespace(args)
        # A SIGTERM (``kill``, a scheduler's stop) ends the run like Ctrl-C does.
        with _sigterm_as_interrupt("SIGTERM"):
            if getattr(args, "distributed", False):
                from ..distributed._train import train_distributed

                train_distributed(config)
            else:
                train(config, progress=progress)
    except (TrainConfigError, BackendError, OSError) as e:
        if _debug(args):
            traceback.print_exc()
        print(f"needle train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _debug(args):
            traceback.print_exc()
        print(f"needle train: interrupted; {progress.saved_text()}", file=sys.stderr)
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m needle.training``."""
    return run(build_parser().parse_args(argv))
