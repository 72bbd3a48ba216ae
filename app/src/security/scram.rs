//! SCRAM (RFC 5802, RFC 7677) as Kafka uses it: SHA-256 and SHA-512, no channel binding,
//! at least 4096 iterations. The server side checks a client's proof against the stored
//! key alone; the client side (`ScramClient`) is what the CLI and the tests log in with.

use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kafscale_core::users::ScramCredential;
use std::num::NonZeroU32;

/// Kafka refuses credentials with fewer iterations, and so does this broker.
pub const MIN_ITERATIONS: u32 = 4096;
/// Kafka's upper bound, which keeps a login from costing a broker seconds of CPU.
pub const MAX_ITERATIONS: u32 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha512 => 64,
        }
    }
}

fn mac(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hash.hmac(), key), data)
        .as_ref()
        .to_vec()
}

/// Hi(password, salt, i) of RFC 5802.
pub fn salted_password(hash: Hash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; hash.output_len()];
    let rounds = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(hash.pbkdf2(), rounds, salt, password, &mut out);
    out
}

/// The credential a salted password gives; the password itself is not kept.
pub fn credential(hash: Hash, salted: &[u8], salt: &[u8], iterations: u32) -> ScramCredential {
    let client_key = mac(hash, salted, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        iterations,
        stored_key: digest::digest(hash.digest(), &client_key).as_ref().to_vec(),
        server_key: mac(hash, salted, b"Server Key"),
    }
}

/// A credential from a password, with a fresh random salt.
pub fn new_credential(hash: Hash, password: &str, iterations: u32) -> ScramCredential {
    let salt = random_bytes(16);
    let salted = salted_password(hash, password.as_bytes(), &salt, iterations);
    credential(hash, &salted, &salt, iterations)
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    // The system RNG does not fail on the platforms this runs on; if it ever did, a zero
    // nonce would still not let a client in without the key.
    let _ = aws_lc_rs::rand::fill(&mut out);
    out
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an exchange failed. Clients only ever see "authentication failed": a wrong password
/// and an unknown user must not be told apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unsupported SCRAM extension or channel binding")]
    Unsupported,
    #[error("invalid credentials")]
    InvalidCredentials,
}

/// `saslname` of RFC 5802: `=2C` is a comma, `=3D` an equals sign.
fn decode_name(text: &str) -> Result<String, ScramError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The attributes of a message, `k=value` separated by commas.
fn attribute<'a>(parts: &[&'a str], key: char) -> Option<&'a str> {
    parts.iter().find_map(|p| {
        let mut chars = p.chars();
        (chars.next() == Some(key) && chars.next() == Some('=')).then(|| &p[2..])
    })
}

/// The client's first message, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub user: String,
    nonce: String,
    /// `n,,` or `n,a=...,`: sent back base64-encoded in the final message.
    gs2_header: String,
    bare: String,
}

pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header: channel binding flag, optional authzid, then the bare message.
    let (flag, rest) = text
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    if flag == "p" || flag.starts_with("p=") {
        return Err(ScramError::Unsupported);
    }
    if flag != "n" && flag != "y" {
        return Err(ScramError::Malformed("bad channel binding flag"));
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    let gs2_header = format!("{flag},{authzid},");
    let parts: Vec<&str> = bare.split(',').collect();
    if parts.first().is_some_and(|p| p.starts_with("m=")) {
        return Err(ScramError::Unsupported);
    }
    let user = decode_name(attribute(&parts, 'n').ok_or(ScramError::Malformed("no user name"))?)?;
    // Kafka's delegation tokens log in with a `tokenauth` extension; there are none here.
    if parts.iter().any(|p| p.starts_with("tokenauth")) {
        return Err(ScramError::Unsupported);
    }
    let nonce = attribute(&parts, 'r')
        .filter(|n| !n.is_empty())
        .ok_or(ScramError::Malformed("no nonce"))?;
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if decode_name(authzid)? != user {
            return Err(ScramError::Unsupported);
        }
    }
    Ok(ClientFirst {
        user,
        nonce: nonce.to_owned(),
        gs2_header,
        bare: bare.to_owned(),
    })
}

/// The server between its first message and the client's final one.
#[derive(Debug)]
pub struct ServerPending {
    hash: Hash,
    first: ClientFirst,
    server_first: String,
    nonce: String,
    /// `None`: no such user; the exchange runs to the end and then fails like a wrong
    /// password would.
    credential: Option<ScramCredential>,
}

/// A salt and iteration count for a user who does not exist, the same on every attempt (a
/// changing salt would tell an attacker the user is unknown).
fn decoy(hash: Hash, secret: &[u8], user: &str) -> ScramCredential {
    let salt = mac(hash, secret, user.as_bytes())[..16].to_vec();
    ScramCredential {
        salt,
        iterations: MIN_ITERATIONS,
        stored_key: Vec::new(),
        server_key: Vec::new(),
    }
}

/// The server's first message. `secret` seeds the decoy salt of unknown users.
pub fn server_first(
    hash: Hash,
    first: ClientFirst,
    credential: Option<ScramCredential>,
    secret: &[u8],
) -> (Vec<u8>, ServerPending) {
    let nonce = format!("{}{}", first.nonce, B64.encode(random_bytes(18)));
    let shown = credential
        .clone()
        .unwrap_or_else(|| decoy(hash, secret, &first.user));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&shown.salt),
        shown.iterations
    );
    let message = server_first.clone().into_bytes();
    (
        message,
        ServerPending {
            hash,
            first,
            server_first,
            nonce,
            credential,
        },
    )
}

impl ServerPending {
    pub fn user(&self) -> &str {
        &self.first.user
    }

    /// Checks the client's proof; on success, the server's final message.
    pub fn finish(self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let parts: Vec<&str> = without_proof.split(',').collect();
        let binding = attribute(&parts, 'c').ok_or(ScramError::Malformed("no channel binding"))?;
        if B64.decode(binding).ok().as_deref() != Some(self.first.gs2_header.as_bytes()) {
            return Err(ScramError::Malformed("channel binding does not match"));
        }
        // Kafka accepts a final nonce that ends with the server's, and librdkafka 2.0 (as
        // Debian's kcat links it) sends its own nonce in front of the server's whole one: so
        // do we. The server's random part is still required, which keeps the exchange fresh.
        if !attribute(&parts, 'r').is_some_and(|n| n.ends_with(self.nonce.as_str())) {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let credential = self.credential.ok_or(ScramError::InvalidCredentials)?;
        let auth_message = format!("{},{},{without_proof}", self.first.bare, self.server_first);
        let signature = mac(self.hash, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key = xor(&proof, &signature);
        let stored = digest::digest(self.hash.digest(), &client_key);
        if !same(stored.as_ref(), &credential.stored_key) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = mac(self.hash, &credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The client side of an exchange.
#[derive(Debug)]
pub struct ScramClient {
    hash: Hash,
    password: String,
    nonce: String,
    bare: String,
    /// Set once the server's first message is answered: what its final message must prove.
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(hash: Hash, user: &str, password: &str) -> ScramClient {
        let nonce = B64.encode(random_bytes(18));
        ScramClient {
            hash,
            password: password.to_owned(),
            bare: format!("n={},r={nonce}", encode_name(user)),
            nonce,
            expected_server_signature: None,
        }
    }

    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.bare).into_bytes()
    }

    /// Answers the server's first message.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let parts: Vec<&str> = text.split(',').collect();
        let nonce = attribute(&parts, 'r').ok_or(ScramError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.nonce) {
            return Err(ScramError::Malformed("server nonce does not extend ours"));
        }
        let salt = B64
            .decode(attribute(&parts, 's').ok_or(ScramError::Malformed("no salt"))?)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations: u32 = attribute(&parts, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or(ScramError::Malformed("no iteration count"))?;
        let salted = salted_password(self.hash, self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.bare);
        let client_key = mac(self.hash, &salted, b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), &client_key);
        let signature = mac(self.hash, stored_key.as_ref(), auth_message.as_bytes());
        let server_key = mac(self.hash, &salted, b"Server Key");
        self.expected_server_signature = Some(mac(self.hash, &server_key, auth_message.as_bytes()));
        Ok(format!(
            "{without_proof},p={}",
            B64.encode(xor(&client_key, &signature))
        )
        .into_bytes())
    }

    /// Checks the server's final message: it proves the server knew the credential.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text =
            std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramError::InvalidCredentials)?;
        match &self.expected_server_signature {
            Some(expected) if same(expected, &signature) => Ok(()),
            _ => Err(ScramError::InvalidCredentials),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn exchange(hash: Hash, stored_for: Option<&str>, password: &str) -> Result<(), ScramError> {
        let stored = stored_for.map(|p| new_credential(hash, p, MIN_ITERATIONS));
        let mut client = ScramClient::new(hash, "al,i=ce", password);
        let first = parse_client_first(&client.first())?;
        assert_eq!(first.user, "al,i=ce");
        let (server_first, pending) = server_first(hash, first, stored, b"secret");
        let client_final = client.respond(&server_first)?;
        let server_final = pending.finish(&client_final)?;
        client.verify(&server_final)
    }

    #[test]
    fn the_right_password_logs_in_with_both_hashes() {
        for hash in [Hash::Sha256, Hash::Sha512] {
            exchange(hash, Some("pw"), "pw").unwrap();
        }
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_fail_alike() {
        for hash in [Hash::Sha256, Hash::Sha512] {
            assert_eq!(
                exchange(hash, Some("pw"), "nope"),
                Err(ScramError::InvalidCredentials)
            );
            assert_eq!(
                exchange(hash, None, "pw"),
                Err(ScramError::InvalidCredentials)
            );
        }
    }

    #[test]
    fn an_unknown_user_sees_the_same_salt_every_time() {
        let first = || parse_client_first(b"n,,n=ghost,r=abc").unwrap();
        let (a, _) = server_first(Hash::Sha256, first(), None, b"k");
        let (b, _) = server_first(Hash::Sha256, first(), None, b"k");
        let salt = |m: &[u8]| {
            String::from_utf8(m.to_vec())
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .to_owned()
        };
        assert_eq!(salt(&a), salt(&b));
        assert!(String::from_utf8(a).unwrap().ends_with(",i=4096"));
    }

    #[test]
    fn malformed_and_unsupported_messages_are_refused() {
        for bad in [
            &b""[..],
            b"n",
            b"n,,",
            b"x,,n=a,r=b",
            b"n,,r=abc",
            b"n,,n=a",
            b"n,,n=a=ZZ,r=b",
        ] {
            assert!(
                matches!(parse_client_first(bad), Err(ScramError::Malformed(_))),
                "{bad:?}"
            );
        }
        for bad in [
            &b"p=tls-unique,,n=a,r=b"[..],
            b"n,,n=a,r=b,tokenauth=true",
            b"n,a=bob,n=a,r=b",
        ] {
            assert_eq!(
                parse_client_first(bad),
                Err(ScramError::Unsupported),
                "{bad:?}"
            );
        }
        let (_, pending) = server_first(
            Hash::Sha256,
            parse_client_first(b"n,,n=a,r=abc").unwrap(),
            Some(new_credential(Hash::Sha256, "pw", MIN_ITERATIONS)),
            b"k",
        );
        assert!(pending.finish(b"c=biws,r=other,p=AAAA").is_err());
    }
}
