"""A static HTML gallery anyone can open from a file link: an index of published pages, one
page per collection (title, attributes, thumbnails), the baseline's pages and the dropped ones
with their reasons. Thumbnails are PNGs named by image hash, written once each."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment
from PIL import Image

from ml.collections.space import AttributeSpace

_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}a{color:#0645ad;text-decoration:none}
.grid{display:flex;flex-wrap:wrap;gap:10px}.card{width:112px;font-size:11px}.card img{width:96px;height:96px;image-rendering:pixelated;border:1px solid #ddd}
.chip{display:inline-block;background:#eef;border-radius:9px;padding:1px 8px;margin:2px;font-size:12px}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left}"""

_INDEX = """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ style }}</style></head><body>
<h1>{{ title }}</h1><p>{{ summary }}</p>
<p><a href="baseline.html">Search-log baseline pages</a> · <a href="baseline_dropped.html">dropped baseline pages and queries</a> · <a href="dropped.html">Dropped content-first pages ({{ n_dropped }})</a></p>
{% for category, rows in groups %}<h2>{{ category }} ({{ rows|length }})</h2><table><tr><th>page</th><th>matching items</th><th>predicted precision</th><th>searches</th></tr>
{% for r in rows %}<tr><td><a href="{{ r.href }}">{{ r.title }}</a></td><td>{{ r.candidates }}</td><td>{{ '%.3f'|format(r.predicted_precision) }}</td><td>{{ r.demand }}</td></tr>{% endfor %}</table>{% endfor %}
</body></html>"""

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ style }}</style></head><body>
<p><a href="../index.html">all collections</a></p><h1>{{ title }}</h1>
<p>{% for a in attributes %}<span class="chip">{{ a }}</span>{% endfor %}</p>
<p>{{ candidates }} matching items, the first {{ feed_size }} ranked · predicted precision {{ '%.3f'|format(predicted_precision) }}{% if query %} · query "{{ query }}"{% endif %}</p>
<div class="grid">{% for it in items %}<div class="card"><img src="../img/{{ it.image }}.png" alt="{{ it.title }}" title="{{ it.title }}"><br>{{ it.title[:60] }}<br>score {{ '%.3f'|format(it.score) }}</div>{% endfor %}</div>
</body></html>"""

_TABLE = """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ style }}</style></head><body>
<p><a href="index.html">all collections</a></p><h1>{{ title }}</h1><table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for c in columns %}<td>{% if c == 'title' and r.href %}<a href="{{ r.href }}">{{ r[c] }}</a>{% else %}{{ r[c] }}{% endif %}</td>{% endfor %}</tr>{% endfor %}</table></body></html>"""

_HASH = re.compile(r"^[0-9a-f]{8,128}$")


def slug(text: str, topic: int) -> str:
    """A file name that cannot leave its folder: [a-z0-9-] only, plus the page's number."""
    return f"{re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-')[:60] or 'page'}-{topic}.html"


class Gallery:
    """Writes pages into one site folder; thumbnails are collected and written by `finish`."""

    def __init__(self, root: str | Path, space: AttributeSpace, items: pd.DataFrame, thumbnails: int = 24):
        """`items`: title and image_hash per item index."""
        self.root, self.space, self.items, self.thumbnails = Path(root), space, items, thumbnails
        (self.root / "pages").mkdir(parents=True, exist_ok=True)
        (self.root / "img").mkdir(exist_ok=True)
        self.env = Environment(autoescape=True)
        self.needed: set[str] = set()

    def pages(self, frame: pd.DataFrame, feeds: pd.DataFrame, prefix: str = "") -> list[str]:
        """One HTML file per row (topic index -> feed); returns the hrefs relative to the root."""
        template, hrefs = self.env.from_string(_PAGE), []
        top = feeds[feeds["rank"] < self.thumbnails]
        by_topic = dict(list(top.groupby("topic")))
        for topic, row in frame.iterrows():
            href = f"pages/{prefix}{slug(row['title'], int(topic))}"
            shown = by_topic.get(topic, top.iloc[:0])
            cards = []
            for item, score in zip(shown["item"], shown["score"]):
                image = str(self.items.at[item, "image_hash"])
                if _HASH.match(image):
                    self.needed.add(image)
                    cards.append({"image": image, "title": str(self.items.at[item, "title"]), "score": float(score)})
            (self.root / href).write_text(template.render(
                style=_STYLE, title=row["title"], attributes=self.space.key_labels(row["key"]), feed_size=int(row["feed_size"]), candidates=int(row["candidates"]),
                predicted_precision=float(row["predicted_precision"]), query=row.get("query"), items=cards))
            hrefs.append(href)
        return hrefs

    def index(self, title: str, summary: str, published: pd.DataFrame, hrefs: list[str], n_dropped: int) -> Path:
        category = [next((self.space.entry_phrase[e] for e in k if self.space.entry_type[e] == "category"), "other") for k in published["key"]]
        rows = published.assign(href=hrefs, category=category)
        if "demand" not in rows:
            rows["demand"] = 0
        groups = [(c, g.sort_values("candidates", ascending=False).to_dict("records")) for c, g in rows.groupby("category")]
        path = self.root / "index.html"
        path.write_text(self.env.from_string(_INDEX).render(style=_STYLE, title=title, summary=summary, groups=groups,
                                                            n_dropped=n_dropped))
        return path

    def table(self, name: str, title: str, frame: pd.DataFrame, columns: list[str]) -> Path:
        if "href" not in frame:
            frame = frame.assign(href=None)
        path = self.root / name
        path.write_text(self.env.from_string(_TABLE).render(style=_STYLE, title=title, columns=columns, rows=frame.to_dict("records")))
        return path

    def finish(self, pixels_for) -> int:
        """Write the thumbnails not yet on disk; `pixels_for(hashes)` -> N x S x S x 3 uint8."""
        hashes = sorted(h for h in self.needed if not (self.root / "img" / f"{h}.png").exists())
        for h, px in zip(hashes, pixels_for(hashes) if hashes else []):
            Image.fromarray(np.asarray(px, np.uint8)).save(self.root / "img" / f"{h}.png")
        return len(hashes)
