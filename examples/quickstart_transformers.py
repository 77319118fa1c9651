"""Hugging Face: the range test on a Trainer's model and data, then 1cycle as a callback.
The model is a tiny BERT built from a config (random weights, nothing downloaded).

    python examples/quickstart_transformers.py
"""

import torch
import transformers

from disciplined.integrations.transformers import OneCycleCallback, find_lr_for_trainer


class Tokens(torch.utils.data.Dataset):
    """Sequences of 12 token ids labelled by whether token 7 occurs."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 40, (n, 12), generator=g)
        self.labels = (self.ids == 7).any(1).long()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


torch.manual_seed(0)
config = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64,
                                 max_position_embeddings=16, num_labels=2)
args = transformers.TrainingArguments(output_dir="runs/hf-quickstart", num_train_epochs=3,
                                      per_device_train_batch_size=32, report_to=[],
                                      save_strategy="no", logging_strategy="no",
                                      disable_tqdm=True, seed=0)
trainer = transformers.Trainer(model=transformers.BertForSequenceClassification(config),
                               args=args, train_dataset=Tokens(2048, 0),
                               eval_dataset=Tokens(512, 1))

test = find_lr_for_trainer(trainer, end_lr=1.0)  # model and optimizer restored after it
print(f"max LR {test.max_lr:.3g}: {test.suggestion.reason}")
trainer.add_callback(OneCycleCallback(max_lr=test.max_lr))
trainer.train()
print(f"evaluation loss {trainer.evaluate()['eval_loss']:.4f}")
