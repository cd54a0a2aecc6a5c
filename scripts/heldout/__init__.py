"""Held-out evaluation sets built apart from the training generator (``scripts/datagen``), whose drawing
code is never imported here: photo and procedural negatives (``negatives``) and a second, plainer drawing
style of shelves (``shelves_plain``), and a new class set on facades for custom training (``facade_kinds``);
``yolo`` writes a set as a YOLO folder for all of them. See docs/training.md, "Held-out evaluation"."""
