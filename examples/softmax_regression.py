"""Softmax regression on MNIST with plain SGD: the smallest complete needle training loop.

Run: python examples/softmax_regression.py  (about 92% test accuracy in a few seconds)
"""

from __future__ import annotations

import needle as ndl
import numpy as np
from needle import data, models, nn, optim


def accuracy(model: nn.Module, loader: data.DataLoader) -> float:
    correct = total = 0
    with ndl.no_grad():
        for x, y in loader:
            correct += int((model(x).numpy().argmax(1) == y.numpy()).sum())
            total += x.shape[0]
    return correct / total


def main() -> None:
    ndl.manual_seed(0)
    train = data.DataLoader(data.MNISTDataset(train=True), batch_size=100, shuffle=True)
    test = data.DataLoader(data.MNISTDataset(train=False), batch_size=1000)
    model = models.SoftmaxRegression(784, 10)
    opt = optim.SGD(model.parameters(), lr=0.2)
    loss_fn = nn.SoftmaxLoss()
    for epoch in range(2):
        losses = []
        for x, y in train:
            loss = loss_fn(model(x), y)
            opt.reset_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(
            f"epoch {epoch + 1}: train loss {np.mean(losses):.4f}, "
            f"test accuracy {accuracy(model, test):.4f}"
        )


if __name__ == "__main__":
    main()
