//! The Kafka error codes a response carries, for `kafscale_request_errors_total{api,error}`:
//! the top-level code and every per-topic, per-partition or per-resource code, each counted
//! where it appears (a produce failing on 3 partitions counts 3).

use kafka_protocol::messages::*;

/// Pushes every non-zero error code of a response onto `out`.
pub trait ErrorCodes {
    fn error_codes(&self, out: &mut Vec<i16>);
}

fn push(out: &mut Vec<i16>, code: i16) {
    if code != 0 {
        out.push(code);
    }
}

/// Responses with one top-level code.
macro_rules! top_level {
    ($($t:ty),* $(,)?) => {$(
        impl ErrorCodes for $t {
            fn error_codes(&self, out: &mut Vec<i16>) {
                push(out, self.error_code);
            }
        }
    )*};
}

top_level!(
    ApiVersionsResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    ListGroupsResponse,
    DescribeClusterResponse,
    InitProducerIdResponse,
);

impl ErrorCodes for ProduceResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        for t in &self.responses {
            for p in &t.partition_responses {
                push(out, p.error_code);
            }
        }
    }
}

impl ErrorCodes for FetchResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        push(out, self.error_code);
        for t in &self.responses {
            for p in &t.partitions {
                push(out, p.error_code);
            }
        }
    }
}

impl ErrorCodes for MetadataResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        push(out, self.error_code);
        for t in &self.topics {
            push(out, t.error_code);
            for p in &t.partitions {
                push(out, p.error_code);
            }
        }
    }
}

impl ErrorCodes for ListOffsetsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        for t in &self.topics {
            for p in &t.partitions {
                push(out, p.error_code);
            }
        }
    }
}

impl ErrorCodes for CreateTopicsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        self.topics.iter().for_each(|t| push(out, t.error_code));
    }
}

impl ErrorCodes for DeleteTopicsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        self.responses.iter().for_each(|t| push(out, t.error_code));
    }
}

impl ErrorCodes for FindCoordinatorResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        push(out, self.error_code);
        self.coordinators
            .iter()
            .for_each(|c| push(out, c.error_code));
    }
}

impl ErrorCodes for LeaveGroupResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        push(out, self.error_code);
        self.members.iter().for_each(|m| push(out, m.error_code));
    }
}

impl ErrorCodes for OffsetCommitResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| push(out, p.error_code));
        }
    }
}

impl ErrorCodes for OffsetFetchResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        push(out, self.error_code);
        for t in &self.topics {
            t.partitions.iter().for_each(|p| push(out, p.error_code));
        }
        for g in &self.groups {
            push(out, g.error_code);
            for t in &g.topics {
                t.partitions.iter().for_each(|p| push(out, p.error_code));
            }
        }
    }
}

impl ErrorCodes for DescribeGroupsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        self.groups.iter().for_each(|g| push(out, g.error_code));
    }
}

impl ErrorCodes for DeleteGroupsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        self.results.iter().for_each(|g| push(out, g.error_code));
    }
}

impl ErrorCodes for OffsetDeleteResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        push(out, self.error_code);
        for t in &self.topics {
            t.partitions.iter().for_each(|p| push(out, p.error_code));
        }
    }
}

impl ErrorCodes for DescribeConfigsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        self.results.iter().for_each(|r| push(out, r.error_code));
    }
}

impl ErrorCodes for AlterConfigsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        self.responses.iter().for_each(|r| push(out, r.error_code));
    }
}

impl ErrorCodes for IncrementalAlterConfigsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        self.responses.iter().for_each(|r| push(out, r.error_code));
    }
}

impl ErrorCodes for CreatePartitionsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        self.results.iter().for_each(|r| push(out, r.error_code));
    }
}

impl ErrorCodes for DeleteRecordsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| push(out, p.error_code));
        }
    }
}

impl ErrorCodes for DescribeTopicPartitionsResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        for t in &self.topics {
            push(out, t.error_code);
            t.partitions.iter().for_each(|p| push(out, p.error_code));
        }
    }
}

impl ErrorCodes for OffsetForLeaderEpochResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| push(out, p.error_code));
        }
    }
}

impl ErrorCodes for DescribeProducersResponse {
    fn error_codes(&self, out: &mut Vec<i16>) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| push(out, p.error_code));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_codes_are_counted_where_they_appear() {
        let mut resp = ProduceResponse::default();
        let mut topic = produce_response::TopicProduceResponse::default();
        for code in [0, 6, 6] {
            let mut p = produce_response::PartitionProduceResponse::default();
            p.error_code = code;
            topic.partition_responses.push(p);
        }
        resp.responses.push(topic);
        let mut out = Vec::new();
        resp.error_codes(&mut out);
        assert_eq!(out, vec![6, 6]);
    }
}
