"""Fine-tune hook for the digits example (``digits_finetune.py:finetune``): a few epochs on
the training split that make_digits.py trained on (digits_train.npz: sklearn's 8x8 digits
without the 360 held-out eval images, pixel values 0-16), to recover the accuracy that
structured pruning costs.  Model in, model out."""

from pathlib import Path

import numpy as np
import torch
from torch import nn

EPOCHS = 8
BATCH = 64
LR = 2e-3
SEED = 0


def finetune(model: nn.Module) -> nn.Module:
    data = np.load(Path(__file__).with_name("digits_train.npz"))
    x = torch.from_numpy(data["images"].astype(np.float32) / 16.0)
    y = torch.from_numpy(data["labels"].astype(np.int64))
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()
