"""Collections at scale: topics + feeds for 1M synthetic items (target: < 120 s, peak RSS < 6 GB)."""

from benchmarks.measure import run_case


def main() -> None:
    for items in (100_000, 1_000_000):
        figures = run_case("benchmarks.collections_case", "--items", str(items))
        print(f"collections {items:>9,} items: topics+feeds {figures['topics_and_feeds_s']} s (wall {figures['wall_s']} s incl. "
              f"{figures['synthetic_data_s']} s synthetic data), peak RSS {figures['peak_rss_mb']:.0f} MB; {figures['topics']} topics, "
              f"{figures['published']} published, item coverage {figures['item_coverage']}; stages {figures['stages_s']}", flush=True)


if __name__ == "__main__":
    main()
