"""Plain PyTorch: your model, your optimizer, your data; one call runs the LR range test and
a 1cycle run at what it read.

    python examples/quickstart_pytorch.py
"""

import torch
from sklearn.datasets import load_digits
from torch import nn

from disciplined import fit_one_cycle
from disciplined.tasks import accuracy

# any data: here scikit-learn's digits (1797 8x8 images, shipped with the package)
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16
y = torch.tensor(digits.target)
train, val = (x[:1400], y[:1400]), (x[1400:], y[1400:])

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)

# max_lr=None: the range test runs first (model and optimizer restored after it)
history = fit_one_cycle(
    model, optimizer, train, epochs=10, loss_fn=nn.functional.cross_entropy, val_data=val,
    metric=accuracy, metric_name="accuracy", batch_size=32, seed=0,
)
print(f"max LR {history.meta['max_lr']:.3g}: {history.meta['max_lr_reason']}")
final = history.final
print(f"after {history.epochs:g} epochs: validation accuracy {final.val_metric:.4f}, "
      f"loss {final.val_loss:.4f}")
