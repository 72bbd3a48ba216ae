//! `kafscale transactions ...`: ListTransactions on every broker (each coordinates its own
//! transactional ids); DescribeTransactions at the id's transaction coordinator.

use clap::Subcommand;
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use serde_json::json;

use super::client::{backoff, is_retriable, str_bytes, CliError, Client, CoordinatorKey, ATTEMPTS};
use super::table::{fields, Table};
use super::Output;

#[derive(Subcommand, Debug)]
pub enum TransactionsCommand {
    /// List transactional ids with their producer id and state
    List,
    /// State, producer id and epoch, timeout, start time and partitions of a transactional id
    Describe { transactional_id: String },
}

pub async fn run(client: &mut Client, cmd: TransactionsCommand) -> Result<Output, CliError> {
    match cmd {
        TransactionsCommand::List => list(client).await,
        TransactionsCommand::Describe { transactional_id } => {
            describe(client, &transactional_id).await
        }
    }
}

async fn list(client: &mut Client) -> Result<Output, CliError> {
    client.metadata(Some(&[])).await?;
    let ids: Vec<i32> = client.brokers().map(|b| b.id).collect();
    let mut rows: Vec<(String, i64, String, i32)> = Vec::new();
    for id in ids {
        let conn = client.broker(id).await?;
        let v = conn.version(ApiKey::ListTransactions, 0..=1, "transactions list")?;
        let mut req = ListTransactionsRequest::default();
        req.duration_filter = -1;
        let resp = conn.call(v, &req).await?;
        if resp.error_code != 0 {
            return Err(CliError::kafka(
                format!("ListTransactions on broker {id}"),
                resp.error_code,
                None,
            ));
        }
        for t in resp.transaction_states {
            rows.push((
                t.transactional_id.to_string(),
                t.producer_id.0,
                t.transaction_state.to_string(),
                id,
            ));
        }
    }
    rows.sort();
    let mut table = Table::new(&["TRANSACTIONAL ID", "PRODUCER ID", "STATE", "COORDINATOR"]);
    let mut items = Vec::new();
    for (tid, pid, state, broker) in &rows {
        table.row(vec![
            tid.clone(),
            pid.to_string(),
            state.clone(),
            broker.to_string(),
        ]);
        items.push(json!({
            "transactional_id": tid, "producer_id": pid, "state": state, "coordinator": broker,
        }));
    }
    Ok(Output {
        text: if rows.is_empty() {
            "no transactional ids\n".into()
        } else {
            table.render()
        },
        json: json!({ "transactions": items }),
    })
}

async fn describe(client: &mut Client, tid: &str) -> Result<Output, CliError> {
    for attempt in 0..ATTEMPTS {
        let coordinator = client
            .coordinator_of(CoordinatorKey::Transaction, tid)
            .await?;
        let conn = client.broker(coordinator).await?;
        let v = conn.version(ApiKey::DescribeTransactions, 0..=0, "transactions describe")?;
        let mut req = DescribeTransactionsRequest::default();
        req.transactional_ids = vec![TransactionalId(str_bytes(tid))];
        let resp = conn.call(v, &req).await?;
        let Some(t) = resp.transaction_states.into_iter().next() else {
            return Err(CliError::Invalid(
                "empty DescribeTransactions response".into(),
            ));
        };
        if is_retriable(t.error_code) && attempt + 1 < ATTEMPTS {
            backoff(attempt).await;
            continue;
        }
        if t.error_code != 0 {
            return Err(CliError::kafka(
                format!("transactional id {tid}"),
                t.error_code,
                None,
            ));
        }
        let partitions: Vec<String> = t
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(move |p| format!("{}-{p}", topic.topic.0))
            })
            .collect();
        let start = (t.transaction_start_time_ms >= 0).then_some(t.transaction_start_time_ms);
        let text = fields(&[
            ("transactional id", tid.to_owned()),
            ("coordinator", coordinator.to_string()),
            ("state", t.transaction_state.to_string()),
            ("producer id", t.producer_id.0.to_string()),
            ("producer epoch", t.producer_epoch.to_string()),
            ("timeout ms", t.transaction_timeout_ms.to_string()),
            (
                "started ms",
                start.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            ),
            ("partitions", partitions.join(", ")),
        ]);
        return Ok(Output {
            text,
            json: json!({
                "transactional_id": tid,
                "coordinator": coordinator,
                "state": t.transaction_state.to_string(),
                "producer_id": t.producer_id.0,
                "producer_epoch": t.producer_epoch,
                "timeout_ms": t.transaction_timeout_ms,
                "start_time_ms": start,
                "partitions": partitions,
            }),
        });
    }
    Err(CliError::Invalid(format!(
        "transactional id {tid}: coordinator not available"
    )))
}
