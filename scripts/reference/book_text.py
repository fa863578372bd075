#!/usr/bin/env python3
"""Plain text of the Rust Book's chapter pages (stdlib only), for tokenizer fixtures and embedding
benchmarks: `book_text.py BOOK_DIR --lines N --out strings.json` writes N varied lines;
`--windows N --words W` writes N texts of W consecutive words (long enough to fill 256 tokens)."""
import argparse, glob, html.parser, json, os, random


class Text(html.parser.HTMLParser):
    SKIP = {"script", "style", "nav", "head"}

    def __init__(self):
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth:
            self.depth -= 1
        if tag in ("p", "li", "pre", "h1", "h2", "h3", "h4", "td", "div"):
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def pages(book):
    for path in sorted(glob.glob(os.path.join(book, "ch*.html"))):
        if os.path.getsize(path) < 8000:  # redirect stubs
            continue
        p = Text()
        p.feed(open(path, encoding="utf-8").read())
        yield "".join(p.parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("book")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lines", type=int)
    ap.add_argument("--windows", type=int)
    ap.add_argument("--words", type=int, default=240)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    texts = list(pages(a.book))
    if a.lines:
        lines = [l.strip() for t in texts for l in t.split("\n") if len(l.strip()) > 3]
        out = rng.sample(lines, min(a.lines, len(lines)))
    else:
        words = " ".join(texts).split()
        out = []
        for _ in range(a.windows):
            s = rng.randrange(0, len(words) - a.words)
            out.append(" ".join(words[s : s + a.words]))
    json.dump({"texts": out}, open(a.out, "w"), ensure_ascii=False, indent=0)


if __name__ == "__main__":
    main()
