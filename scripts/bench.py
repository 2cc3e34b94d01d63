"""Benchmarks for the course helpers (``make bench``); prints a table and writes build/bench.json.

Text embedding: sentences per second of ``course_utils.text.encode_texts``
against ``SentenceTransformer.encode`` on the same 1,000 sentences with the
same batch size, measured in one run, alternating the two, and reported as
the median of several repeats with their ratio.
"""

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path

import torch

SUBJECTS = ["the cat", "a student", "the old engine", "our team", "the new model", "a small robot",
            "the committee", "my neighbour", "the satellite", "a tired chef"]
VERBS = ["watched", "repaired", "described", "ignored", "painted", "measured", "sold", "followed"]
OBJECTS = ["the red car", "a long report", "the quiet river", "an empty stadium", "the broken clock",
           "a tall tree", "the evening news", "a noisy market", "the final exam", "a blue kite"]
TAILS = ["", " yesterday", " before lunch", " with great care", " in the rain", " for the third time",
         " while everyone else was asleep and the streets were empty"]


def make_sentences(count: int, seed: int = 0) -> list[str]:
    """Return ``count`` varied English sentences, the same ones for the same seed."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}."
        for _ in range(count)
    ]


def bench_text_embedding(num_sentences: int, batch_size: int, repeats: int) -> dict:
    """Time both encoders on the same sentences; return throughputs and their ratio."""
    from sentence_transformers import SentenceTransformer

    from course_utils.registry import model_source
    from course_utils.text import encode_texts, load_text_encoder

    sentences = make_sentences(num_sentences)
    tokenizer, model = load_text_encoder(device="cpu")
    reference = SentenceTransformer(model_source("text_encoder"), device="cpu")

    def ours():
        return encode_texts(sentences, tokenizer, model, batch_size=batch_size)

    def theirs():
        return reference.encode(sentences, batch_size=batch_size, convert_to_tensor=True)

    # One warm-up call each, then a correctness check on the warm-up outputs.
    difference = (ours() - theirs()).abs().max().item()
    timings = {"course_utils": [], "sentence_transformers": []}
    for _ in range(repeats):
        for name, function in (("course_utils", ours), ("sentence_transformers", theirs)):
            start = time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - start)
    rates = {name: num_sentences / statistics.median(values) for name, values in timings.items()}
    return {
        "num_sentences": num_sentences,
        "batch_size": batch_size,
        "repeats": repeats,
        "sentences_per_second": {name: round(rate, 1) for name, rate in rates.items()},
        "ratio_course_utils_to_sentence_transformers": round(
            rates["course_utils"] / rates["sentence_transformers"], 3),
        "max_abs_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000, help="sentences to embed (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size for both encoders")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each encoder")
    parser.add_argument("--out", default="build/bench.json", help="where to write the results")
    args = parser.parse_args()

    results = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu_threads": torch.get_num_threads(), "processor": platform.machine()},
        "text_embedding": bench_text_embedding(args.sentences, args.batch_size, args.repeats),
    }
    text = results["text_embedding"]
    print(f"Text embedding, {text['num_sentences']} sentences, batch {text['batch_size']}, "
          f"median of {text['repeats']}:")
    for name, rate in text["sentences_per_second"].items():
        print(f"  {name:<22} {rate:>8.1f} sentences/s")
    print(f"  ratio course_utils / sentence_transformers: {text['ratio_course_utils_to_sentence_transformers']}")
    print(f"  max |difference| between the embeddings: {text['max_abs_difference']:.2e}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
