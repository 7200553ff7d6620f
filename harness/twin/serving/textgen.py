"""Deterministic text: the property that makes silent corruption detectable.

At temperature 0 a real model is a function of its prompt; the twin reproduces that with a word stream
seeded by a hash of (model, prompt), so a canary prompt's golden answer can be learned once and every
later answer compared with it. A GPU with an uncorrectable ECC error does not fail loudly: it keeps
answering with status 200, but flipped bits in weights or activations change the words. The twin models
that by mixing the faulty GPU's identity into the seed from the moment the error is present.
"""
from __future__ import annotations

import hashlib
import random

# One whitespace-separated word is one token, both ways: prompts are counted in words and every
# generated token is one word, so a load generator controls prompt_tokens exactly.
WORDS: tuple[str, ...] = tuple("""
the of and to in is was that for on with as by at from his her they be this are have or an which one
had not but were all their there been has when who will more if no out so said what up its about into
than them can only other new some could time these two may then do first any my now such like our over
man me even most made after also did many before must through back years where much your way well down
should because each just those people how too little state good very make world still own see men work
long get here between both life being under never day same another know while last might us great old
year off come since against go came right used take three states himself few house use during without
again place around however home small found thought went say part once general high upon school every
don does got united left number course war until always away something fact though water less public put
think almost hand enough far took head yet government system better set told nothing night end why called
didn eyes find going look asked later knew point next program city business give group toward young days
let room president side social given present several order national possible rather second face per
among form important often things looked early white case john become large big need four within felt
along children saw best church ever least power development light thing seemed family interest want
members mind country area others done turned although open god service problem certain kind different
thus began door help sense whole matter perhaps itself york times law human line above name example
action company hands local show whether five history gave today either act feet across taken past quite
anything having seen death experience body word half really week field car words already themselves
information tell together college shall money period held keep sure probably free real seems behind
cannot miss political air question making office brought whose special heard major problems ago became
""".split())

_CORRUPT = ("\ufffd", "##", "0x7f", "NaN", "<unk>", "\u00e2\u0080", "!!", "inf")


def seed_of(model: str, prompt: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{model}\x00{prompt}".encode(), digest_size=8).digest(), "big")


class WordStream:
    """The tokens one request generates, in order; deterministic at temperature 0."""

    __slots__ = ("_rng", "_bad", "count")

    def __init__(self, model: str, prompt: str, temperature: float = 0.0):
        seed = seed_of(model, prompt)
        if temperature > 0:
            seed ^= random.getrandbits(64)
        self._rng = random.Random(seed)
        self._bad: random.Random | None = None
        self.count = 0

    def next(self, corrupted_by: str | None = None) -> str:
        """The next token. `corrupted_by` names a faulty GPU: its flipped bits change the words."""
        word = WORDS[self._rng.getrandbits(16) % len(WORDS)]
        if corrupted_by is not None:
            if self._bad is None:
                self._bad = random.Random(f"{corrupted_by}:{self.count}")
            if self._bad.random() < 0.5:
                word = WORDS[self._bad.getrandbits(16) % len(WORDS)] if self._bad.random() < 0.7 else \
                    _CORRUPT[self._bad.getrandbits(8) % len(_CORRUPT)]
        token = word if self.count == 0 else " " + word
        self.count += 1
        return token


def generate(model: str, prompt: str, tokens: int, corrupted_by: str | None = None) -> str:
    stream = WordStream(model, prompt)
    return "".join(stream.next(corrupted_by) for _ in range(tokens))


def count_tokens(text: str) -> int:
    return len(text.split())
