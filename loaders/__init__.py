"""Article files -> MongoDB documents.

One module per stage: ``discover`` (find files), ``read`` (bytes, size limit,
content hash), ``frontmatter`` (decode, split), ``yamlsafe`` (parse),
``normalize`` (the document shape), ``parse`` (those three together),
``write`` (bulk upserts), ``facets`` (provider/topic counts), ``report``;
``pipeline`` runs them.
"""

from loaders.pipeline import load_paths
from loaders.report import Failure, LoadReport

__all__ = ["Failure", "LoadReport", "load_paths"]
