"""``needle train TASK``: train a model-zoo model on a real data set, with checkpoints.

``add_train_parser(subparsers)`` registers the ``train`` sub-command on the CLI's
argparse sub-parsers; ``python -m needle.training TASK ...`` runs it alone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from .checkpoint import epoch_seed, load_checkpoint, save_checkpoint
from .loops import EpochResult, classification_epoch, language_model_epoch, unigram_perplexity
from .tasks import TASKS, Task

__all__ = ["TASKS", "Task", "add_train_parser", "build_parser", "main", "run"]

_TUNABLE = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "embedding_size",
    "hidden_size",
    "num_layers",
    "bptt",
    "clip",
    "dropout",
)


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
    parser.add_argument("--optimizer", choices=["sgd", "adam"])
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


def _fill_defaults(args: argparse.Namespace, task: Task) -> None:
    base = {
        "weight_decay": 0.0,
        "embedding_size": 0,
        "hidden_size": 0,
        "num_layers": 1,
        "bptt": 35,
        "clip": 0.0,
        "dropout": 0.0,
    }
    for name in _TUNABLE:
        if getattr(args, name, None) is None:
            setattr(args, name, task.defaults.get(name, base.get(name)))


def _make_optimizer(args: argparse.Namespace, params: list[Any]) -> Any:
    from .. import optim

    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    return optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)


def _log(msg: str) -> None:
    print(msg, flush=True)


def run(args: argparse.Namespace) -> int:
    """Train ``args.task`` as the options say; print and optionally save final metrics.

    Returns:
        0 on success (errors raise).
    """
    import needle as ndl
    from needle import optim

    task = TASKS[args.task]
    _fill_defaults(args, task)
    device = ndl.device(args.backend) if args.backend else ndl.default_device()
    ndl.manual_seed(args.seed)
    if task.kind == "classification":
        data = _classification_data(args, task, device)
        vocab = 0
    else:
        data = _language_data(args)
        vocab = len(data["corpus"].dictionary)
    model = task.build_model(args, device, vocab)
    opt = _make_optimizer(args, model.parameters())
    # epoch e runs at lr_at(e): the first at --lr, the last (epochs - 1) at 5% of it
    schedule = optim.CosineLR(opt, total_steps=max(args.epochs - 1, 1), min_lr=0.05 * args.lr)
    start_epoch = 0
    if args.resume:
        ckpt = load_checkpoint(args.resume, task=task.name, model=model, opt=opt, device=device)
        start_epoch = int(ckpt["epoch"])
        _log(f"resumed from {args.resume} after epoch {start_epoch}")
    _log(
        f"{task.name}: backend {device}, {sum(p.size for p in model.parameters()):,} "
        f"parameters, epochs {args.epochs}, batch {args.batch_size}, {args.optimizer} "
        f"lr {args.lr}"
    )
    began = time.perf_counter()
    train: EpochResult | None = None
    for epoch in range(start_epoch, args.epochs):
        ndl.manual_seed(epoch_seed(args.seed, epoch))
        opt.lr = schedule.lr_at(epoch)  # a function of the epoch alone, so resume agrees
        train = _train_epoch(args, task, model, opt, data, device, epoch)
        _log(
            f"epoch {epoch + 1}/{args.epochs}: {_describe(task, train)} "
            f"({train.examples / train.seconds:.0f} samples/s, {train.seconds:.1f} s)"
        )
        if args.checkpoint:
            save_checkpoint(
                args.checkpoint,
                task=task.name,
                model=model,
                opt=opt,
                epoch=epoch + 1,
                seed=args.seed,
            )
    test = _evaluate(args, task, model, data, device, "test")
    seconds = time.perf_counter() - began
    metrics: dict[str, Any] = {
        "task": task.name,
        "backend": str(device),
        "epochs": args.epochs,
        "seconds": round(seconds, 2),
        "test_loss": test.loss,
    }
    if train is not None:
        metrics["train_loss"] = train.loss
    if task.kind == "classification":
        metrics["test_accuracy"] = test.accuracy
        if train is not None:
            metrics["train_accuracy"] = train.accuracy
    else:
        valid = _evaluate(args, task, model, data, device, "valid")
        corpus = data["corpus"]
        metrics.update(
            test_perplexity=test.perplexity,
            valid_perplexity=valid.perplexity,
            unigram_valid_perplexity=unigram_perplexity(corpus.train, corpus.valid, vocab),
            unigram_test_perplexity=unigram_perplexity(corpus.train, corpus.test, vocab),
        )
        if train is not None:
            metrics["train_perplexity"] = train.perplexity
    _log("final: " + ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))
    if args.metrics_json:
        Path(args.metrics_json).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _describe(task: Task, r: EpochResult) -> str:
    if task.kind == "classification":
        return f"loss {r.loss:.4f}, accuracy {r.accuracy:.4f}"
    return f"loss {r.loss:.4f}, perplexity {r.perplexity:.1f}"


def _classification_data(args: argparse.Namespace, task: Task, device: Any) -> dict[str, Any]:
    from .. import data

    train: data.Dataset
    test: data.Dataset
    if task.name.startswith("mnist"):
        train = data.MNISTDataset(root=args.data_dir, train=True)
        test = data.MNISTDataset(root=args.data_dir, train=False)
    else:
        augment = [data.RandomFlipHorizontal(), data.RandomCrop(4)]
        train = data.CIFAR10Dataset(args.data_dir, train=True, transforms=augment)
        test = data.CIFAR10Dataset(args.data_dir, train=False)
    return {
        "train": data.DataLoader(train, args.batch_size, shuffle=True, device=device),
        "test": data.DataLoader(test, 500, device=device),
    }


def _language_data(args: argparse.Namespace) -> dict[str, Any]:
    from .. import data

    corpus = data.Corpus(args.data_dir)
    return {
        "corpus": corpus,
        "train": data.batchify(corpus.train, args.batch_size),
        "valid": data.batchify(corpus.valid, args.batch_size),
        "test": data.batchify(corpus.test, args.batch_size),
    }


def _limited(loader: Any, limit: int | None) -> tuple[Any, int]:
    if limit is None:
        return loader, len(loader)
    return itertools.islice(loader, limit), min(limit, len(loader))


def _train_epoch(
    args: argparse.Namespace,
    task: Task,
    model: Any,
    opt: Any,
    data: dict[str, Any],
    device: Any,
    epoch: int,
) -> EpochResult:
    desc = f"epoch {epoch + 1}/{args.epochs}"
    if task.kind == "classification":
        batches, total = _limited(data["train"], args.limit_batches)
        return classification_epoch(
            model,
            batches,
            total,
            opt,
            input_shape=task.input_shape,
            desc=desc,
            progress=args.progress,
        )
    return language_model_epoch(
        model,
        data["train"],
        args.bptt,
        opt,
        clip=args.clip,
        limit=args.limit_batches,
        device=device,
        desc=desc,
        progress=args.progress,
    )


def _evaluate(
    args: argparse.Namespace, task: Task, model: Any, data: dict[str, Any], device: Any, split: str
) -> EpochResult:
    if task.kind == "classification":
        batches, total = _limited(data[split], args.limit_batches)
        return classification_epoch(
            model,
            batches,
            total,
            None,
            input_shape=task.input_shape,
            desc=split,
            progress=args.progress,
        )
    return language_model_epoch(
        model,
        data[split],
        args.bptt,
        None,
        limit=args.limit_batches,
        device=device,
        desc=split,
        progress=args.progress,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m needle.training``."""
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
