//! The command-line layer of `kafscale serve`, derived from the registry: a named flag for
//! the settings people set most, `--set KEY=VALUE` for any setting, and a long help that
//! lists them all.

use clap::{Arg, ArgAction, ArgMatches, Command};
use std::collections::BTreeMap;

use kafscale_core::settings::{self as s, Kind, Setting};

use super::help_text;

/// Settings that `kafscale serve` also takes as a named flag (`--listen ...`).
pub const NAMED_FLAGS: &[(&str, &Setting)] = &[
    ("listen", &s::LISTEN),
    ("advertised-listener", &s::ADVERTISED_LISTENER),
    ("http-listen", &s::HTTP_LISTEN),
    ("data-dir", &s::DATA_DIR),
    ("ephemeral", &s::EPHEMERAL),
    ("object-store", &s::OBJECT_STORE),
    ("metadata", &s::METADATA),
    ("broker-id", &s::BROKER_ID),
    ("log-format", &s::LOG_FORMAT),
];

const SET: &str = "set";

/// Adds the settings flags and the settings list to the `serve` command.
pub fn serve_flags(serve: Command) -> Command {
    let serve = NAMED_FLAGS.iter().fold(serve, |cmd, (flag, setting)| {
        let help = format!("{} [default: {}]", setting.doc, setting.default_text());
        let arg = Arg::new(setting.name).long(flag).help(help);
        cmd.arg(match setting.kind {
            Kind::Bool => arg.action(ArgAction::SetTrue),
            Kind::Int { .. } | Kind::Long { .. } => {
                arg.value_name("N").allow_negative_numbers(true)
            }
            Kind::OneOf(_) | Kind::Text(_) => arg.value_name("VALUE"),
        })
    });
    serve
        .arg(
            Arg::new(SET)
                .long(SET)
                .value_name("KEY=VALUE")
                .action(ArgAction::Append)
                .value_parser(crate::cli::parse_key_value)
                .help("Any setting (repeatable); `--help` lists them"),
        )
        .after_long_help(help_text())
}

/// The flags given, keyed by setting name; a named flag wins over `--set` of its key.
pub fn flag_values(m: &ArgMatches) -> BTreeMap<String, serde_json::Value> {
    let mut out: BTreeMap<String, serde_json::Value> = m
        .get_many::<(String, String)>(SET)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    for (_, setting) in NAMED_FLAGS {
        let value = match setting.kind {
            Kind::Bool => m.get_flag(setting.name).then_some(true.into()),
            _ => m.get_one::<String>(setting.name).map(|v| v.clone().into()),
        };
        if let Some(v) = value {
            out.insert(setting.name.to_owned(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn named_flags_and_set_become_settings() {
        for (flag, s) in NAMED_FLAGS {
            assert_eq!(s.name.replace('.', "-"), *flag);
        }
        let cmd = serve_flags(Command::new("serve"));
        let m = cmd
            .clone()
            .try_get_matches_from([
                "serve",
                "--listen",
                "127.0.0.1:1",
                "--ephemeral",
                "--broker-id",
                "-1",
                "--set",
                "flush.ms=5",
                "--set",
                "listen=ignored:2",
            ])
            .unwrap();
        let v = flag_values(&m);
        assert_eq!(v["listen"], "127.0.0.1:1");
        assert_eq!(v["ephemeral"], true);
        assert_eq!(v["broker.id"], "-1");
        assert_eq!(v["flush.ms"], "5");
        assert!(!v.contains_key("data.dir"));
        let c = crate::config::load(None, figment::providers::Env::prefixed("KSTEST_NONE_"), v)
            .unwrap();
        assert_eq!(c.log.flush_ms, 5);
        assert_eq!(c.cluster.broker_id, None);
        assert!(cmd
            .clone()
            .try_get_matches_from(["serve", "--set", "novalue"])
            .is_err());
        let help = cmd.clone().render_long_help().to_string();
        assert!(help.contains("gc.grace.ms [default: 600000]"), "{help}");
        assert!(help.contains("--set <KEY=VALUE>"), "{help}");
    }
}
