//! `status.conditions` as Kubernetes writes them (`meta/v1` Condition), so `kubectl wait
//! --for=condition=Ready` works on every KafScale resource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The one condition every resource reports.
pub const READY: &str = "Ready";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
}

impl ConditionStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
        }
    }
}

/// The `Ready` condition to write, given the conditions the object has now. The transition
/// time moves only when the status does: readers use it to tell how long a resource has
/// been (not) ready, not when it was last reconciled.
pub fn ready(
    previous: &[Condition],
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let since = previous
        .iter()
        .find(|c| c.type_ == READY && c.status == status.as_str())
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: READY.to_owned(),
        status: status.as_str().to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let first = ready(&[], ConditionStatus::False, "Starting", "0 of 3", Some(1));
        let same = ready(
            std::slice::from_ref(&first),
            ConditionStatus::False,
            "Starting",
            "1 of 3",
            Some(1),
        );
        assert_eq!(same.last_transition_time, first.last_transition_time);
        assert_eq!(same.message, "1 of 3");
        let flipped = ready(
            std::slice::from_ref(&first),
            ConditionStatus::True,
            "Ready",
            "",
            Some(1),
        );
        assert_eq!(flipped.status, "True");
        assert!(flipped.last_transition_time >= first.last_transition_time);
    }
}
