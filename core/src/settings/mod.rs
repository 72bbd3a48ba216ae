//! The broker's settings registry: every setting once, with its name (Kafka's where Kafka
//! has one), type, default, allowed values, documentation and the component section it
//! belongs to. Config parsing, validation, DescribeConfigs, `kafscale serve --help` and
//! `docs/configuration.md` are all derived from [`SETTINGS`]; the core config structs
//! (`LogConfig`, `ClusterConfig`, `GroupConfig`) take their defaults from it too.
//!
//! Topic-scoped settings live in [`crate::topic_config`]; a broker setting that provides a
//! topic config's default says so in its [`Scope`].
//!
//! Adding a setting: a constant in `table.rs` listed in [`SETTINGS`], read where its
//! component's config is built (`app/src/config/sections.rs`), then
//! `KAFSCALE_UPDATE_DOCS=1 cargo test -p kafscale config_doc` to refresh the docs.
//!
//! ```
//! use kafscale_core::settings::{self, Value};
//!
//! let s = settings::find("flush.ms").expect("a setting");
//! assert_eq!(s.parse("5"), Ok(Value::Int(5)));
//! assert!(s.parse("-1").is_err());
//! ```

// The rows read best one setting to a line group, as written.
#[rustfmt::skip]
mod table;

pub use table::*;

use crate::topic_config::ConfigType;

/// The component a setting configures; the docs and `--help` list settings by section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Broker,
    Security,
    Cluster,
    Storage,
    Log,
    Group,
}

impl Section {
    pub const ALL: [Section; 6] = [
        Section::Broker,
        Section::Security,
        Section::Cluster,
        Section::Storage,
        Section::Log,
        Section::Group,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Section::Broker => "Broker",
            Section::Security => "Security",
            Section::Cluster => "Cluster",
            Section::Storage => "Storage",
            Section::Log => "Log",
            Section::Group => "Consumer groups",
        }
    }
}

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// An integer in `[min, max]` that Kafka types as INT.
    Int {
        min: i64,
        max: i64,
    },
    /// An integer in `[min, max]` that Kafka types as LONG.
    Long {
        min: i64,
        max: i64,
    },
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Free text; the words say what form it takes (checked where the value is used).
    Text(&'static str),
}

/// The built-in value of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    Bool(bool),
    Int(i64),
    Text(&'static str),
    /// No value: the words say what happens then.
    Unset(&'static str),
}

/// Where a setting applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The broker only.
    Broker,
    /// The broker, and as the default of this topic config (Kafka's synonym) for topics
    /// that do not set it. Topic configs themselves are in [`crate::topic_config`].
    TopicDefault(&'static str),
}

/// A parsed value of a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

/// A value a setting does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: expected {expected}, got {got:?}")]
pub struct BadValue {
    pub name: &'static str,
    pub expected: String,
    pub got: String,
}

/// One broker setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// As users write it, in TOML and (dots as underscores) in `KAFSCALE_*` variables.
    pub name: &'static str,
    pub section: Section,
    pub kind: Kind,
    pub default: DefaultValue,
    /// One line, lowercase, for DescribeConfigs, `--help` and the docs.
    pub doc: &'static str,
    pub scope: Scope,
    /// Whether DescribeConfigs reports it (only settings Kafka tools know).
    pub described: bool,
    /// Whether a listener can override it, as Kafka's `listener.name.NAME.SETTING`.
    pub per_listener: bool,
}

impl Setting {
    /// The built-in integer; 0 for a setting of another kind (a test checks there is none
    /// where an integer is read).
    pub const fn default_int(&self) -> i64 {
        match self.default {
            DefaultValue::Int(v) => v,
            _ => 0,
        }
    }

    pub const fn default_bool(&self) -> bool {
        matches!(self.default, DefaultValue::Bool(true))
    }

    /// The built-in value, `None` when the setting has none.
    pub fn default_value(&self) -> Option<Value> {
        match self.default {
            DefaultValue::Bool(b) => Some(Value::Bool(b)),
            DefaultValue::Int(i) => Some(Value::Int(i)),
            DefaultValue::Text(t) => Some(Value::Text(t.to_owned())),
            DefaultValue::Unset(_) => None,
        }
    }

    /// The default as the docs show it.
    pub fn default_text(&self) -> String {
        match self.default {
            DefaultValue::Unset(words) => words.to_owned(),
            _ => self
                .default_value()
                .map(|v| v.to_string())
                .unwrap_or_default(),
        }
    }

    /// The allowed values in words, as errors and the docs show them.
    pub fn allowed(&self) -> String {
        match self.kind {
            Kind::Bool => "true or false".to_owned(),
            Kind::Int { min, max } | Kind::Long { min, max } => match (min, max) {
                (i64::MIN, i64::MAX) => "an integer".to_owned(),
                (min, i64::MAX) => format!("an integer of at least {min}"),
                (min, max) => format!("an integer in [{min}, {max}]"),
            },
            Kind::OneOf(words) => format!("one of {}", words.join(", ")),
            Kind::Text(form) => form.to_owned(),
        }
    }

    /// Kafka's type of the setting, as DescribeConfigs reports it.
    pub fn config_type(&self) -> ConfigType {
        match self.kind {
            Kind::Bool => ConfigType::Boolean,
            Kind::Int { .. } => ConfigType::Int,
            Kind::Long { .. } => ConfigType::Long,
            Kind::OneOf(_) | Kind::Text(_) => ConfigType::String,
        }
    }

    /// Parses a value as written in a file, a variable or a flag.
    pub fn parse(&self, text: &str) -> Result<Value, BadValue> {
        let bad = || BadValue {
            name: self.name,
            expected: self.allowed(),
            got: text.to_owned(),
        };
        match self.kind {
            Kind::Bool => match text.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(bad()),
            },
            Kind::Int { min, max } | Kind::Long { min, max } => match text.trim().parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(Value::Int(v)),
                _ => Err(bad()),
            },
            Kind::OneOf(words) if words.contains(&text) => Ok(Value::Text(text.to_owned())),
            Kind::OneOf(_) => Err(bad()),
            Kind::Text(_) => Ok(Value::Text(text.to_owned())),
        }
    }
}

/// The setting of this name, if there is one.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The prefix of a per-listener override, as Kafka writes it:
/// `listener.name.sasl_ssl.ssl.keystore.location`.
pub const LISTENER_PREFIX: &str = "listener.name.";

/// A per-listener override's listener name (upper case, as listeners are named) and
/// setting, if `name` is one. The listener name may itself contain dots where it came from
/// an environment variable (`KAFSCALE_LISTENER_NAME_SASL_SSL_...`), so the setting is
/// matched as the longest known suffix.
pub fn find_listener_override(name: &str) -> Option<(String, &'static Setting)> {
    let rest = name.strip_prefix(LISTENER_PREFIX)?;
    SETTINGS
        .iter()
        .filter(|s| s.per_listener)
        .filter_map(|s| {
            let listener = rest.strip_suffix(s.name)?.strip_suffix('.')?;
            (!listener.is_empty()).then(|| (listener.replace('.', "_").to_ascii_uppercase(), s))
        })
        .max_by_key(|(_, s)| s.name.len())
}

/// A Kafka broker config KafScale reports with a fixed value and has no setting for (the
/// behaviour it names is the only one KafScale has).
#[derive(Debug, Clone, Copy)]
pub struct FixedConfig {
    pub name: &'static str,
    pub value: &'static str,
    pub config_type: ConfigType,
    pub doc: &'static str,
}

/// The fixed broker config of this name, if there is one.
pub fn find_fixed(name: &str) -> Option<&'static FixedConfig> {
    FIXED_CONFIGS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests;
