"""Word error rate for the Whisper golden tests and the STT benchmark.

Normalization, applied identically to the reference and the hypothesis (``normalize``):

1. lowercase;
2. thousands separators inside numbers are removed ("8,000" -> "8000");
3. "-" and "/" become spaces ("well-known" -> "well known");
4. every character other than a-z, 0-9 and whitespace is dropped, so punctuation disappears and
   apostrophes are removed inside words ("don't" -> "dont");
5. whitespace is collapsed;
6. only if ``spell_numbers`` is true (the default): every token made only of digits is replaced by its English
   cardinal spelling ("42" -> "forty two", "2015" -> "two thousand fifteen", "1969" -> "one thousand nine
   hundred sixty nine"). Nothing else about numbers is normalized: no ordinals ("3rd"), decimals, times,
   currencies, percentages, and years are not read as years. Because both sides are spelled the same way,
   "42" and "forty-two" match, and a digit string matches the same digit string.

This is the normalization of shared/notes/baselines.md §3 (steps 1, 3-5) plus the number spelling; with
``spell_numbers=False`` it is exactly the baselines' normalization.

WER = (substitutions + deletions + insertions) / reference words, from a word-level Levenshtein alignment.
A corpus WER is the sum of the errors over the files divided by the sum of their reference words.
Cross-checked against jiwer 4.0.0 (``python3 wer.py --selftest`` with jiwer importable).
"""

from __future__ import annotations

import re
import sys

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))


def spell_int(n: int) -> str:
    """English cardinal words for a non-negative integer, without "and" or hyphens."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + spell_int(rest))
    if n >= 10**15:
        return str(n)  # too large to spell: leave the digits
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return spell_int(head) + " " + name + ("" if rest == 0 else " " + spell_int(rest))
    return str(n)


def normalize(text: str, spell_numbers: bool = True) -> list[str]:
    """Normalized word list of ``text`` (see the module docstring)."""
    s = text.lower()
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = s.replace("-", " ").replace("/", " ")
    s = re.sub(r"[^a-z0-9\s]", "", s)
    words = s.split()
    if spell_numbers:
        out: list[str] = []
        for w in words:
            if w.isdigit() and len(w) <= 15:
                out.extend(spell_int(int(w)).split())
            else:
                out.append(w)
        words = out
    return words


def edit_ops(ref: list[str], hyp: list[str]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of a minimum-cost word alignment of hyp to ref."""
    # dp[j] = (cost, subs, dels, ins) for ref[:i] vs hyp[:j]; ties prefer substitution, then deletion.
    prev = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            if ref[i - 1] == hyp[j - 1]:
                best = prev[j - 1]
            else:
                c, s, d, n = prev[j - 1]
                best = (c + 1, s + 1, d, n)
            c, s, d, n = prev[j]
            if c + 1 < best[0]:
                best = (c + 1, s, d + 1, n)
            c, s, d, n = cur[j - 1]
            if c + 1 < best[0]:
                best = (c + 1, s, d, n + 1)
            cur.append(best)
        prev = cur
    _, s, d, n = prev[-1]
    return s, d, n


def score(ref_text: str, hyp_text: str, spell_numbers: bool = True) -> dict:
    """Per-file WER record: ref_words, sub, del, ins, errors, wer."""
    ref = normalize(ref_text, spell_numbers)
    hyp = normalize(hyp_text, spell_numbers)
    s, d, n = edit_ops(ref, hyp)
    errors = s + d + n
    return {
        "ref_words": len(ref),
        "sub": s,
        "del": d,
        "ins": n,
        "errors": errors,
        "wer": errors / len(ref) if ref else float(errors > 0),
    }


def corpus(records: list[dict]) -> dict:
    """Corpus WER over per-file records from ``score``."""
    words = sum(r["ref_words"] for r in records)
    errors = sum(r["errors"] for r in records)
    return {"ref_words": words, "errors": errors, "wer": errors / words if words else 0.0}


def _selftest() -> None:
    assert spell_int(0) == "zero"
    assert spell_int(42) == "forty two"
    assert spell_int(350) == "three hundred fifty"
    assert spell_int(2015) == "two thousand fifteen"
    assert spell_int(8000) == "eight thousand"
    assert spell_int(1_000_001) == "one million one"
    assert spell_int(123_456_789_012_345) == (
        "one hundred twenty three trillion four hundred fifty six billion seven hundred eighty nine million "
        "twelve thousand three hundred forty five"
    )
    assert normalize('She said: "I don\'t know; maybe tomorrow."') == "she said i dont know maybe tomorrow".split()
    assert normalize("more than 8,000 meters") == normalize("more than eight thousand meters")
    assert normalize("forty-two") == normalize("42")
    assert normalize("The well-known author") == ["the", "well", "known", "author"]
    assert edit_ops("a b c d".split(), "a x c d e".split()) == (1, 0, 1)
    assert edit_ops("a b c".split(), []) == (0, 3, 0)
    assert edit_ops([], "a".split()) == (0, 0, 1)
    assert score("the cat sat", "the cat sat")["wer"] == 0.0
    pairs = [
        ("The quick brown fox jumps over the lazy dog.", "The quick brown fox jumped over the lazy dog."),
        ("Can you hear me now?", "Can you hear me?"),
        ("Hello world.", "Hello, world, hello again."),
        ("In 1969, Neil Armstrong walked.", "In 1969 Neil Armstrong was walking on it."),
        ("a b c d e f", "f e d c b a"),
    ]
    try:
        import jiwer
    except ImportError:
        print("jiwer not importable: skipped the cross-check", file=sys.stderr)
        jiwer = None
    for ref, hyp in pairs:
        r = score(ref, hyp)
        if jiwer is not None:
            o = jiwer.process_words(" ".join(normalize(ref)), " ".join(normalize(hyp)))
            ours = (r["sub"] + r["del"] + r["ins"], r["wer"])
            theirs = (o.substitutions + o.deletions + o.insertions, o.wer)
            assert ours[0] == theirs[0] and abs(ours[1] - theirs[1]) < 1e-12, (ref, hyp, ours, theirs)
    print("wer selftest ok" + ("" if jiwer is None else " (edit counts and WER match jiwer)"))


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        _selftest()
    else:
        print("usage: wer.py --selftest", file=sys.stderr)
        sys.exit(2)
