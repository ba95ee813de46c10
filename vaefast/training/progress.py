"""The progress bar of fit: tqdm if installed, else a minimal one."""

import sys
import time
from typing import Optional, Protocol


class Bar(Protocol):
    """What fit uses of a progress bar (tqdm's names)."""

    def update(self, k: int) -> object: ...
    def set_postfix_str(self, s: str) -> None: ...
    def close(self) -> None: ...


class _TinyBar:
    """A minimal stderr progress bar for when tqdm is not installed."""

    def __init__(self, total: Optional[int], desc: str) -> None:
        self.total, self.desc, self.n, self.postfix = total, desc, 0, ""
        self._last = 0.0

    def update(self, k: int) -> None:
        self.n += k
        now = time.perf_counter()
        if now - self._last > 0.1 or (self.total and self.n >= self.total):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if not self.total:  # a stream of unknown length: rows so far
            sys.stderr.write(f"\r{self.desc} {self.n} rows {self.postfix}")
        else:
            width = 30
            filled = min(width, int(width * self.n / self.total))
            sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                             f"{self.n}/{self.total} {self.postfix}")
        sys.stderr.flush()

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def close(self) -> None:
        self._draw()  # the last state, which update may have skipped as too soon
        sys.stderr.write("\n")
        sys.stderr.flush()


def make_bar(progress: Optional[bool], total: Optional[int], desc: str) -> Optional[Bar]:
    if progress is None:
        progress = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return _TinyBar(total, desc)
    bar: Bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr)
    return bar

