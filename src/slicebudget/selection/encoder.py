"""A small convolutional autoencoder, trained for a few seconds on the slices it then describes.

No pretrained weights can be downloaded, and weights trained on phantoms would describe phantoms,
so the encoder learns on the data being selected from: a volume's slices (per-volume selection) or
the pooled slices of a dataset (dataset-level selection). Its bottleneck is the feature vector.
Training is seeded (torch's RNG is forked, so the caller's RNG state is untouched) and runs on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicebudget.errors import UserError


def _build_autoencoder(size: int, n_features: int, channels: tuple[int, int, int]):
    import torch.nn as nn

    c1, c2, c3 = channels
    side = size // 8
    encoder = nn.Sequential(
        nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(c3 * side * side, n_features),
    )
    decoder = nn.Sequential(
        nn.Linear(n_features, c3 * side * side), nn.ReLU(), nn.Unflatten(1, (c3, side, side)),
        nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),
    )
    return encoder, decoder


@dataclass(eq=False)
class ConvEncoderFeatures:
    """Bottleneck features of a conv autoencoder trained on the thumbnails (``steps`` Adam steps)."""

    name = "encoder"
    thumbnail_size: int = 64
    n_features: int = 32
    steps: int = 60
    batch_size: int = 32
    learning_rate: float = 3e-3
    n_threads: int = 1

    def fit_transform(self, thumbnails: np.ndarray, seed: int) -> np.ndarray:
        import torch

        size = int(self.thumbnail_size)
        if size < 16 or size % 8:
            raise UserError(f"encoder thumbnail_size must be a multiple of 8 and at least 16, got {size}")
        data = torch.from_numpy(np.ascontiguousarray(thumbnails, dtype=np.float32)[:, None])
        if data.shape[-2:] != (size, size):
            raise ValueError(f"thumbnails must be {size}x{size}, got {tuple(data.shape[-2:])}")
        rng = np.random.default_rng(int(seed))
        batch = min(int(self.batch_size), len(data))
        # The network is tiny, so thread start-up and (on a shared machine) oversubscription cost far
        # more than they save: one intra-op thread trained ~10x faster than two under load. One
        # thread also makes the result independent of the machine's core count. Restored after.
        threads = torch.get_num_threads()
        torch.set_num_threads(int(self.n_threads))
        try:
            features = self._train_and_encode(torch, data, rng, seed, size, batch)
        finally:
            torch.set_num_threads(threads)
        return features

    def _train_and_encode(self, torch, data, rng: np.random.Generator, seed: int, size: int, batch: int) -> np.ndarray:
        from slicebudget.training.fit import Phase, fit

        losses: list[float] = []

        def reconstruction_loss(step):
            x = data[torch.from_numpy(rng.choice(len(data), size=batch, replace=False))]
            return torch.nn.functional.mse_loss(decoder(encoder(x)), x)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            encoder, decoder = _build_autoencoder(size, int(self.n_features), (16, 32, 32))
            params = [*encoder.parameters(), *decoder.parameters()]
            phase = Phase(int(self.steps), lambda: (torch.optim.Adam(params, lr=float(self.learning_rate)), None))
            fit([phase], reconstruction_loss, callbacks=[lambda step, loss: losses.append(float(loss.detach()))])
            self.final_loss_ = losses[-1] if losses else float("nan")
            encoder.eval()
            with torch.no_grad():
                features = torch.cat([encoder(chunk) for chunk in torch.split(data, 1024)])
        self.encoder_ = encoder
        return features.numpy().astype(np.float32)
