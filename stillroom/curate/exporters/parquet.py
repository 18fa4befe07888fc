"""Parquet: columns id, task, messages (JSON text), meta (JSON text), question, answer.

Arrow batches from the store go straight into the file; row groups have a fixed size so the bytes do
not depend on how the store was read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from stillroom.curate.exporters import EXPORTERS, Exporter

ROW_GROUP = 50_000


@EXPORTERS.register("parquet")
class Parquet(Exporter):
    suffix = ".parquet"

    def write(self, path: Path, batches: Iterable[Any]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([(c, pa.string()) for c in ("id", "task", "messages", "meta", "question", "answer")])
        n, pending, held = 0, [], 0
        with pq.ParquetWriter(path, schema, compression="zstd") as writer:
            for batch in batches:
                pending.append(batch.cast(schema))
                held += batch.num_rows
                n += batch.num_rows
                if held >= ROW_GROUP:
                    table = pa.Table.from_batches(pending, schema)
                    full = held - held % ROW_GROUP
                    writer.write_table(table.slice(0, full), row_group_size=ROW_GROUP)
                    pending, held = table.slice(full).to_batches(), held - full
            if held or n == 0:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=ROW_GROUP)
        return n
