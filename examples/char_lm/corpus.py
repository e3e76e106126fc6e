"""The example's data: public-domain texts, a character vocabulary and window datasets.

The texts live in `data/*.txt`, one work per file. Each file starts with one header line
beginning with `#` that names the work, its author and year and states that it is in the
public domain; the header is metadata and is not trained on.

Every document is split at a line boundary into a training head and a held-out tail
(`eval_fraction` of its characters), so the evaluation text samples every work rather
than being one work the model never saw. Training items are all windows of `block_size`
characters at a stride (1 by default: every offset, the usual random-crop recipe for
character models); evaluation items are non-overlapping windows of the held-out text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

__all__ = [
    "DEFAULT_DATA_DIR",
    "CharVocab",
    "CharWindowDataset",
    "Document",
    "build_datasets",
    "load_documents",
    "split_documents",
]

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"
"""The texts shipped with the example."""

HEADER_PREFIX = "#"
DOCUMENT_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Document:
    """One work: its header line (without the `#`) and its text."""

    header: str
    text: str


def load_documents(data_dir: str | Path = DEFAULT_DATA_DIR) -> list[Document]:
    """Read every `*.txt` file of `data_dir`, in file-name order.

    Raises:
        FileNotFoundError: If `data_dir` holds no `.txt` file.
        ValueError: If a file does not start with a `#` header line or has no text.
    """
    paths = sorted(Path(data_dir).glob("*.txt"))
    if not paths:
        raise FileNotFoundError(
            f"No .txt files in {str(data_dir)!r}; pass a folder of UTF-8 text files, "
            f"each starting with a '#' header line (see {DEFAULT_DATA_DIR})."
        )
    return [_read_document(path) for path in paths]


def _read_document(path: Path) -> Document:
    header, _, body = path.read_text(encoding="utf-8").partition("\n")
    if not header.startswith(HEADER_PREFIX):
        raise ValueError(
            f"{path} must start with a header line beginning with {HEADER_PREFIX!r} that "
            f"names the work, author and year; it starts with {header[:40]!r}."
        )
    text = body.strip("\n")
    if not text:
        raise ValueError(f"{path} has a header but no text; add the work's text below it.")
    return Document(header=header.lstrip(HEADER_PREFIX).strip(), text=text)


def split_documents(documents: Sequence[Document], eval_fraction: float) -> tuple[str, str]:
    """Cut each document into a training head and a held-out tail and join each side.

    The cut is moved back to the nearest line break so that no line is split between
    the two sides.

    Args:
        documents: The works, as returned by `load_documents`.
        eval_fraction: Share of each document's characters held out, in (0, 1).

    Returns:
        `(train_text, eval_text)`, documents separated by a blank line.

    Raises:
        ValueError: If `eval_fraction` is outside (0, 1).
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(
            f"eval_fraction must be strictly between 0 and 1, got {eval_fraction!r}; "
            "0.1 holds out the last tenth of every work."
        )
    heads, tails = [], []
    for document in documents:
        text = document.text
        cut = round(len(text) * (1.0 - eval_fraction))
        line_break = text.rfind("\n", 0, cut)
        cut = line_break + 1 if line_break > 0 else cut
        heads.append(text[:cut].strip("\n"))
        tails.append(text[cut:].strip("\n"))
    return (
        DOCUMENT_SEPARATOR.join(h for h in heads if h),
        DOCUMENT_SEPARATOR.join(t for t in tails if t),
    )


class CharVocab:
    """A bijection between the characters of a text and the ids `0..len(vocab) - 1`.

    Args:
        chars: The distinct characters, in id order.

    Raises:
        ValueError: If `chars` is empty, repeats a character or holds a longer string.
    """

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars: list[str] = list(chars)
        if not self.chars:
            raise ValueError("CharVocab needs at least one character; got none.")
        bad = [c for c in self.chars if len(c) != 1]
        if bad:
            raise ValueError(f"CharVocab entries must be single characters, got {bad[:5]!r}.")
        self._ids = {c: i for i, c in enumerate(self.chars)}
        if len(self._ids) != len(self.chars):
            raise ValueError("CharVocab characters must be distinct; remove the duplicates.")

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Build the vocabulary of `text`, characters sorted by code point."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Map `text` to ids.

        Raises:
            ValueError: If `text` holds a character outside the vocabulary.
        """
        unknown = sorted(set(text) - self._ids.keys())
        if unknown:
            raise ValueError(
                f"Characters {unknown[:10]!r} are not in the vocabulary of {len(self)} "
                "characters built from the training text; use only characters that appear "
                "in it."
            )
        return [self._ids[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Map ids back to text.

        Raises:
            ValueError: If an id is outside `0..len(self) - 1`.
        """
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(self)]
        if bad:
            raise ValueError(f"Ids {bad[:10]} are outside the vocabulary range 0..{len(self) - 1}.")
        return "".join(self.chars[i] for i in ids)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (`{"chars": [...]}`), readable by `load`."""
        Path(path).write_text(json.dumps({"chars": self.chars}, ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> CharVocab:
        """Read a vocabulary written by `save`."""
        return cls(json.loads(Path(path).read_text())["chars"])


class CharWindowDataset(Dataset):
    """Fixed-length windows over an encoded text, as Trainer-ready examples.

    Item `i` is the window starting at `i * stride`: `{"input_ids": ids, "labels": ids}`
    (two separate long tensors of length `block_size`; the model shifts the labels).
    A tail shorter than `block_size` is not used.

    Args:
        ids: The encoded text, a 1-D integer tensor.
        block_size: Characters per window.
        stride: Distance between the starts of consecutive windows.

    Raises:
        ValueError: If `ids` is shorter than one window or `block_size`/`stride` < 1.
    """

    def __init__(self, ids: torch.Tensor, block_size: int, stride: int = 1) -> None:
        if block_size < 1 or stride < 1:
            raise ValueError(
                f"block_size and stride must be >= 1, got block_size={block_size}, stride={stride}."
            )
        if ids.dim() != 1 or ids.numel() < block_size:
            raise ValueError(
                f"The text has {ids.numel()} characters, fewer than one window of "
                f"block_size={block_size}; use a smaller block_size or more text."
            )
        self.ids = ids.long()
        self.block_size = block_size
        self.stride = stride

    def __len__(self) -> int:
        return (self.ids.numel() - self.block_size) // self.stride + 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"Window index {index} is out of range for {len(self)} windows.")
        start = (index % len(self)) * self.stride
        window = self.ids[start : start + self.block_size]
        # Copies, not views: a collator that edits labels in place must not corrupt the
        # corpus tensor or the input ids.
        return {"input_ids": window.clone(), "labels": window.clone()}


def build_datasets(
    block_size: int,
    data_dir: str | Path = DEFAULT_DATA_DIR,
    eval_fraction: float = 0.1,
    train_stride: int = 1,
) -> tuple[CharVocab, CharWindowDataset, CharWindowDataset]:
    """Load the texts and return `(vocab, train_dataset, eval_dataset)`.

    The vocabulary covers the training and the held-out text, so evaluation never meets
    an unknown character. Evaluation windows do not overlap (stride = `block_size`).
    """
    train_text, eval_text = split_documents(load_documents(data_dir), eval_fraction)
    vocab = CharVocab.from_text(train_text + eval_text)
    train_ids = torch.tensor(vocab.encode(train_text), dtype=torch.long)
    eval_ids = torch.tensor(vocab.encode(eval_text), dtype=torch.long)
    train = CharWindowDataset(train_ids, block_size, stride=train_stride)
    evaluation = CharWindowDataset(eval_ids, block_size, stride=block_size)
    return vocab, train, evaluation
