"""Incremental detokenisation with stop strings, and the raw bytes of a token (for logprobs).

`TextStream.push(token)` returns the text that became safe to emit. Text is held back while it
  - ends in an incomplete UTF-8 sequence (byte-level BPE splits characters across tokens: the
    decoder shows U+FFFD until the rest arrives), or
  - ends with a prefix of a stop string (it may still turn into the stop string).
When a stop string appears, the text before it is emitted and generation stops; the stop string
itself is never emitted (OpenAI semantics).
"""

from __future__ import annotations

from typing import Callable

REPLACEMENT = "\ufffd"


class TextStream:
    def __init__(self, tokenizer, stop: list[str] | None = None) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in (stop or []) if s]
        self.ids: list[int] = []
        self.emitted = 0  # characters of the decoded text already returned
        self.text = ""

    def _decode(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def _held_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        best = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best

    def push(self, token_id: int) -> tuple[str, bool]:
        """Add a token; returns (new safe text, stop string hit)."""
        self.ids.append(token_id)
        self.text = text = self._decode()
        if self.stop:
            start = max(0, self.emitted - max(len(s) for s in self.stop))
            hits = [i for i in (text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                cut = min(hits)
                out = text[self.emitted:cut] if cut > self.emitted else ""
                self.emitted = max(self.emitted, cut)
                self.text = text[:cut]
                return out, True
        if text.endswith(REPLACEMENT):
            return "", False
        safe = len(text) - self._held_suffix(text)
        out = text[self.emitted:safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return out, False

    def finish(self) -> str:
        """Everything not yet emitted (end of generation: nothing can complete a stop string now)."""
        out = self.text[self.emitted:]
        self.emitted = len(self.text)
        return out


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte -> printable-unicode map used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes_fn(tokenizer) -> Callable[[int], list[int]]:
    """id -> the token's exact bytes: via the byte-level map when the vocabulary is byte-level BPE
    (a token may be half a UTF-8 character, which decoded text cannot show), else its decoded text."""
    table = _byte_decoder()
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    byte_level = type(decoder).__name__ == "ByteLevel"
    special = set(getattr(tokenizer, "all_special_ids", []) or [])

    def fn(token_id: int) -> list[int]:
        if byte_level and token_id not in special:
            piece = tokenizer.convert_ids_to_tokens(token_id)
            if piece is not None and all(ch in table for ch in piece):
                return [table[ch] for ch in piece]
        return list(tokenizer.decode([token_id]).encode("utf-8"))

    return fn
