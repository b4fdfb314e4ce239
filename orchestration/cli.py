"""`shopwindow`: ingest a catalog file, run the demo, or prepare the state folder."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from orchestration.profiles import load_profile, prepare_home



def _built_config(manifest: Path) -> dict | None:
    """The config the demo catalog at `manifest` was built with; None where there is none to
    trust (missing, half-written or from another version): the catalog is then rebuilt."""
    try:
        return json.loads(manifest.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None

def _definitions_and_instance(profile):
    prepare_home(profile)
    os.environ["DAGSTER_HOME"] = str(profile.dagster_home)
    from dagster import DagsterInstance

    from orchestration.definitions import build_definitions

    return build_definitions(profile), DagsterInstance.get()


def _print_outcome(outcome, as_json: bool) -> int:
    data = outcome.as_json()
    if outcome.error:
        print(f"error: snapshot {outcome.snapshot}: {outcome.error}", file=sys.stderr)
    if outcome.figures:
        reasons = ", ".join(f"{k} {v}" for k, v in data["reasons"].items()) or "none"
        print(f"snapshot {outcome.snapshot}: {data['rows']} rows -> {data['items']} items, "
              f"{data['quarantined']} quarantined ({reasons}); {data['items_per_s']} rows/s")
    if outcome.checks:
        print("checks: " + ", ".join(f"{k} {'passed' if v else 'FAILED'}" for k, v in sorted(outcome.checks.items())))
    if as_json:
        print(json.dumps(data, sort_keys=True))
    return 0 if outcome.success else 1


def cmd_init(args) -> int:
    profile = load_profile(args.profile)
    home = prepare_home(profile)
    print(f"state root {profile.home}\nDAGSTER_HOME={home}\nMLflow tracking {profile.tracking_uri}")
    return 0


def cmd_ingest(args) -> int:
    from ml.catalog.contract import CatalogFormatError

    from orchestration.runner import ingest_file

    profile = load_profile(args.profile)
    defs, instance = _definitions_and_instance(profile)
    try:
        outcome = ingest_file(defs, instance, args.path)
    except (CatalogFormatError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"success": False, "error": str(exc)}))
        return 2
    return _print_outcome(outcome, args.json)


# when the demo's RL should end at the latest, counted from the demo's start: its 20 minutes less what runs after RL (RL's
# evaluation, the collection report, bias and preference evaluation: 1.9-2.4 min) and a margin. GenerationResource.rl_deadline
DEMO_RL_ENDS_BY_MINUTES = 17.5


def cmd_demo(args) -> int:
    from ml.catalog.demo import MANIFEST_FILE, DemoCatalogConfig, build_demo_catalog
    from ml.catalog.fashion_mnist import FashionMnistMissing
    from ml.tracking.summary import update_summary

    from orchestration.runner import ingest_file

    profile = load_profile(args.profile, env={"SHOPWINDOW_RL_DEADLINE": str(time.time() + 60 * DEMO_RL_ENDS_BY_MINUTES), **os.environ})
    started = time.perf_counter()
    config = DemoCatalogConfig(limit=args.limit)
    demo_dir = profile.home / "demo" / "catalog"
    manifest = demo_dir / MANIFEST_FILE
    if args.rebuild or _built_config(manifest) != config.model_dump(mode="json"):
        print(f"building the demo catalog in {demo_dir} ...", flush=True)
        try:
            build_demo_catalog(demo_dir, config)
        except FashionMnistMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    build_seconds = time.perf_counter() - started
    defs, instance = _definitions_and_instance(profile)
    outcome = ingest_file(defs, instance, str(demo_dir / "catalog.csv"), job="pipeline_job")
    status = _print_outcome(outcome, as_json=False)
    summary = update_summary(profile.summary_path, {"demo": {"profile": profile.name, "catalog_build_seconds": round(build_seconds, 1),
                                                            "total_seconds": round(time.perf_counter() - started, 1)}})
    print(f"\nsummary: {profile.summary_path}\n{json.dumps(summary, indent=2)}")
    generation = summary.get("generation", {})
    cut = [f"{name} {generation[done]} of {generation[budget]}" for name, done, budget, flag in
           (("UNet steps", "unet_steps", "unet_steps_budget", "unet_cut_by_time"), ("RL iterations", "iterations", "iterations_budget", "rl_cut_by_time"))
           if generation.get(flag)]
    if cut:
        print(f"\nnote: the time caps cut the generator's step budgets ({', '.join(cut)}): this machine ran slower than the "
              "budgets assume, so the evaluation's targets may be missed for that reason. SHOPWINDOW_BASE_MINUTES and "
              "SHOPWINDOW_RL_MINUTES raise the caps.")
    if summary.get("collections", {}).get("gallery"):
        print(f"\nCollections gallery (open in a browser): file://{summary['collections']['gallery']}")
    print("\nOpen the UIs:\n  make ui         Dagster  http://127.0.0.1:3000  (assets, checks, runs, sensors)\n"
          "  make mlflow-ui  MLflow   http://127.0.0.1:5000  (experiment shopwindow-demo)")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shopwindow", description=__doc__)
    parser.add_argument("--profile", choices=["demo", "production"], default=None, help="default: $SHOPWINDOW_PROFILE or demo")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the state folder and dagster.yaml").set_defaults(func=cmd_init)
    ingest = sub.add_parser("ingest", help="materialise the catalog assets for one catalog file")
    ingest.add_argument("path", help="CSV, Parquet or JSONL catalog: a local path or fsspec URL")
    ingest.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ingest.set_defaults(func=cmd_ingest)
    demo = sub.add_parser("demo", help="build the demo catalog and run the pipeline on it")
    demo.add_argument("--limit", type=int, default=None, help="first N Fashion-MNIST images per split (quick try)")
    demo.add_argument("--rebuild", action="store_true", help="rebuild the demo catalog even if it exists")
    demo.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
