"""A partitioner in Python: a record goes to the sum of its key's bytes modulo the
partition count; keyless records go to partition 0.

Built with componentize-py (see build-plugin.sh); the `wit_world` package is generated
from wit/plugin.wit at build time.
"""

from typing import List, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, types


class WitWorld(wit_world.WitWorld):
    def init(self, config: List[Tuple[str, str]]) -> types.Parts:
        log.log(log.Level.INFO, f"py-key-sum ready with {len(config)} parameters")
        return types.Parts.KEYS

    def partition(self, batch: types.RecordBatch, partition_count: int) -> List[int]:
        if partition_count == 0:
            raise Err(types.Error_Failed("the topic has no partitions"))
        data = batch.data
        out = []
        for span in batch.keys:
            if span is None:
                out.append(0)
            else:
                out.append(sum(data[span.offset:span.offset + span.len]) % partition_count)
        return out
