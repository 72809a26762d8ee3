"""Training data: the SRS benchmark format, licence-clean synthetic items, the in-memory sticker bank,
batching, and the lexicon emotion taggers that label what the benchmarks leave unlabelled.

The SRS item format is re-exported here (`from training.data import SRSItem, load_srs`) because every
data source and benchmark command speaks it.
"""

from training.data.srs import DataError, SRSItem, item_to_record, iter_srs, load_srs, parse_item, write_srs

__all__ = ["DataError", "SRSItem", "item_to_record", "iter_srs", "load_srs", "parse_item", "write_srs"]
