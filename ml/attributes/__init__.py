"""Product attributes: taxonomy, teachers (lexicon, VLM), vocabulary curation, assignment."""
