//! SCRAM users, kept in the metadata store so that every broker sees a change at once: one
//! record per user holding a credential per mechanism. Only what RFC 5802 calls the stored
//! key and the server key are kept, with the salt and iteration count: never a password,
//! nor anything a client could log in with.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ports::metadata::{decode_json, encode_json, MetadataStoreExt};
use crate::ports::{Compare, MetadataError, MetadataStore, Txn, TxnOp};
use crate::schema::keys;

/// A SCRAM credential of one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// A user's credentials, by mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub scram: BTreeMap<String, ScramCredential>,
}

/// A change to one user's credential of one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialChange {
    Upsert(ScramCredential),
    Delete,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {user} has no {mechanism} credential")]
    NoSuchCredential { user: String, mechanism: String },
    #[error(transparent)]
    Store(#[from] MetadataError),
}

/// The user's record, if it exists.
pub async fn get(
    store: &dyn MetadataStore,
    user: &str,
) -> Result<Option<UserRecord>, MetadataError> {
    Ok(store
        .get_json::<UserRecord>(&keys::user(user))
        .await?
        .map(|(record, _)| record))
}

/// Every user, by name.
pub async fn list(
    store: &dyn MetadataStore,
) -> Result<BTreeMap<String, UserRecord>, MetadataError> {
    let mut out = BTreeMap::new();
    for kv in store.range(&keys::users_prefix()).await?.kvs {
        if let Some(name) = keys::parse_user(&kv.key) {
            out.insert(name, decode_json(&kv)?);
        }
    }
    Ok(out)
}

/// Applies a change with compare-and-swap on the record, so that concurrent changes to
/// other mechanisms of the same user are not lost. A user left with no credential is
/// deleted.
pub async fn change(
    store: &dyn MetadataStore,
    user: &str,
    mechanism: &str,
    change: CredentialChange,
) -> Result<(), UserError> {
    let key = keys::user(user);
    loop {
        let current = store.get_json::<UserRecord>(&key).await?;
        let (mut record, revision) = match current {
            Some((record, kv)) => (record, kv.mod_revision),
            None => (UserRecord::default(), 0),
        };
        match &change {
            CredentialChange::Upsert(credential) => {
                record
                    .scram
                    .insert(mechanism.to_owned(), credential.clone());
            }
            CredentialChange::Delete => {
                if record.scram.remove(mechanism).is_none() {
                    return Err(UserError::NoSuchCredential {
                        user: user.to_owned(),
                        mechanism: mechanism.to_owned(),
                    });
                }
            }
        }
        let value = (!record.scram.is_empty()).then(|| encode_json(&record));
        if store
            .compare_and_replace(&key, revision, value)
            .await?
            .succeeded
        {
            return Ok(());
        }
    }
}

/// The secret every broker seeds unknown users' decoy salts with: the stored one, or
/// `fresh` stored now if there is none yet. A per-broker secret would show a different
/// salt for an unknown user on each broker and a constant one for a real user, telling
/// them apart.
pub async fn decoy_secret(
    store: &dyn MetadataStore,
    fresh: Vec<u8>,
) -> Result<Vec<u8>, MetadataError> {
    let key = keys::scram_decoy_secret();
    loop {
        if let Some(kv) = store.get(&key).await? {
            return Ok(kv.value.to_vec());
        }
        let txn = Txn::new()
            .when(Compare::ModRevision {
                key: key.clone(),
                revision: 0,
            })
            .then(TxnOp::Put {
                key: key.clone(),
                value: fresh.clone().into(),
                lease: None,
            });
        if store.txn(txn).await?.succeeded {
            return Ok(fresh);
        }
    }
}
