//! What the broker reads back from its own stores, treated as hostile: checkpoint objects
//! (a section fetched by range, and the directory garbage collection reads) and the binary
//! records of the metadata store (flush records, checkpoints, segments, committed offsets).
//! Each decodes or fails with an error; none panics or allocates by a count the input
//! cannot hold.
#![no_main]
use kafscale_core::checkpoint_format;
use kafscale_core::schema::records::OffsetRecord;
use kafscale_core::schema::{Checkpoint, FlushRecord, SegmentRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = checkpoint_format::decode_section(data);
    let _ = checkpoint_format::read_section(data, crc32c::crc32c(data));
    let _ = checkpoint_format::referenced_objects(data);
    let _ = FlushRecord::decode(data);
    let _ = Checkpoint::decode(data);
    let _ = SegmentRecord::decode(data);
    let _ = OffsetRecord::decode(data);
});
