"""What tagging commands tell the person running them: a progress bar while they work, one line at the end.

The bar (tqdm, on stderr) counts sentences and shows words per second; it appears when stderr is a
terminal or ``--progress`` is given, never with ``--quiet``. The summary line (documents, sentences,
tokens, words per second, where the output went) is printed at the end unless ``--quiet``:

    embedcache predict: 3 documents, 5 sentences, 61 tokens in 0.4 s (152 words/s) -> tagged.conll
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from types import TracebackType

from tqdm.auto import tqdm

from embedcache.data.sentence import TaggedSentence


class Feedback:
    """Counts what a command tagged, drives its progress bar and writes its summary.

    Args:
        command: ``"predict"`` or ``"evaluate"``, for the summary line.
        bar: show the progress bar.
        quiet: no summary line.

    Example:
        >>> with Feedback("predict", bar=True, quiet=False) as feedback:  # doctest: +SKIP
        ...     predict(tagger, texts, on_batch=feedback.batch_tagged)
        ...     feedback.documents += len(texts)
        ...     feedback.summarize("stdout")
    """

    def __init__(self, command: str, *, bar: bool, quiet: bool) -> None:
        self.command = command
        self.quiet = quiet
        self.documents = 0
        self.sentences = 0
        self.tokens = 0
        self.started = time.perf_counter()
        # Updating a bar that is not on a terminal writes a line per update: a few a minute are enough.
        interval = 0.1 if sys.stderr.isatty() else 5.0
        self.bar = tqdm(
            unit="sent", file=sys.stderr, disable=not bar, mininterval=interval, dynamic_ncols=True
        )

    def __enter__(self) -> Feedback:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.bar.close()

    def batch_tagged(self, batch: Sequence[TaggedSentence]) -> None:
        """Count a tagged batch (empty sentences are no sentences) and move the bar."""
        tagged = [sentence for sentence in batch if len(sentence)]
        self.sentences += len(tagged)
        self.tokens += sum(len(sentence) for sentence in tagged)
        self.bar.set_postfix_str(f"{self.words_per_second():,.0f} words/s", refresh=False)
        self.bar.update(len(tagged))

    def words_per_second(self) -> float:
        return self.tokens / max(time.perf_counter() - self.started, 1e-9)

    def summarize(self, output: str | None = None) -> None:
        """The closing line on stderr, unless quiet; ``output``: where the results went, if anywhere."""
        self.bar.close()  # the summary goes below a finished bar, not through it
        if self.quiet:
            return
        seconds = time.perf_counter() - self.started
        counts = [_count(self.sentences, "sentence"), _count(self.tokens, "token")]
        if self.command == "predict":
            counts.insert(0, _count(self.documents, "document"))
        line = (
            f"embedcache {self.command}: {', '.join(counts)} in {seconds:.1f} s "
            f"({self.words_per_second():,.0f} words/s)"
        )
        print(line + ("" if output is None else f" -> {output}"), file=sys.stderr)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
