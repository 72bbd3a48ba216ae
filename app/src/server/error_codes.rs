//! The Kafka error codes a response carries, for `kafscale_request_errors_total{api,error}`:
//! the top-level code and every per-topic, per-partition or per-resource code, each counted
//! where it appears (a produce failing on 3 partitions counts 3). Where each response carries
//! them is listed in the API table (`apis.rs`), which implements this trait for each.

/// Pushes every non-zero error code of a response onto `out`.
pub trait ErrorCodes {
    fn error_codes(&self, out: &mut Vec<i16>);
}

pub(super) fn push(out: &mut Vec<i16>, code: i16) {
    if code != 0 {
        out.push(code);
    }
}
