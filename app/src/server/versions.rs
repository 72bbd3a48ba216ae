//! The API versions this broker speaks: the intersection of what the kafka-protocol decoders
//! accept and what the handlers implement, with floors low enough for kafkajs, aiokafka and
//! older librdkafka. The ranges are rows of the API table (`apis.rs`).

use kafka_protocol::messages::ApiKey;

pub use super::apis::SUPPORTED;

pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_versions_are_decodable() {
        for (key, min, max) in SUPPORTED {
            let decodable = key.valid_versions();
            assert!(*max <= decodable.max, "{key:?}");
            // Produce below v3 is advertised on purpose and refused on use.
            if *key != ApiKey::Produce {
                assert!(*min >= decodable.min, "{key:?}");
            }
        }
    }
}
