-- edgecv job log, schema version 5: what the privacy filter did to an uploaded image (JSON, e.g.
-- {"detector": "centerface", "faces": "blur", "found": 2}); NULL for images sent before version 5.
ALTER TABLE sync_images ADD COLUMN privacy TEXT;
