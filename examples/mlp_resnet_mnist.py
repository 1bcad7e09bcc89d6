"""The course's MLPResNet (hw2) on MNIST with Adam, saved and reloaded with needle.save.

Run: python examples/mlp_resnet_mnist.py
"""

from __future__ import annotations

import needle as ndl
import numpy as np
from needle import data, models, nn, optim


def main() -> None:
    ndl.manual_seed(0)
    train = data.DataLoader(data.MNISTDataset(train=True), batch_size=128, shuffle=True)
    test = data.DataLoader(data.MNISTDataset(train=False), batch_size=1000)
    model = models.MLPResNet(784, hidden_dim=100, num_blocks=3)
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.SoftmaxLoss()
    for epoch in range(2):
        model.train()
        for x, y in train:
            loss = loss_fn(model(x), y)
            opt.reset_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}")
    model.save("mlp_resnet.safetensors")
    reloaded = models.MLPResNet(784, hidden_dim=100, num_blocks=3)
    reloaded.load("mlp_resnet.safetensors")
    reloaded.eval()
    correct = 0
    with ndl.no_grad():
        for x, y in test:
            correct += int((reloaded(x).numpy().argmax(1) == y.numpy()).sum())
    print(f"test accuracy of the reloaded model: {correct / 10_000:.4f}")
    np.testing.assert_array_equal(model.parameters()[0].numpy(), reloaded.parameters()[0].numpy())


if __name__ == "__main__":
    main()
