"""Tokenizers that work offline and ship with the checkpoint.

``WordHashTokenizer`` (tiny/small): words get one token each (a fixed word list, then a stable
crc32 hash bucket for unknown words), the numbers 0..255 (the discretised state) one token each,
and any other character its UTF-8 bytes (so every string tokenizes: superscripts such as ``³``
and circled digits such as ``①`` are digits to ``str.isdigit`` but not decimal numbers, so they
become bytes; lone surrogates are encoded with ``surrogatepass``).  A PI0.5 prompt with 14 state
dims is ~30 tokens.

``HFTokenizer`` (pi05_base): a local ``tokenizer.json`` (e.g. PaliGemma's), loaded with the
``tokenizers`` library and copied into the checkpoint.  ``SentencePieceTokenizer``: the same
from a SentencePiece ``tokenizer.model`` (openpi's ``paligemma_tokenizer.model``), through the
``sentencepiece`` library.  Nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import shutil
import zlib
from pathlib import Path
from typing import Any, Protocol

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPEC_FILE = 'tokenizer_spec.json'
_BYTE0 = 3  # 256 byte tokens
_NUM0 = _BYTE0 + 256  # 256 number tokens "0".."255"
_WORD0 = _NUM0 + 256  # fixed words, then hash buckets
_SPLIT = re.compile(r'[A-Za-z]+|\d+|[^\sA-Za-z\d]')

# Words that should never collide (robot tasks, colours, camera cues, template words).
DEFAULT_WORDS = tuple('''
task state action a an the and or of to in on at into onto from with without by for up down
left right both top bottom front back side near far above below behind next middle center
pick place put lift lower move push pull open close grasp grab hold release drop stack insert
rotate turn flip pour slide reach press wipe fold hand over transfer handover go stop wait
cube block ball box cup bowl plate bottle can lid drawer door peg hole table bin tray object
red green blue yellow orange purple black white gray grey pink brown
hot cold warm cool heated frozen temperature thermal heat
small big large tall short first second third one two three
camera wrist l515 depth gripper arm robot
'''.split())


class Tokenizer(Protocol):
    pad_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def save(self, directory: Path) -> dict[str, Any]: ...


class WordHashTokenizer:
    kind = 'word_hash'

    def __init__(self, vocab_size: int, words: tuple[str, ...] | list[str] = DEFAULT_WORDS):
        self.words = tuple(dict.fromkeys(w.lower() for w in words))
        self.vocab_size = int(vocab_size)
        self.pad_id = PAD_ID
        self._word_ids = {w: _WORD0 + i for i, w in enumerate(self.words)}
        self._hash0 = _WORD0 + len(self.words)
        self._buckets = self.vocab_size - self._hash0
        if self._buckets < 64:
            raise ValueError(f'vocab_size={vocab_size} is too small for the word-hash '
                             f'tokenizer: needs >= {self._hash0 + 64}')

    def _word(self, w: str) -> int:
        w = w.lower()
        if w in self._word_ids:
            return self._word_ids[w]
        return self._hash0 + zlib.crc32(w.encode()) % self._buckets

    def encode(self, text: str) -> list[int]:
        ids = [BOS_ID]
        for piece in _SPLIT.findall(text):
            if piece.isdecimal():  # only Unicode Nd digits: int() accepts every one of them
                if len(piece) <= 3 and int(piece) <= 255:
                    ids.append(_NUM0 + int(piece))
                else:
                    ids.extend(_NUM0 + int(d) for d in piece)
            elif piece.isascii() and piece.isalpha():
                ids.append(self._word(piece))
            else:
                ids.extend(_BYTE0 + b for b in piece.encode('utf-8', 'surrogatepass'))
        return ids

    def save(self, directory: Path) -> dict[str, Any]:
        return {'type': self.kind, 'vocab_size': self.vocab_size, 'words': list(self.words)}


class HFTokenizer:
    """A local ``tokenizers`` JSON file; BOS is prepended as openpi does for PaliGemma."""

    kind = 'hf'
    FILE = 'tokenizer_hf.json'

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer as _Tok

        p = Path(path)
        if p.is_dir():
            p = p / 'tokenizer.json'
        if not p.is_file():
            raise ValueError(f'tokenizer_path={str(path)!r}: no tokenizer.json there (a local '
                             'file is needed; nothing is downloaded)')
        self.path = p
        self._tok = _Tok.from_file(str(p))
        self.vocab_size = self._tok.get_vocab_size()
        pad = self._tok.token_to_id('<pad>')
        self.pad_id = 0 if pad is None else pad
        self.bos_id = self._tok.token_to_id('<bos>')

    def encode(self, text: str) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return ([self.bos_id] if self.bos_id is not None else []) + list(ids)

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.path, directory / self.FILE)
        return {'type': self.kind, 'file': self.FILE}


class SentencePieceTokenizer:
    """A local SentencePiece ``.model`` file; BOS is prepended as openpi does for PaliGemma."""

    kind = 'sentencepiece'
    FILE = 'tokenizer_spm.model'

    def __init__(self, path: str | Path):
        import sentencepiece

        p = Path(path)
        if not p.is_file():
            raise ValueError(f'tokenizer_path={str(path)!r}: no SentencePiece model there (a '
                             'local file is needed; nothing is downloaded)')
        self.path = p
        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(p))
        self.vocab_size = self._sp.get_piece_size()
        self.pad_id = max(self._sp.pad_id(), 0)
        self.bos_id = self._sp.bos_id() if self._sp.bos_id() >= 0 else None

    def encode(self, text: str) -> list[int]:
        ids = self._sp.encode(text)
        return ([self.bos_id] if self.bos_id is not None else []) + list(ids)

    def save(self, directory: Path) -> dict[str, Any]:
        shutil.copyfile(self.path, directory / self.FILE)
        return {'type': self.kind, 'file': self.FILE}



def build_tokenizer(tokenizer_type: str, vocab_size: int, tokenizer_path: str | None = None,
                    spec: dict[str, Any] | None = None, directory: Path | None = None
                    ) -> Tokenizer:
    """From a config (``spec`` None) or from a checkpoint's ``tokenizer.json`` spec. With
    ``tokenizer_type`` 'hf', a path ending in ``.model`` is a SentencePiece model."""
    if spec is not None:
        if spec.get('type') == 'word_hash':
            return WordHashTokenizer(spec['vocab_size'], spec.get('words', DEFAULT_WORDS))
        if spec.get('type') == 'hf':
            return HFTokenizer(Path(directory) / spec['file'])
        if spec.get('type') == 'sentencepiece':
            return SentencePieceTokenizer(Path(directory) / spec['file'])
        raise ValueError(f'tokenizer spec has unknown type {spec.get("type")!r}')
    if tokenizer_type == 'word_hash':
        return WordHashTokenizer(vocab_size)
    if tokenizer_path is not None and str(tokenizer_path).endswith('.model'):
        return SentencePieceTokenizer(tokenizer_path)
    return HFTokenizer(tokenizer_path)


def save_tokenizer(tok: Tokenizer, directory: Path) -> None:
    spec = tok.save(directory)
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=1))


def load_tokenizer(directory: Path) -> Tokenizer:
    spec = json.loads((directory / SPEC_FILE).read_text())
    return build_tokenizer(spec.get('type', ''), 0, spec=spec, directory=directory)
