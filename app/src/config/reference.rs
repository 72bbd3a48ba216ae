//! The settings reference, generated from the registry: the long help of `kafscale serve`
//! and the reference section of `docs/configuration.md` (a test keeps the file current).

use std::fmt::Write;

use kafscale_core::log::LogConfig;
use kafscale_core::settings::{self as s, Section, Setting, FIXED_CONFIGS, SETTINGS};

use super::flags::NAMED_FLAGS;
use kafscale_core::topic_config::TOPIC_CONFIGS;

/// The settings by section, as the docs and `--help` list them.
pub(super) fn documented() -> impl Iterator<Item = (Section, Vec<&'static Setting>)> {
    Section::ALL.into_iter().map(|section| {
        let rows = SETTINGS.iter().filter(|s| s.section == section).collect();
        (section, rows)
    })
}

fn flag_of(setting: &Setting) -> Option<&'static str> {
    NAMED_FLAGS
        .iter()
        .find(|(_, s)| s.name == setting.name)
        .map(|(flag, _)| *flag)
}

/// The long help's list of settings.
pub fn help_text() -> String {
    let mut out = String::from(
        "Settings (defaults < --config FILE < KAFSCALE_* variables < flags; \
         any of them with --set KEY=VALUE):\n",
    );
    for (section, rows) in documented() {
        let _ = write!(out, "\n{}:\n", section.title());
        for s in rows {
            let _ = writeln!(
                out,
                "  {} [default: {}] [{}]\n      {}",
                s.name,
                s.default_text(),
                s.allowed(),
                s.doc
            );
        }
    }
    out
}

/// A table cell: `|` would end the cell early.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn code(text: &str) -> String {
    format!("`{}`", cell(text))
}

fn default_cell(s: &Setting) -> String {
    match s.default {
        // Words, unless they hold a placeholder such as `<data.dir>` (HTML to Markdown).
        s::DefaultValue::Unset(words) if !words.contains('<') => cell(words),
        _ => code(&s.default_text()),
    }
}

/// The generated reference section of `docs/configuration.md`.
pub fn settings_markdown() -> String {
    let mut out = String::new();
    for (section, rows) in documented() {
        let _ = write!(
            out,
            "### {}\n\n| key | flag | default | values | meaning |\n|---|---|---|---|---|\n",
            section.title()
        );
        for s in rows {
            let flag = flag_of(s).map(|f| code(&format!("--{f}")));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                code(s.name),
                flag.unwrap_or_default(),
                default_cell(s),
                cell(&s.allowed()),
                cell(s.doc)
            );
        }
        out.push('\n');
    }
    out.push_str(
        "### Kafka broker configs with a fixed value\n\n\
         Shown by DescribeConfigs; KafScale has no setting for them.\n\n\
         | config | value | meaning |\n|---|---|---|\n",
    );
    for f in FIXED_CONFIGS {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            code(f.name),
            code(f.value),
            cell(f.doc)
        );
    }
    out.push_str("\n### Topic configs\n\n| config | default | meaning |\n|---|---|---|\n");
    let log = LogConfig::default();
    for d in TOPIC_CONFIGS {
        let default = match d.broker_synonym {
            Some(broker) if d.follows_broker() => format!("broker {}", code(broker)),
            _ => code(&d.default_value(&log)),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            code(d.name),
            default,
            cell(d.documentation)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BEGIN: &str =
        "<!-- settings reference: generated from core/src/settings; regenerate with \
                         KAFSCALE_UPDATE_DOCS=1 cargo test -p kafscale config_doc -->\n";
    const END: &str = "<!-- end of settings reference -->";

    #[test]
    fn config_doc_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let start = doc
            .find(BEGIN)
            .expect("the begin marker in docs/configuration.md");
        let end = doc
            .find(END)
            .expect("the end marker in docs/configuration.md");
        let fresh = format!(
            "{}{BEGIN}\n{}{}",
            &doc[..start],
            settings_markdown(),
            &doc[end..]
        );
        if fresh == doc {
            return;
        }
        if std::env::var("KAFSCALE_UPDATE_DOCS").as_deref() == Ok("1") {
            std::fs::write(&path, fresh).unwrap();
            return;
        }
        panic!(
            "docs/configuration.md is stale: regenerate it with \
             `KAFSCALE_UPDATE_DOCS=1 cargo test -p kafscale config_doc`"
        );
    }

    #[test]
    fn every_setting_is_in_the_help_and_the_doc() {
        let help = help_text();
        let doc = settings_markdown();
        for s in SETTINGS {
            assert!(help.contains(s.name), "{}", s.name);
            assert!(doc.contains(&code(s.name)), "{}", s.name);
        }
        assert!(help.contains("message.max.bytes [default: 1048588]"));
    }
}
