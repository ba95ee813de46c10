"""The per-epoch record fit returns."""

from typing import Mapping

__all__ = ["History"]


class History:
    """Per-epoch training record returned by :meth:`VAE.fit`.

    Attributes
    ----------
    history : dict of str -> list of float
        ``loss`` (mean training negative ELBO, ``recon + beta·KL``),
        ``recon``, ``kl``, ``val_loss`` (NaN without validation data) and
        ``seconds`` (wall time of the epoch), one entry per epoch.
    epochs : list of int
        Global epoch numbers (they continue across calls to ``fit``).
    stopped_early : bool
        Whether early stopping or a callback ended training.
    """

    KEYS = ("loss", "recon", "kl", "val_loss", "seconds")

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {k: [] for k in self.KEYS}
        self.epochs: list[int] = []
        self.stopped_early = False

    def _append(self, epoch: int, logs: "Mapping[str, float]") -> None:
        self.epochs.append(epoch)
        for k in self.KEYS:
            self.history[k].append(float(logs[k]))

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        lines = ["epoch        loss       recon          kl    val_loss   seconds"]
        for i, e in enumerate(self.epochs):
            h = {k: self.history[k][i] for k in self.KEYS}
            lines.append(f"{e:5d} {h['loss']:11.4f} {h['recon']:11.4f} {h['kl']:11.4f} "
                         f"{h['val_loss']:11.4f} {h['seconds']:9.3f}")
        if self.stopped_early:
            lines.append("(stopped early)")
        return "\n".join(lines)

    __str__ = __repr__
