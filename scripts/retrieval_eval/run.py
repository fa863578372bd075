#!/usr/bin/env python3
"""Retrieval evaluation on the Rust Book: recall@k and MRR@k for dense, keyword and hybrid search.

Ingests the book's real chapter pages (ch*.html, not the small redirect stubs) into a fresh index
with a given `hearth` binary, runs every question of questions.json through
`hearth search --queries` once per mode (the model loads once per mode), and scores a question as
found at rank r when the r-th hit (a chunk) comes from one of the question's answer pages.

    python3 scripts/retrieval_eval/run.py --hearth target/release/hearth \
        --book "$(rustc --print sysroot)/share/doc/rust/html/book"

Options: --model DIR (encoder; default: hearth's default), -k (default 5), --work DIR (keep the
index there; re-runs skip unchanged pages), --subset N (N questions spread over the set, and only
their answer pages ingested: a quick, easier check for slow machines), --json-out FILE.
Prints a table and, as its last line, the same numbers as one JSON object. Python 3 stdlib only.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("dense", "keyword", "hybrid")


def chapter_pages(book):
    """Real chapter pages: ch*.html that are not meta-refresh redirects to a renamed chapter."""
    pages = []
    for name in sorted(os.listdir(book)):
        if not re.match(r"ch\d\d-.*\.html$", name):
            continue
        path = os.path.join(book, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
        if 'http-equiv="refresh"' in head:
            continue
        pages.append(path)
    return pages


def run(cmd, **kw):
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return proc, time.time() - t0


def spread(items, n):
    """n items evenly spaced over the list (all of them when n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


def score(questions, rows, k):
    """Per question: 1-based rank of the first hit from an answer page, or None."""
    ranks = []
    for q, row in zip(questions, rows):
        if row.get("query") != q["question"]:
            raise SystemExit(f"result order mismatch: {row.get('query')!r} vs {q['question']!r}")
        want = set(q["files"])
        rank = None
        for i, hit in enumerate(row["hits"][:k]):
            if os.path.basename(hit["source"]) in want:
                rank = i + 1
                break
        ranks.append(rank)
    return ranks


def metrics(ranks):
    n = len(ranks)
    if n == 0:
        return {"n": 0, "recall": 0.0, "mrr": 0.0}
    return {
        "n": n,
        "recall": sum(r is not None for r in ranks) / n,
        "mrr": sum(1.0 / r for r in ranks if r is not None) / n,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hearth", required=True, help="the hearth binary")
    ap.add_argument("--book", required=True, help="folder with the book's ch*.html pages")
    ap.add_argument("--questions", default=os.path.join(HERE, "questions.json"))
    ap.add_argument("--model", help="encoder directory (default: hearth's default encoder)")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--work", help="working folder for the index (kept); default: a temporary one")
    ap.add_argument("--subset", type=int, help="only N questions and their answer pages")
    ap.add_argument("--json-out", help="also write the JSON result to this file")
    args = ap.parse_args()

    hearth = os.path.abspath(args.hearth)
    with open(args.questions, encoding="utf-8") as f:
        questions = json.load(f)["questions"]
    pages = chapter_pages(args.book)
    by_name = {os.path.basename(p): p for p in pages}
    missing = sorted({f for q in questions for f in q["files"]} - set(by_name))
    if missing:
        raise SystemExit(f"answer pages missing from {args.book}: {missing}")
    if args.subset:
        questions = spread(questions, args.subset)
        names = sorted({f for q in questions for f in q["files"]})
        pages = [by_name[n] for n in names]

    work = args.work or tempfile.mkdtemp(prefix="hearth-retrieval-eval-")
    os.makedirs(work, exist_ok=True)
    index = os.path.join(work, "index")
    model = ["--model", args.model] if args.model else []
    try:
        # Ingest (files that fail are reported; the rest are indexed and saved).
        print(f"ingesting {len(pages)} pages into {index} …", file=sys.stderr)
        proc, secs = run([hearth, "ingest", "--index", index, "--json", *model, *pages])
        if not proc.stdout.strip():
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"hearth ingest failed (exit {proc.returncode})")
        ingest = json.loads(proc.stdout.strip().splitlines()[-1])
        ingest["wall_seconds"] = secs
        if ingest["chunks"]:
            ingest["chunks_per_second"] = ingest["chunks"] / max(ingest["ingest_seconds"], 1e-9)
        for fail in ingest["failed"]:
            print(f"ingest failed: {fail['path']}: {fail['error']}", file=sys.stderr)
        print(
            f"ingest: {ingest['added']} added, {ingest['unchanged']} unchanged, "
            f"{ingest['replaced']} replaced, {len(ingest['failed'])} failed; "
            f"{ingest['chunks']} chunks embedded in {ingest['ingest_seconds']:.1f}s; index "
            f"{ingest['documents']} documents, {ingest['index_chunks']} chunks ({secs:.1f}s wall)",
            file=sys.stderr,
        )

        qfile = os.path.join(work, "queries.txt")
        with open(qfile, "w", encoding="utf-8") as f:
            for q in questions:
                if "\n" in q["question"] or not q["question"].strip():
                    raise SystemExit(f"question {q['id']} must be one non-empty line")
                f.write(q["question"] + "\n")

        result = {"k": args.k, "questions": len(questions), "pages": len(pages), "ingest": ingest, "modes": {}}
        for mode in MODES:
            cmd = [hearth, "search", "--index", index, "--queries", qfile, "-k", str(args.k), "--mode", mode, *model]
            proc, secs = run(cmd)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"hearth search --mode {mode} failed (exit {proc.returncode})")
            rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
            if len(rows) != len(questions):
                raise SystemExit(f"{mode}: {len(rows)} result lines for {len(questions)} questions")
            ranks = score(questions, rows, args.k)
            m = metrics(ranks)
            for kind in ("easy", "paraphrased"):
                sub = [r for q, r in zip(questions, ranks) if q.get("kind") == kind]
                m[f"recall_{kind}"] = metrics(sub)["recall"]
            m["missed"] = [q["id"] for q, r in zip(questions, ranks) if r is None]
            m["search_seconds"] = secs
            result["modes"][mode] = m

        k = args.k
        print(f"{'mode':<8}  {f'recall@{k}':>9}  {f'MRR@{k}':>7}  {'easy':>6}  {'paraphr.':>8}  missed")
        for mode in MODES:
            m = result["modes"][mode]
            print(
                f"{mode:<8}  {m['recall']:>9.3f}  {m['mrr']:>7.3f}  {m['recall_easy']:>6.3f}  "
                f"{m['recall_paraphrased']:>8.3f}  {len(m['missed'])}/{m['n']}"
            )
        line = json.dumps(result)
        print(line)
        if args.json_out:
            with open(args.json_out, "w", encoding="utf-8") as f:
                f.write(line + "\n")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
