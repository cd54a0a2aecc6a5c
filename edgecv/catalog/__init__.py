"""The product catalogue: name shelf products by matching them against a store's reference images.

``folder`` reads and writes ``catalog/<SKU id>/*.jpg`` + ``sku.json``; ``features`` turns a product crop
into an embedding; ``matching`` finds the nearest SKU (open set: below a threshold, "unknown product");
``index`` keeps the embeddings cached under the data dir and reloads a changed folder in a running agent;
``service`` is what the CLI and the API do with it. The demo catalogue of the shelf generator's 24 SKUs
ships in ``demo/`` (``DEMO``).
"""

from pathlib import Path

DEMO = Path(__file__).resolve().parent / "demo"
