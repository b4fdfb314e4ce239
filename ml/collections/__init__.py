"""Collections (PinLanding phase 2): topics from attribute combinations and embedding clusters,
titles, ranked feeds, the quality bar, the search-log baseline, metrics and the HTML gallery."""
