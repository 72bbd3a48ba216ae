//! The configured value of every setting, parsed and range-checked by its registry entry.

use std::collections::BTreeMap;

use kafscale_core::settings::{self, Setting, Value};

use super::ConfigError;

/// The settings a configuration sets (any layer); the rest have their registry defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    set: BTreeMap<&'static str, Value>,
    /// Per-listener overrides (`listener.name.NAME.SETTING`), by listener name (upper case).
    listener_set: BTreeMap<(String, &'static str), Value>,
}

impl Values {
    /// Parses merged layers keyed by dotted name: an unknown key or a value its setting
    /// does not accept is refused with the key named.
    pub fn parse(merged: BTreeMap<String, serde_json::Value>) -> Result<Values, ConfigError> {
        let mut set = BTreeMap::new();
        let mut listener_set = BTreeMap::new();
        for (key, json) in merged {
            let listener_override = settings::find_listener_override(&key);
            let setting = settings::find(&key)
                .or(listener_override.as_ref().map(|(_, s)| *s))
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "unknown setting {key:?} (`kafscale serve --help` lists them)"
                    ))
                })?;
            let text = match json {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "{key}: expected {}, got {other}",
                        setting.allowed()
                    )))
                }
            };
            let value = setting
                .parse(&text)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            match listener_override {
                Some((listener, _)) if settings::find(&key).is_none() => {
                    listener_set.insert((listener, setting.name), value);
                }
                _ => {
                    set.insert(setting.name, value);
                }
            }
        }
        Ok(Values { set, listener_set })
    }

    /// The listener names that have overrides, for checking that each names a listener.
    pub fn overridden_listeners(&self) -> impl Iterator<Item = &str> {
        self.listener_set
            .keys()
            .map(|(listener, _)| listener.as_str())
    }

    /// The value a listener sees: its override, else the broker-wide value or default.
    pub fn for_listener(&self, listener: &str, s: &Setting) -> Option<Value> {
        self.listener_set
            .get(&(listener.to_owned(), s.name))
            .cloned()
            .or_else(|| self.effective(s))
    }

    /// A text setting's value as a listener sees it.
    pub fn listener_text(&self, listener: &str, s: &Setting) -> Option<String> {
        match self.for_listener(listener, s) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// An integer setting's value as a listener sees it.
    pub fn listener_int(&self, listener: &str, s: &Setting) -> i64 {
        match self.for_listener(listener, s) {
            Some(Value::Int(v)) => v,
            _ => 0,
        }
    }

    /// Whether any layer sets it.
    pub fn is_set(&self, s: &Setting) -> bool {
        self.set.contains_key(s.name)
    }

    /// The configured value, else the default (`None`: neither).
    pub fn effective(&self, s: &Setting) -> Option<Value> {
        self.set.get(s.name).cloned().or_else(|| s.default_value())
    }

    /// An integer setting's value (0 if unset without a default: such settings, like
    /// `broker.id`, are read with [`Values::opt_int`]).
    pub fn int(&self, s: &Setting) -> i64 {
        self.opt_int(s).unwrap_or(0)
    }

    /// An integer setting's value, if it is set or has a default.
    pub fn opt_int(&self, s: &Setting) -> Option<i64> {
        match self.effective(s) {
            Some(Value::Int(v)) => Some(v),
            _ => None,
        }
    }

    /// A non-negative integer setting's value (its range starts at 0 or above).
    pub fn unsigned(&self, s: &Setting) -> u64 {
        u64::try_from(self.int(s)).unwrap_or(0)
    }

    /// A non-negative integer setting's value as a size in memory.
    pub fn size(&self, s: &Setting) -> Result<usize, ConfigError> {
        let v = self.int(s);
        usize::try_from(v)
            .map_err(|_| ConfigError::Invalid(format!("{}: {v} is too large", s.name)))
    }

    pub fn bool(&self, s: &Setting) -> bool {
        matches!(self.effective(s), Some(Value::Bool(true)))
    }

    /// A text setting's value, if it is set or has a default.
    pub fn text(&self, s: &Setting) -> Option<String> {
        match self.effective(s) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }
}
