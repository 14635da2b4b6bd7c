"""A stand-in for Chatterbox's English `tokenizer.json` (HF repo ResembleAI/chatterbox).

The real file cannot be fetched offline (it is not in the wheel). This builds one with the same
scheme, which is all `EnTokenizer` and the T3 config rely on: a 704-entry BPE model (`unk_token`
"[UNK]", no normalizer, `Whitespace` pre-tokenizer, no subword prefixes), `[STOP]`=0, `[UNK]`=1,
`[SPACE]`=2, `[START]`=255 and the other bracketed special tokens as added tokens, every printable
ASCII character in the alphabet, merges learned from a fixed English corpus. Both the reference
(Python `tokenizers`) and vox (the `tokenizers` crate it binds) read the same JSON, so encoding
parity holds for the real file as well.
"""

import json
import string
import textwrap
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

VOCAB_SIZE = 704
SPECIAL = {"[STOP]": 0, "[UNK]": 1, "[SPACE]": 2, "[START]": 255,
           "[PAD]": 256, "[SEP]": 257, "[CLS]": 258, "[MASK]": 259}

CORPUS = textwrap.dedent("""
    The quick brown fox jumps over the lazy dog. Hello world, this is a test of the speech model.
    She sells sea shells by the sea shore; the shells she sells are surely seashells.
    Speech synthesis turns written text into spoken words, one sound at a time.
    It was the best of times, it was the worst of times, it was the age of wisdom.
    How much wood would a woodchuck chuck if a woodchuck could chuck wood?
    Peter Piper picked a peck of pickled peppers. Where is the peck of pickled peppers?
    Numbers like one, two, three and four are read aloud. Please call me at nine o'clock.
    The weather today is sunny with a chance of rain in the evening, and cooler tomorrow.
    Thank you for listening! What would you like to hear next? Let's begin the story.
    Once upon a time there lived a king and a queen who wanted a child more than anything.
    Generative models learn the distribution of their training data and sample from it.
    """)


def build_tokenizer(path: Path) -> None:
    alphabet = list(string.ascii_letters + string.digits + string.punctuation)
    base = Tokenizer(models.BPE(unk_token="[UNK]"))
    base.pre_tokenizer = pre_tokenizers.Whitespace()
    n_learned = VOCAB_SIZE - len(SPECIAL)
    trainer = trainers.BpeTrainer(vocab_size=n_learned, initial_alphabet=alphabet,
                                  limit_alphabet=len(alphabet), show_progress=False)
    base.train_from_iterator([CORPUS] * 4, trainer)
    spec = json.loads(base.to_str())
    learned = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    free = [i for i in range(VOCAB_SIZE) if i not in SPECIAL.values()]
    vocab = dict(SPECIAL)
    for (tok, _), new_id in zip(learned, free):
        vocab[tok] = new_id
    spec["model"]["vocab"] = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    spec["added_tokens"] = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True} for t, i in SPECIAL.items()]
    path.write_text(json.dumps(spec, ensure_ascii=False))
    Tokenizer.from_file(str(path))  # round-trip check
