//! Parsing of the store URLs accepted by the factories.

use std::path::PathBuf;

/// Where a store lives, as named by its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// `memory://`
    Memory,
    /// `<dir_scheme>:///abs/path` or a plain (absolute or relative) directory path.
    Dir(PathBuf),
    /// Any other `scheme://...`: the caller decides whether it is known but unsupported.
    Other { scheme: String },
}

/// Parses `url`; `dir_scheme` is the scheme that names a local directory (`file`,
/// `embedded`). Relative plain paths are made absolute against the working directory.
pub(crate) fn parse_location(url: &str, dir_scheme: &str) -> Result<Location, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("empty store url".to_owned());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        if url == "memory:" {
            return Ok(Location::Memory);
        }
        let path = std::path::absolute(url).map_err(|e| format!("invalid path {url:?}: {e}"))?;
        return Ok(Location::Dir(path));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "memory" {
        return match rest {
            "" | "/" => Ok(Location::Memory),
            _ => Err(format!(
                "unexpected path in memory url {url:?}: use memory://"
            )),
        };
    }
    if scheme != dir_scheme {
        return Ok(Location::Other { scheme });
    }
    // Reuse the `file` URL rules (percent-decoding, `localhost` host) for our scheme.
    let as_file = format!("file://{rest}");
    let parsed = url::Url::parse(&as_file).map_err(|e| format!("invalid url {url:?}: {e}"))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("unexpected query or fragment in {url:?}"));
    }
    let path = parsed
        .to_file_path()
        .map_err(|()| format!("expected {dir_scheme}:///absolute/path, got {url:?}"))?;
    Ok(Location::Dir(path))
}

/// `url` fit for logs and error messages: a password written in it
/// (`scheme://user:password@host...`) is replaced by `***`; everything else is kept.
pub fn redact_url(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    // Userinfo ends at the last `@` (passwords may hold `@`); a `/` before it belongs to the
    // path, so there is no userinfo.
    let Some(at) = rest.rfind('@') else {
        return url.into();
    };
    let userinfo = &rest[..at];
    if userinfo.contains('/') {
        return url.into();
    }
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{}", &rest[at + 1..]).into(),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("etcd://alice:s3cr@t@10.0.0.1:2379,10.0.0.2:2379/prod"),
            "etcd://alice:***@10.0.0.1:2379,10.0.0.2:2379/prod"
        );
        assert_eq!(
            redact_url("etcd://10.0.0.1:2379/prod"),
            "etcd://10.0.0.1:2379/prod"
        );
        assert_eq!(redact_url("s3://bucket/a@b"), "s3://bucket/a@b");
        assert_eq!(redact_url("etcd://bob@h:1"), "etcd://bob@h:1");
        assert_eq!(redact_url("./kafscale-data"), "./kafscale-data");
    }

    #[test]
    fn parses_the_accepted_forms() {
        assert_eq!(parse_location("memory://", "file"), Ok(Location::Memory));
        assert_eq!(
            parse_location("file:///var/data", "file"),
            Ok(Location::Dir(PathBuf::from("/var/data")))
        );
        assert_eq!(
            parse_location("embedded:///var/my%20meta", "embedded"),
            Ok(Location::Dir(PathBuf::from("/var/my meta")))
        );
        assert_eq!(
            parse_location("/plain/dir", "file"),
            Ok(Location::Dir(PathBuf::from("/plain/dir")))
        );
        assert!(matches!(
            parse_location("relative/dir", "file"),
            Ok(Location::Dir(p)) if p.is_absolute() && p.ends_with("relative/dir")
        ));
        assert_eq!(
            parse_location("s3://bucket/prefix", "file"),
            Ok(Location::Other {
                scheme: "s3".to_owned()
            })
        );
    }

    #[test]
    fn rejects_malformed_urls() {
        assert!(parse_location("", "file").is_err());
        assert!(parse_location("file://relative/path", "file").is_err());
        assert!(parse_location("memory://something", "file").is_err());
        // The directory scheme of the other factory is not ours.
        assert_eq!(
            parse_location("embedded:///x", "file"),
            Ok(Location::Other {
                scheme: "embedded".to_owned()
            })
        );
    }
}
