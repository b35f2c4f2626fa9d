"""Deterministic reply texts: English-like words, one delta (one "token") per word."""

from __future__ import annotations

import random

_WORDS = (
    "the of and to in is that it for as with was on be by this are from at or an which not have "
    "tide moon water sea level coast energy force pull earth ocean basin current wave height flow "
    "river marsh sediment shore measure model record study change rise fall daily cycle season "
    "spring neap lunar solar orbit gravity mass distance bulge rotation hour minute station gauge "
    "data signal noise trend average range peak trough harbour channel estuary delta bay inlet "
    "would could should might because however although therefore between during against across"
).split()


def deltas(n: int, seed: int = 6) -> list[str]:
    """``n`` deltas: words with their trailing space, sentences of 8-20 words, paragraphs of
    3-6 sentences separated by a blank line. About 5.5 characters a delta."""
    rng = random.Random(seed)
    out: list[str] = []
    sentence = paragraph = 0
    sentence_len, paragraph_len = rng.randint(8, 20), rng.randint(3, 6)
    while len(out) < n:
        word = rng.choice(_WORDS)
        if sentence == 0:
            word = word.capitalize()
        sentence += 1
        if sentence < sentence_len:
            out.append(word + " ")
            continue
        sentence, paragraph = 0, paragraph + 1
        sentence_len = rng.randint(8, 20)
        if paragraph < paragraph_len:
            out.append(word + ". ")
        else:
            out.append(word + ".\n\n")
            paragraph, paragraph_len = 0, rng.randint(3, 6)
    return out


def sized(n_bytes: int, delta_size: int, seed: int = 6) -> list[str]:
    """Deltas of about ``delta_size`` characters that add up to ``n_bytes`` (ASCII)."""
    words = "".join(deltas(n_bytes // 5 + 100, seed))[:n_bytes]
    return [words[i:i + delta_size] for i in range(0, len(words), delta_size)]
