"""Group readers for fairness metrics: the demo's colour group reader (people fairness readers
for production follow in the evaluation issue)."""
