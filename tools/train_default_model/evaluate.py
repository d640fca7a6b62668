"""Held-out perplexity with llama.cpp's method, so it compares with the engine's.

llama.cpp's `llama-perplexity` (and `bitnet.Model.perplexity`): cut the token
stream into chunks of n_ctx, put BOS at the start of each chunk, run the chunk,
and score only the second half: tokens first+1 .. n_ctx-1 with first = n_ctx/2.
"""

from __future__ import annotations

import math

import numpy as np
import torch


@torch.no_grad()
def perplexity(model, ids: np.ndarray, n_ctx: int, device: torch.device, bos: int | None = None) -> float:
    was_training = model.training
    model.eval()
    bos = model.cfg.bos_token_id if bos is None else bos
    n_chunks = len(ids) // n_ctx
    first = n_ctx // 2
    nll, count = 0.0, 0
    for c in range(n_chunks):
        chunk = torch.from_numpy(ids[c * n_ctx : (c + 1) * n_ctx].copy()).to(device)
        chunk[0] = bos
        logp = torch.log_softmax(model(chunk[None])[0].double(), dim=-1)
        targets = chunk[first + 1 :]
        nll -= logp[first : n_ctx - 1].gather(1, targets[:, None]).sum().item()
        count += len(targets)
    model.train(was_training)
    return math.exp(nll / count)
