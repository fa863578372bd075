#!/usr/bin/env python3
"""Assistant evaluation on the Rust Book: cited answers and end-of-document coverage of summaries.

1. Ask: N questions of scripts/retrieval_eval/questions.json (spread over the set) go through
   `hearth ask --json` against an index of the book's chapter pages. Reported: the share of answers
   that cite anything, and the share whose citations include a page that answers the question
   (the questions' `files`); also how often the assistant declined for lack of relevant sources.
2. Summarize: each page of summary_facts.json goes through `hearth summarize --json`; a summary
   "reaches the end" when it mentions a term that occurs only in the page's last quarter (checked
   here on the page text first, so the test cannot pass on terms from the beginning).

    python3 scripts/assistant_eval/run.py --hearth target/release/hearth --book BOOK \
        [--index DIR (an index already holding the book; else one is built)] [--model GGUF|DIR]
        [--encoder DIR] [-n 30] [--context 4096] [--json-out FILE]

Python 3 stdlib only. Prints a table and, as its last line, the numbers as one JSON object.
"""

import argparse, glob, html, json, os, re, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
QUESTIONS = os.path.join(HERE, "..", "retrieval_eval", "questions.json")


def page_text(path):
    t = open(path, encoding="utf-8").read()
    m = re.search(r"<main>(.*)</main>", t, re.S)
    t = m.group(1) if m else t
    t = re.sub(r"<(script|style|nav)\b.*?</\1>", " ", t, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", t))).lower()


def spread(items, n):
    if n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def run(cmd):
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p, time.time() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hearth", required=True)
    ap.add_argument("--book", required=True)
    ap.add_argument("--index")
    ap.add_argument("--model")
    ap.add_argument("--encoder")
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--json-out")
    a = ap.parse_args()
    hearth = os.path.abspath(a.hearth)
    model = ["--model", a.model] if a.model else []
    encoder = ["--encoder", a.encoder] if a.encoder else []
    ctx = ["--context", str(a.context)]

    index = a.index
    if not index:
        index = os.path.join(tempfile.mkdtemp(prefix="hearth-assistant-eval-"), "index")
        pages = [p for p in sorted(glob.glob(os.path.join(a.book, "ch*.html"))) if os.path.getsize(p) >= 8000]
        p, _ = run([hearth, "ingest", "--index", index, "--json", *(["--model", a.encoder] if a.encoder else []), *pages])
        if p.returncode not in (0, 1):
            sys.stderr.write(p.stderr)
            raise SystemExit("ingest failed")

    questions = spread(json.load(open(QUESTIONS, encoding="utf-8"))["questions"], a.n)
    rows = []
    for q in questions:
        p, secs = run([hearth, "ask", "--index", index, "--json", *model, *encoder, *ctx, q["question"]])
        if p.returncode != 0 or not p.stdout.strip():
            rows.append({"id": q["id"], "error": p.stderr.strip().splitlines()[-1:] or ["?"], "seconds": secs})
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        cited = {os.path.basename(c["source"]) for c in r["citations"]}
        retrieved = [os.path.basename(h["source"]) for h in r["retrieved"]]
        rows.append({
            "id": q["id"], "seconds": secs, "answer": r["answer"],
            "cited": sorted(cited), "cites_any": bool(cited),
            "cites_right": bool(cited & set(q["files"])),
            "right_retrieved": bool(set(retrieved) & set(q["files"])),
            "declined": not r["citations"] and not r["retrieved"],
        })
    ok = [r for r in rows if "error" not in r]
    share = lambda key: sum(r[key] for r in ok) / max(len(ok), 1)
    ask = {
        "questions": len(rows), "errors": len(rows) - len(ok),
        "cites_any": share("cites_any"), "cites_right_page": share("cites_right"),
        "right_page_retrieved": share("right_retrieved"),
        "mean_seconds": sum(r["seconds"] for r in ok) / max(len(ok), 1),
    }

    facts = json.load(open(os.path.join(HERE, "summary_facts.json"), encoding="utf-8"))["documents"]
    summaries = []
    for d in facts:
        path = os.path.join(a.book, d["file"])
        text = page_text(path)
        cut = int(len(text) * 0.75)
        terms = [t for t in d["end_terms"] if t in text[cut:] and t not in text[:cut]]
        if not terms:
            raise SystemExit(f"{d['file']}: none of {d['end_terms']} occurs only in the last quarter")
        p, secs = run([hearth, "summarize", "--json", *model, *ctx, path])
        if p.returncode != 0 or not p.stdout.strip():
            summaries.append({"file": d["file"], "error": p.stderr.strip().splitlines()[-1:], "seconds": secs})
            continue
        s = json.loads(p.stdout.strip().splitlines()[-1])
        low = s["summary"].lower()
        summaries.append({
            "file": d["file"], "seconds": secs, "chars": len(text), "end_terms": terms,
            "reaches_end": any(t in low for t in terms), "citations": len(s["citations"]),
            "summary": s["summary"],
        })
    sok = [s for s in summaries if "error" not in s]
    summ = {"documents": len(summaries), "errors": len(summaries) - len(sok),
            "reaches_end": sum(s["reaches_end"] for s in sok) / max(len(sok), 1)}

    print(f"ask: {ask['questions']} questions, {ask['errors']} errors; cites anything {ask['cites_any']:.2f}, "
          f"cites a right page {ask['cites_right_page']:.2f} (right page retrieved {ask['right_page_retrieved']:.2f}); "
          f"{ask['mean_seconds']:.1f}s each")
    print(f"summarize: {summ['documents']} long pages, {summ['errors']} errors; summary mentions the end "
          f"{summ['reaches_end']:.2f}")
    result = {"ask": ask, "summarize": summ, "answers": rows, "summaries": summaries}
    if a.json_out:
        with open(a.json_out, "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=1)
    print(json.dumps({"ask": ask, "summarize": summ}))


if __name__ == "__main__":
    main()
