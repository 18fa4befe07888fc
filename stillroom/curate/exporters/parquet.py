"""Parquet: columns id, task, messages (JSON text), meta (JSON text), question, answer.

Arrow batches from the store go into the file a row group at a time: each row group has a fixed number of rows
and is made contiguous before it is written, so the bytes do not depend on how the store cut its batches (which
varies with its thread count and the batch size).
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
                while held >= ROW_GROUP:
                    table = pa.Table.from_batches(pending, schema)
                    writer.write_table(table.slice(0, ROW_GROUP).combine_chunks(), row_group_size=ROW_GROUP)
                    pending, held = table.slice(ROW_GROUP).to_batches(), held - ROW_GROUP
            if held or n == 0:
                writer.write_table(pa.Table.from_batches(pending, schema).combine_chunks(), row_group_size=ROW_GROUP)
        return n
