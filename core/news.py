"""What is new: how a loader tells the API, through the store alone, which
articles just became news (``Subscription.articlePublished``), and that the
stored articles changed at all (for answers a worker keeps).

An article is *news* when it arrives (its ``_id`` was not stored) and when it
is published after being held back (``published: false`` -> ``true``). The
loader stamps each document it writes with :data:`NEWS_SEQ`: the sequence
number of the write that last made it news, carried over unchanged by every
other write (an edit of a published article is not news). Then, once a
batch is written, it raises the marker :data:`MARKER_ID` in the loaders'
collection to that batch's number. So, for any ``w`` read from the marker,
the articles that became news after a reader's last ``w0`` are exactly those
with ``w0 < newsSeq <= w``, and they are all written: a reader (one poll per
API worker) asks for them with one indexed query, and a marker that has not
moved costs it one lookup by ``_id``, which every engine answers from an
index (FerretDB v1 scans for anything else).

Numbers must grow in the order writes happen, across loaders on other hosts
and without trusting their clocks: loaders write one at a time under their
lease (``loaders.lease``), whose generation each holder that writes bumps, so
a number is that generation with the holder's batch count below it.
A reload of unchanged files writes nothing, so it makes nothing news.

Every write that changes stored articles in any way (news or not: an edit, a
move, a delete) also adds one to the marker's :data:`CHANGED_FIELD`, after
those articles are written or deleted. It shares the news marker's document
so that one lookup by ``_id`` per poll tells a worker both whether anything
is news and whether anything changed. Readers compare it only for
inequality: a database replaced (or its marker dropped) may set it back, or
to the very count it had (a database loaded afresh in as many writes), so
the marker's document also carries :data:`EPOCH_FIELD`, set when the
document is made: readers compare the two together.
"""

from __future__ import annotations

#: Where a stored article keeps the number of the write that last made it news.
NEWS_SEQ = "_source.newsSeq"
#: The marker's ``_id``, in the loaders' collection (``core.indexes.LOADER``).
MARKER_ID = "news"
#: The marker's field: every article with a newsSeq up to it is written.
MARKER_FIELD = "written"
#: The marker's count of writes that changed stored articles: a reader that
#: sees it differ from what it last read and reads again finds the change.
CHANGED_FIELD = "changed"
#: A random id the marker's document gets when it is made: a count read equal
#: in a database that replaced the one read before is told apart by it.
EPOCH_FIELD = "epoch"
#: Batches one holding of the lease may number (2**20 batches of 500 files).
BATCH_BITS = 20


def sequence(generation: int, batch: int) -> int:
    """The number of the ``batch``-th write (from 1) of the lease holding
    ``generation``: larger than every number of earlier holdings."""
    if not 0 < batch < 2**BATCH_BITS:
        raise ValueError(f"batch {batch} is out of range for one holding of the lease")
    return (generation << BATCH_BITS) | batch
