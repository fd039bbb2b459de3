"""Reading container images without unpacking them: references and transports
(`reference.py`), manifests, indexes and configs (`manifest.py`), the image sources
(`sources.py`: OCI layouts, OCI and docker archives, the store), the streaming walk of a
layer's entries with its whiteouts (`layers.py`), and the content-addressed store
(`store.py`).

Between the parsers and the front ends in the layers: the audit of images and the runtime
both build on it. Standard library only, and nothing is imported here: each caller imports
the module it needs.
"""
