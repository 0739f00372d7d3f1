"""The suggested 事项 of a case: keyword rules (the taxonomy's names and a synonym table)
until enough cases are confirmed, then a multinomial naive Bayes over hashed word features,
trained on the cases agents classified. numpy only (scikit-learn is not a dependency).

Pure: the texts come in cleaned and segmented (text.py), the features hashed; the model holds
feature numbers and weights, no word.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cases.loop.taxonomy import Taxonomy

SYNONYMS_FILE = Path(__file__).with_name("synonyms.json")


@dataclass(frozen=True)
class Guess:
    matter: str
    confidence: float  # 0..1


def load_synonyms(path: Path | None = None) -> dict[str, list[str]]:
    doc = json.loads((path or SYNONYMS_FILE).read_text(encoding="utf-8"))
    return {k: [str(w) for w in v] for k, v in doc.items() if not k.startswith("_")}


class KeywordRules:
    """A 事项 whose name or synonyms the text says: the one said most (longer words first,
    so "施工噪音" is not also two hits of "噪音"). None when the text names none."""

    def __init__(self, taxonomy: Taxonomy, synonyms: Mapping[str, Sequence[str]]):
        self.words: dict[str, list[str]] = {}
        for code in taxonomy.leaves():
            names = {taxonomy.matters[code].name, *synonyms.get(code, ())}
            self.words[code] = sorted(names, key=len, reverse=True)
        pairs = [(w, c) for c, ws in self.words.items() for w in ws]
        self._pairs = sorted(pairs, key=lambda p: len(p[0]), reverse=True)

    def vocabulary(self) -> set[str]:
        return {w for ws in self.words.values() for w in ws}

    def predict(self, text: str) -> Guess | None:
        hits: Counter[str] = Counter()
        rest = text
        for word, code in self._pairs:
            n = rest.count(word)
            if n:
                hits[code] += n * len(word)
                rest = rest.replace(word, " ")
        if not hits:
            return None
        (best, score), total = hits.most_common(1)[0], sum(hits.values())
        return Guess(best, round(min(0.9, score / total), 3))


class NaiveBayes:
    """Multinomial naive Bayes with Laplace smoothing over sparse hashed features."""

    def __init__(self, classes: list[str], feature_ids: npt.NDArray[np.int64],
                 log_prior: npt.NDArray[np.float64], log_like: npt.NDArray[np.float32]):
        self.classes = classes
        self.feature_ids = feature_ids  # sorted
        self.log_prior = log_prior
        self.log_like = log_like  # (classes, features)

    @classmethod
    def fit(cls, xs: Sequence[Mapping[int, int]], ys: Sequence[str], *, alpha: float = 0.3,
            min_df: int = 2, max_features: int = 200_000) -> NaiveBayes:
        if not xs or len(xs) != len(ys):
            raise ValueError("training needs as many labels as cases, and at least one")
        classes = sorted(set(ys))
        df: Counter[int] = Counter()
        for x in xs:
            df.update(x.keys())
        kept = [f for f, n in df.most_common(max_features) if n >= min_df] or list(df)
        ids = np.array(sorted(kept), dtype=np.int64)
        col = {int(f): i for i, f in enumerate(ids)}
        counts = np.zeros((len(classes), len(ids)), dtype=np.float64)
        row = {c: i for i, c in enumerate(classes)}
        docs = np.zeros(len(classes), dtype=np.float64)
        for x, y in zip(xs, ys, strict=True):
            r = row[y]
            docs[r] += 1
            for f, n in x.items():
                j = col.get(f)
                if j is not None:
                    counts[r, j] += n
        like = (counts + alpha) / (counts.sum(axis=1, keepdims=True) + alpha * len(ids))
        return cls(classes, ids, np.log(docs / docs.sum()), np.log(like).astype(np.float32))

    def scores(self, x: Mapping[int, int]) -> npt.NDArray[np.float64]:
        out = self.log_prior.copy()
        if x:
            keys = np.fromiter(x.keys(), dtype=np.int64, count=len(x))
            vals = np.fromiter(x.values(), dtype=np.float64, count=len(x))
            pos = np.searchsorted(self.feature_ids, keys)
            pos = np.minimum(pos, len(self.feature_ids) - 1)
            found = self.feature_ids[pos] == keys
            if found.any():
                out = out + self.log_like[:, pos[found]].astype(np.float64) @ vals[found]
        return out

    def predict(self, x: Mapping[int, int]) -> Guess:
        # Tempered for long texts: naive Bayes counts every word as independent evidence, so
        # its raw posterior is near 1 for any text of some length.
        s = self.scores(x) / max(1.0, sum(x.values()) / 8)
        p = np.exp(s - s.max())
        p /= p.sum()
        i = int(p.argmax())
        return Guess(self.classes[i], round(float(p[i]), 3))

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, feature_ids=self.feature_ids, log_prior=self.log_prior,
                            log_like=self.log_like)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, classes: list[str], data: bytes) -> NaiveBayes:
        with np.load(io.BytesIO(data)) as z:
            return cls(list(classes), z["feature_ids"], z["log_prior"], z["log_like"])


def held_back(number: str, share: float) -> bool:
    """Whether a case is kept out of training to measure the model: by its number, so the
    same cases stay out at every training."""
    h = int(hashlib.sha256(number.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < share


def accuracy(guesses: Sequence[Guess | None], truth: Sequence[str]) -> float | None:
    """The share of right guesses (no guess is a wrong one); None without cases."""
    if not truth:
        return None
    right = sum(1 for g, t in zip(guesses, truth, strict=True) if g is not None and g.matter == t)
    return round(right / len(truth), 4)
