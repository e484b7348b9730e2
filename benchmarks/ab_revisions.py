"""Query latency of two revisions of the package, interleaved query by query (an A/B run).

Separate benchmark runs drift on a shared machine by more than a refactoring changes, so this
times both revisions in one run: each revision's package is served by its own worker process
(``git archive <rev>`` into a temporary directory; ``.`` is the working tree) over the same
seeded corpus (``benchmarks/corpus.py``, hashing embedding, in-memory Chroma, ``k=10``,
``fetch_k=50``, z-score, result cache off), and the driver asks them for one query at a time in
a seeded random order of (revision, variant), so both see the same load. Only one worker runs at
a time. Variants: ``plain`` (``invoke``), ``noop_handler`` (a callback handler that does
nothing: LangChain's run bookkeeping and the legs' child runs), ``metrics_handler``
(:class:`~langchain_hybrid.RetrievalMetricsHandler`), ``async`` (``ainvoke``, no handler) and
``group_by`` (``group_by="source"``, eight documents per source). A revision's ungrouped
variants must give equal answers (ids, fused scores, texts); across revisions they are not
compared (each process builds its own HNSW graph, whose vector scores differ slightly: the unit
tests pin the answers instead).

```bash
python benchmarks/ab_revisions.py main . --docs 10000 --queries 300
```

Prints the p50 per revision and variant, and the ratios new/old and variant/plain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
VARIANTS = ("plain", "noop_handler", "metrics_handler", "async", "group_by")


def _worker(docs: int) -> None:
    """Serve ``<variant> <query index>`` lines on stdin with ``seconds answer-json`` lines."""
    from corpus import HashingEmbeddings, generate_corpus  # noqa: PLC0415
    from langchain_core.callbacks import BaseCallbackHandler  # noqa: PLC0415

    from langchain_hybrid import HybridRetriever, RetrievalMetricsHandler  # noqa: PLC0415

    corpus = generate_corpus(docs, seed=2)
    documents = corpus.documents()
    for doc in documents:  # eight chunks per source, as in test_bench_pipeline.py
        doc.metadata["source"] = f"s{doc.metadata['n'] // 8}"
    retriever = HybridRetriever.from_documents(
        documents,
        embedding=HashingEmbeddings(),
        collection_name=f"ab-{uuid.uuid4().hex[:12]}",
        k=10,
        fetch_k=50,
        cache=False,
    )
    configs: dict[str, Any] = {
        "plain": {},
        "noop_handler": {"callbacks": [BaseCallbackHandler()]},
        "metrics_handler": {"callbacks": [RetrievalMetricsHandler()]},
    }
    loop = asyncio.new_event_loop()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        variant, index = line.split()
        query = corpus.queries[int(index) % len(corpus.queries)]
        started = time.perf_counter()
        if variant == "async":
            documents = loop.run_until_complete(retriever.ainvoke(query))
        elif variant == "group_by":
            documents = retriever.invoke(query, group_by="source")
        else:
            documents = retriever.invoke(query, config=configs[variant])
        seconds = time.perf_counter() - started
        answer = [(d.id, d.metadata["hybrid_score"], d.page_content[:20]) for d in documents]
        sys.stdout.write(f"{seconds!r} {json.dumps(answer)}\n")
        sys.stdout.flush()


def _package(rev: str, into: Path) -> Path:
    """A directory holding ``langchain_hybrid`` as of ``rev`` (``.``: the working tree)."""
    root = HERE.parent
    if rev == ".":
        return root
    archive = subprocess.run(  # noqa: S603 - git with fixed arguments and a revision name
        ["git", "-C", str(root), "archive", rev, "langchain_hybrid"],  # noqa: S607
        check=True,
        capture_output=True,
    ).stdout
    target = into / rev.replace("/", "_")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def _start(package: Path, docs: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package), str(HERE)])}
    worker = subprocess.Popen(  # noqa: S603 - this script, with our own interpreter
        [sys.executable, __file__, "--worker", "--docs", str(docs)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert worker.stdout is not None
    if worker.stdout.readline().strip() != "ready":
        msg = f"worker for {package} did not start"
        raise RuntimeError(msg)
    return worker


def main() -> None:
    """Run the A/B comparison (or, with ``--worker``, serve one revision)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("old", nargs="?", default="main")
    parser.add_argument("new", nargs="?", default=".")
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.docs)
        return
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        revs = {"old": args.old, "new": args.new}
        workers = {name: _start(_package(rev, Path(tmp)), args.docs) for name, rev in revs.items()}
        timings: dict[tuple[str, str], list[float]] = {
            (name, v): [] for name in workers for v in VARIANTS
        }
        pairs = list(timings)
        for index in range(-20, args.queries):  # 20 warm-up queries, not recorded
            answers: dict[tuple[str, bool], set[str]] = {}  # (revision, grouped): answers
            for j in rng.permutation(len(pairs)):
                name, variant = pairs[j]
                worker = workers[name]
                assert worker.stdin is not None
                assert worker.stdout is not None
                worker.stdin.write(f"{variant} {max(index, 0)}\n")
                worker.stdin.flush()
                seconds, answer = worker.stdout.readline().split(" ", 1)
                answers.setdefault((name, variant == "group_by"), set()).add(answer)
                if index >= 0:
                    timings[name, variant].append(float(seconds))
            if any(len(given) != 1 for given in answers.values()):
                msg = f"a revision's variants answered query {index} differently: {answers}"
                raise AssertionError(msg)
        for worker in workers.values():
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait()
    p50 = {key: float(np.median(times)) for key, times in timings.items()}
    out = sys.stdout
    out.write(f"{args.queries} queries x {len(pairs)} (revision, variant), {args.docs} docs\n")
    out.write(f"{'variant':<16} {'old p50 ms':>10} {'new p50 ms':>10} {'new/old':>8}\n")
    for variant in VARIANTS:
        old, new = p50["old", variant], p50["new", variant]
        out.write(f"{variant:<16} {old * 1e3:>10.3f} {new * 1e3:>10.3f} {new / old:>8.3f}\n")
    for name in workers:
        ratios = ", ".join(
            f"{v}/plain {p50[name, v] / p50[name, 'plain']:.3f}" for v in VARIANTS[1:]
        )
        out.write(f"{name} ({revs[name]}): {ratios}\n")


if __name__ == "__main__":
    main()
