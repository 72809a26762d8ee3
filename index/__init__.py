"""The sticker index: embed a catalogue (build), versioned storage (store), FAISS search (search).

`python -m index build|update|rebuild`; `index.search.load_index(root)` for readers.
"""
