"""Lightning: find the max LR on your LightningModule, then train with the 1cycle callback.

    python examples/quickstart_lightning.py
"""

import lightning.pytorch as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from disciplined.integrations.lightning import OneCycle, find_lr

digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16
y = torch.tensor(digits.target)
train = DataLoader(TensorDataset(x[:1400], y[:1400]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[1400:], y[1400:]), batch_size=256)


class Digits(L.LightningModule):
    def __init__(self, lr: float = 1e-3):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=1e-4)


torch.manual_seed(0)
module = Digits()
test = find_lr(module, train_dataloaders=train, val_dataloaders=val)  # sets module.lr
print(f"max LR {module.lr:.3g}: {test.suggestion.reason}")

trainer = L.Trainer(max_epochs=10, callbacks=[OneCycle(max_lr=module.lr)], accelerator="auto",
                    logger=False, enable_checkpointing=False, enable_progress_bar=False)
trainer.fit(module, train, val)
print(f"validation accuracy {trainer.callback_metrics['val_acc']:.4f}")
