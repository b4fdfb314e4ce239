"""The demo's model of a fashion shop: what exists, how often, and how merchants write about it.

Data only. The builder samples from it; evaluation reads the truth it produces, never this.
Category priors skew colours on purpose so that a model trained on the catalog is biased.
"""

from __future__ import annotations

PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "grey": (140, 140, 146),
    "red": (200, 30, 40),
    "pink": (238, 110, 175),
    "yellow": (236, 196, 30),
    "green": (40, 145, 60),
    "blue": (35, 75, 200),
    "purple": (120, 45, 160),
}

# Fashion-MNIST class index -> category, department (the merchant's coarse `category` column)
CATEGORIES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandals", "shirt", "sneakers", "bag", "ankle boots")
DEPARTMENT = {
    "t-shirt": "Tops", "pullover": "Tops", "shirt": "Tops", "trousers": "Bottoms", "dress": "Dresses",
    "coat": "Outerwear", "sandals": "Shoes", "sneakers": "Shoes", "ankle boots": "Shoes", "bag": "Bags",
}
GARMENTS = frozenset({"t-shirt", "trousers", "pullover", "dress", "coat", "shirt"})

# prior weights; any value not named has weight 1 for colour, 0 otherwise
COLOR_SKEW = {
    "t-shirt": {"black": 3, "grey": 2.5, "blue": 2},
    "trousers": {"blue": 5, "black": 4, "grey": 2},
    "pullover": {"grey": 4, "green": 2.5, "purple": 1.5},
    "dress": {"red": 4, "pink": 3.5, "black": 2},
    "coat": {"black": 4, "grey": 3.5, "green": 1.5},
    "sandals": {"pink": 2.5, "yellow": 2.5, "red": 1.5},
    "shirt": {"blue": 4, "grey": 2, "pink": 1.5},
    "sneakers": {"black": 2.5, "red": 2, "blue": 2},
    "bag": {"black": 3.5, "pink": 2, "red": 2},
    "ankle boots": {"black": 5, "grey": 2.5},
}
MATERIALS = {
    "t-shirt": {"cotton": 6, "linen": 2, "polyester": 2},
    "trousers": {"denim": 5, "cotton": 3, "linen": 2, "wool": 1},
    "pullover": {"wool": 5, "cashmere": 2, "cotton": 2},
    "dress": {"silk": 3, "cotton": 3, "linen": 2, "polyester": 2},
    "coat": {"wool": 5, "leather": 2, "polyester": 2},
    "sandals": {"leather": 5, "canvas": 1, "suede": 2},
    "shirt": {"cotton": 5, "linen": 3, "silk": 1, "denim": 1},
    "sneakers": {"canvas": 4, "leather": 3, "suede": 2},
    "bag": {"leather": 5, "canvas": 3, "suede": 1},
    "ankle boots": {"leather": 6, "suede": 3},
}
STYLES = {
    "t-shirt": {"casual": 6, "sporty": 3, "minimalist": 2, "vintage": 1},
    "trousers": {"casual": 4, "formal": 3, "minimalist": 2},
    "pullover": {"casual": 4, "vintage": 2, "minimalist": 2},
    "dress": {"formal": 3, "bohemian": 3, "casual": 3, "vintage": 1},
    "coat": {"formal": 4, "minimalist": 3, "vintage": 1},
    "sandals": {"casual": 4, "bohemian": 3},
    "shirt": {"formal": 4, "casual": 4, "minimalist": 1},
    "sneakers": {"sporty": 6, "casual": 4},
    "bag": {"minimalist": 3, "formal": 2, "casual": 2, "vintage": 2, "bohemian": 1},
    "ankle boots": {"casual": 3, "formal": 2, "vintage": 2},
}
SEASONS = {
    "t-shirt": {"summer": 5, "spring": 3},
    "trousers": {"autumn": 2, "spring": 2, "winter": 1, "summer": 1},
    "pullover": {"winter": 4, "autumn": 4},
    "dress": {"summer": 5, "spring": 3},
    "coat": {"winter": 6, "autumn": 3},
    "sandals": {"summer": 8},
    "shirt": {"spring": 3, "summer": 2, "autumn": 2},
    "sneakers": {"spring": 2, "summer": 2, "autumn": 2},
    "bag": {"summer": 1, "winter": 1, "spring": 1, "autumn": 1},
    "ankle boots": {"autumn": 4, "winter": 4},
}
FITS = {"slim": 3, "regular": 4, "relaxed": 3, "oversized": 2}
BRANDS = (
    "Northwind", "Alder & Pine", "Lumen", "Corvo", "Saltmarsh", "Brightwater", "Kestrel", "Marlow",
    "Oakhaven", "Quill", "Rivet", "Sable", "Tamsin", "Umber", "Vale", "Wren",
)
BASE_PRICE = {
    "t-shirt": 22, "trousers": 49, "pullover": 55, "dress": 65, "coat": 140, "sandals": 39,
    "shirt": 38, "sneakers": 75, "bag": 85, "ankle boots": 95,
}
MATERIAL_PRICE = {"cashmere": 2.6, "silk": 2.0, "leather": 1.7, "suede": 1.5, "wool": 1.3}

# How merchants write things: several surface forms per canonical value.
SYNONYMS: dict[str, tuple[str, ...]] = {
    # colours
    "black": ("black", "jet black", "onyx"),
    "grey": ("grey", "gray", "charcoal", "slate"),
    "red": ("red", "crimson", "scarlet", "cherry red"),
    "pink": ("pink", "blush", "rose"),
    "yellow": ("yellow", "mustard", "lemon"),
    "green": ("green", "olive", "emerald", "forest green"),
    "blue": ("blue", "navy", "cobalt", "azure"),
    "purple": ("purple", "violet", "plum"),
    # categories (singular, plural)
    "t-shirt": ("t-shirt", "tee", "t shirt"),
    "trousers": ("trousers", "pants", "slacks"),
    "pullover": ("pullover", "sweater", "jumper"),
    "dress": ("dress", "sundress", "midi dress"),
    "coat": ("coat", "overcoat", "topcoat"),
    "sandals": ("sandals", "slides", "strappy sandals"),
    "shirt": ("shirt", "button-down shirt", "oxford shirt"),
    "sneakers": ("sneakers", "trainers", "running shoes"),
    "bag": ("bag", "handbag", "tote bag", "shoulder bag"),
    "ankle boots": ("ankle boots", "booties", "chelsea boots"),
    # materials
    "cotton": ("cotton", "organic cotton", "cotton-blend"),
    "linen": ("linen", "pure linen"),
    "polyester": ("polyester", "poly"),
    "denim": ("denim", "stretch denim"),
    "wool": ("wool", "merino wool", "woollen"),
    "cashmere": ("cashmere",),
    "silk": ("silk", "satin silk"),
    "leather": ("leather", "genuine leather", "full-grain leather"),
    "suede": ("suede",),
    "canvas": ("canvas",),
    # styles
    "casual": ("casual", "everyday", "laid-back"),
    "formal": ("formal", "tailored", "dressy"),
    "sporty": ("sporty", "athletic", "athleisure"),
    "vintage": ("vintage", "retro"),
    "bohemian": ("bohemian", "boho"),
    "minimalist": ("minimalist", "minimal", "clean-cut"),
    # seasons
    "summer": ("summer",), "winter": ("winter",), "spring": ("spring",), "autumn": ("autumn", "fall"),
    # fits
    "slim": ("slim", "slim-fit", "skinny"), "regular": ("regular", "classic"),
    "relaxed": ("relaxed", "loose"), "oversized": ("oversized", "baggy"),
}

# how often each attribute is named in the title / in the description (independently)
MENTION_RATE = {
    "color": (0.30, 0.15),
    "material": (0.45, 0.40),
    "style": (0.30, 0.35),
    "season": (0.15, 0.40),
    "fit": (0.30, 0.30),
    "brand": (0.50, 0.0),
}
# Sentences about other products, as real listings have them: colour variants and cross-sells.
# Their attribute words are not this item's, so they fool lexical search; the lexicon teacher
# skips sentences with such cues (OTHER_PRODUCT_CUES in ml/attributes/lexicon.py).
CROSS_REFERENCES = {
    "variant": ("Also available in {color} and {color2}.", "Also comes in {color} and {color2}."),
    "pairing": ("Pairs well with our {color} {material} {category}.", "Wear it with our {color} {category}."),
    "look": ("Complete the look with a {style} {category}.", "Style it with a {material} {category}."),
}
FILLER = (
    "Machine washable.", "Free returns within 30 days.", "Ships in two days.", "A wardrobe staple.",
    "Designed in Lisbon.", "Ethically made.", "Model is 180 cm tall.", "Pairs with almost anything.",
)
