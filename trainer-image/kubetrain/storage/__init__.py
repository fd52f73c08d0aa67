"""Where data and checkpoints live: a local directory or an object store (s3://, gs://, http(s)://).

`remote` opens object-store locations through fsspec (obstore's fsspec layer) and names their
errors in one line; `fetch` copies remote data into a local cache; `checkpoint_store` is the small
interface the checkpointer writes through (a local directory or a bucket prefix).
"""
