"""Group readers and statistics for fairness metrics: the demo's colour reader, the production
people readers (faces, gender, skin tone by ITA) and parity statistics."""
