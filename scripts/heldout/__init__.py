"""Held-out evaluation sets built apart from the training generator (``scripts/datagen``), whose drawing
code is never imported here: photo and procedural negatives (``negatives``) and a second, plainer drawing
style of shelves (``shelves_plain``). See docs/training.md, "Held-out evaluation"."""
