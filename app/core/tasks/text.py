"""The character-level language model task: next-character prediction on "hello", Hamlet or your text.

What this is not: the other tasks (synthetic.py) or the interface (base.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from app.core.tasks.base import MAX_SEQ_LEN, Batch, ParamSpec, Task, check_params, one_hot, seq_len_spec

MAX_TEXT_CHARS = 1_000_000  # longest custom text for char_lm
MAX_VOCAB = 512  # most distinct characters a char_lm text may have (keeps one-hot inputs small)
DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# -----------------------------------------------------------------------------
# 1. character-level language model


@cache
def load_corpus(name: str) -> str:
    """The text of a bundled corpus: "hello" or "shakespeare" (Hamlet, see data/SOURCE.md)."""
    if name == "hello":
        return "hello"
    if name == "shakespeare":
        return (DATA_DIR / "shakespeare.txt").read_text(encoding="utf-8")
    raise ValueError(f"unknown corpus {name!r}; the bundled corpora are 'hello' and 'shakespeare'")


_DISPLAY = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def display_char(ch: str) -> str:
    """A visible one-character label: space -> ␣, newline -> ⏎, tab -> ⇥, other controls -> \\xNN."""
    if ch in _DISPLAY:
        return _DISPLAY[ch]
    return ch if ch.isprintable() else f"\\x{ord(ch):02x}"


class CharLMTask(Task):
    name = "char_lm"
    title = "Character-level language model"
    shape = "many_to_many"
    doc = (
        "Predict the next character. The vocabulary is the text's distinct characters in order of "
        "first appearance (so 'hello' gives h, e, l, o, as in Karpathy's classic example). Input at "
        "step t is the one-hot of character t, the target is character t+1, and every step carries "
        "loss. Corpus 'hello' is the single sequence 'hell' -> 'ello' (T = 4); the other corpora give "
        "random windows of T+1 characters. Shows the hidden state tracking context: 'l' is followed "
        "by 'l' the first time and by 'o' the second, which only memory can tell apart. The baseline "
        "predicts the text's character frequencies: its loss is their entropy. Metric: bits per "
        "character (loss / ln 2)."
    )
    loss_kind = "xent"
    metric_name = "bpc"
    params = (
        ParamSpec(
            "corpus",
            "choice",
            "hello",
            choices=("hello", "shakespeare", "custom"),
            doc=(
                "'hello' (the 4-step classic), 'shakespeare' (Hamlet, 174 KB) or 'custom' (your text); "
                "without it, 'custom' when text is given, else 'hello'"
            ),
        ),
        ParamSpec(
            "text",
            "str",
            "",
            minimum=0,
            maximum=MAX_TEXT_CHARS,
            doc=(
                "your training text, for corpus 'custom' (or no corpus): up to 1,000,000 characters, "
                f"at least 2 and at most {MAX_VOCAB} distinct ones, and at least seq_len + 1 long"
            ),
        ),
        seq_len_spec(50, doc="window length T in characters (ignored by 'hello', which is always 4)"),
    )

    def __init__(self, corpus: str | None = None, text: str = "", seq_len: int = 50) -> None:
        corpus = self.resolve_corpus(corpus, text)
        check_params(type(self), {"corpus": corpus, "text": text, "seq_len": seq_len})
        if corpus == "custom":
            if len(set(text)) < 2:
                raise ValueError("char_lm.text must contain at least 2 distinct characters")
            if len(text) < seq_len + 1:
                raise ValueError(
                    f"char_lm.text must be at least seq_len + 1 = {seq_len + 1} characters long "
                    f"for windows of seq_len {seq_len}, got {len(text)}"
                )
        else:
            text = load_corpus(corpus)
            seq_len = 4 if corpus == "hello" else seq_len
        self.corpus = corpus
        self.text = text
        self.vocab: list[str] = list(dict.fromkeys(text))  # distinct characters, in order of first appearance
        if len(self.vocab) > MAX_VOCAB:
            raise ValueError(
                f"char_lm.text may have at most {MAX_VOCAB} distinct characters, got {len(self.vocab)}"
            )
        self._charset = frozenset(self.vocab)
        codes = torch.tensor([ord(ch) for ch in self.vocab])  # (V,) code points, in vocabulary order
        self._by_code = codes.argsort()  # (V,) vocabulary ids, sorted by code point
        self._sorted_codes = codes[self._by_code]  # (V,)
        self._labels = [display_char(ch) for ch in self.vocab]
        self.data = self.encode(text)  # (N,) int64, the whole text as ids
        self.input_size = self.output_size = len(self.vocab)
        self.seq_len = seq_len

    @staticmethod
    def resolve_corpus(corpus: str | None, text: str) -> str:
        """The corpus a run trains on: as given, else 'custom' with text and 'hello' without.

        ValueError if text is given with a bundled corpus, which would leave the text unread.
        """
        if corpus is None:
            return "custom" if text else "hello"
        if text and corpus != "custom":
            raise ValueError(
                f"char_lm.text is read only when char_lm.corpus is 'custom', but corpus is {corpus!r}: "
                "set corpus to 'custom' (or leave corpus out) to train on your text, or drop the text"
            )
        return corpus

    def encode(self, text: str) -> Tensor:
        """Character ids (len(text),) int64; ValueError naming any character outside the vocabulary."""
        unknown = sorted(set(text) - self._charset)
        if unknown:
            shown = ", ".join(repr(ch) for ch in unknown)
            raise ValueError(f"characters not in the vocabulary of this corpus: {shown}")
        if not text:
            return torch.zeros(0, dtype=torch.int64)
        # vectorised lookup, a megabyte of text in milliseconds: code point -> place in sorted vocab -> id
        raw = bytearray(text.encode("utf-32-le", "surrogatepass"))  # 4 bytes per character
        codes = torch.frombuffer(raw, dtype=torch.int32).to(torch.int64)  # (L,)
        return self._by_code[torch.searchsorted(self._sorted_codes, codes)]

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """The text spelled by a sequence of character ids."""
        seq = ids.tolist() if isinstance(ids, Tensor) else ids
        return "".join(self.vocab[i] for i in seq)

    @property
    def baseline_loss(self) -> float:
        counts = torch.bincount(self.data[1:], minlength=len(self.vocab)).to(torch.float64)  # (V,)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log()).sum())

    def _batch(self, chunk: Tensor, mask: Tensor) -> Batch:
        """chunk (B, T+1) ids -> inputs chunk[:, :-1] one-hot, targets chunk[:, 1:]."""
        x, y = chunk[:, :-1], chunk[:, 1:]  # (B, T), (B, T)
        tokens = [[self._labels[i] for i in row] for row in x.tolist()]
        return Batch(inputs=one_hot(x, len(self.vocab)), targets=y.clone(), mask=mask, tokens=tokens)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, T = batch_size, self.seq_len
        if self.corpus == "hello":
            chunk = self.data.expand(B, T + 1)  # (B, 5): the one sequence, repeated
        else:
            starts = torch.randint(0, len(self.data) - T, (B,), generator=generator)  # (B,)
            chunk = self.data[starts[:, None] + torch.arange(T + 1)]  # (B, T+1)
        return self._batch(chunk, torch.ones(B, T))

    def encode_text(self, text: str) -> Batch:
        """One sample reading all of `text`; targets are the next characters (none after the last)."""
        if not 1 <= len(text) <= MAX_SEQ_LEN:
            raise ValueError(f"text must be 1 to {MAX_SEQ_LEN} characters long, got {len(text)}")
        ids = self.encode(text)  # (L,)
        chunk = torch.cat([ids, ids.new_zeros(1)])[None]  # (1, L+1): a dummy target after the end
        mask = torch.ones(1, len(text))
        mask[0, -1] = 0.0  # the last character has no next character to predict
        return self._batch(chunk, mask)
