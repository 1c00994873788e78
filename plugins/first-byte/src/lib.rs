//! A partitioner written against `wit/` with plain wit-bindgen, no helper crate: what a
//! plugin in any language sees. A record goes to its key's first byte modulo the
//! partition count; keyless and empty keys go to partition 0.

// The generated lowering of `record-batch` takes one argument per flattened field.
#![allow(clippy::too_many_arguments)]

// The world `use`s its types, so they are generated at the top of this module.
wit_bindgen::generate!({ path: "../../wit", world: "partitioner" });

struct FirstByte;

impl Guest for FirstByte {
    fn init(_config: Vec<(String, String)>) -> Result<Parts, Error> {
        Ok(Parts::KEYS)
    }

    fn partition(batch: RecordBatch, partition_count: u32) -> Result<Vec<u32>, Error> {
        if partition_count == 0 {
            return Err(Error::Failed("the topic has no partitions".into()));
        }
        Ok(batch
            .keys
            .iter()
            .map(|key| {
                let first = key
                    .filter(|s| s.len > 0)
                    .and_then(|s| batch.data.get(s.offset as usize));
                first.map_or(0, |b| u32::from(*b) % partition_count)
            })
            .collect())
    }
}

export!(FirstByte);
