"""Article files -> MongoDB documents, one module per stage.

- ``discover``: find article files under the given paths
- ``paths``: a path's text, for the store and reports (and back)
- ``read``: a regular file's bytes, under the size limit, and its content hash
- ``frontmatter``: decode the text and split front matter from body
- ``yamlsafe``: parse the front matter as restricted YAML
- ``normalize``: give it the document shape of ``core.document``
- ``parse``: one file's bytes -> a document, or ``errors.Rejected``
- ``errors``: ``Rejected``, why a file was not loaded
- ``parallel``: parse batches in worker processes; typed outcomes
- ``poolsignals``: Ctrl-C and SIGTERM, the loader's to act on, not its pool's
- ``stored``: a snapshot of what the store holds (SQLite)
- ``manifest``: that snapshot kept in the store, packed, for a cheap reload
- ``lease``: one loader at a time writes to a database
- ``news``: stamp what a batch makes news, for subscriptions
- ``write``: bulk inserts and replaces
- ``facets``: provider and topic counts
- ``purge``: the cache keys each write changes, sent to the purge hook
- ``report``: ``LoadReport``, ``Failure`` and the printed summary
- ``pipeline``: the ``Loader`` that runs the stages in batches
- ``progress``: how far a load in this process has got, for ``/readyz``
- ``watch``: keep the store in step with changing folders
"""

from loaders.pipeline import load_paths
from loaders.report import Failure, LoadReport

__all__ = ["Failure", "LoadReport", "load_paths"]
