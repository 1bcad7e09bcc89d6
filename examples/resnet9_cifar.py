"""ResNet9 (hw4) on CIFAR-10, or on random CIFAR-shaped data with --synthetic.

CIFAR-10 is looked up under NEEDLE_DATA and data/, and downloaded (163 MB, MD5-checked)
where there is a network. Run: python examples/resnet9_cifar.py --synthetic
"""

from __future__ import annotations

import argparse

import needle as ndl
import numpy as np
from needle import data, models, nn, optim


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--synthetic", action="store_true", help="random images, no download")
    parser.add_argument("--batches", type=int, default=5, help="training batches to run")
    args = parser.parse_args()
    ndl.manual_seed(0)
    if args.synthetic:
        rng = np.random.default_rng(0)
        dataset: data.Dataset = data.NDArrayDataset(
            rng.random((256, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 256)
        )
    else:
        dataset = data.CIFAR10Dataset(
            train=True, transforms=[data.RandomFlipHorizontal(), data.RandomCrop(4)]
        )
    loader = data.DataLoader(dataset, batch_size=64, shuffle=True)
    model = models.ResNet9()
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    loss_fn = nn.SoftmaxLoss()
    for step, (x, y) in enumerate(loader):
        if step == args.batches:
            break
        loss = loss_fn(model(x), y)
        opt.reset_grad()
        loss.backward()
        opt.step()
        print(f"step {step + 1}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
