//! Aligned text tables for the human-readable output.

/// Columns of text, each as wide as its widest cell, two spaces apart. Numbers are
/// right-aligned, everything else left-aligned; no trailing spaces.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let cell = |row: &[String], c: usize| row.get(c).cloned().unwrap_or_default();
        let mut widths = vec![0usize; columns];
        // A column is numeric when every non-empty body cell is a number.
        let mut numeric = vec![true; columns];
        for (c, w) in widths.iter_mut().enumerate() {
            *w = cell(&self.headers, c).chars().count();
            for row in &self.rows {
                let text = cell(row, c);
                *w = (*w).max(text.chars().count());
                if !text.is_empty() && text != "-" && text.parse::<f64>().is_err() {
                    numeric[c] = false;
                }
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for c in 0..columns {
                let text = cell(row, c);
                let pad = widths[c] - text.chars().count();
                if c > 0 {
                    line.push_str("  ");
                }
                if numeric[c] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(&text);
                } else {
                    line.push_str(&text);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| {
            let line = format!("{:<width$} {v}", format!("{k}:"));
            format!("{}\n", line.trim_end())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_go_right() {
        let mut t = Table::new(&["TOPIC", "PARTITION", "LEADER"]);
        t.row(vec!["orders".into(), "0".into(), "1".into()]);
        t.row(vec!["a".into(), "10".into(), "-".into()]);
        assert_eq!(
            t.render(),
            "TOPIC   PARTITION  LEADER\n\
             orders          0       1\n\
             a              10       -\n"
        );
    }

    #[test]
    fn no_trailing_spaces_and_short_rows_are_padded() {
        let mut t = Table::new(&["NAME", "VALUE"]);
        t.row(vec!["retention.ms".into()]);
        t.row(vec!["x".into(), "".into()]);
        let text = t.render();
        assert!(text.lines().all(|l| !l.ends_with(' ')), "{text:?}");
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn wide_characters_count_once() {
        let mut t = Table::new(&["K", "V"]);
        t.row(vec!["été".into(), "x".into()]);
        assert_eq!(t.render(), "K    V\nété  x\n");
    }

    #[test]
    fn fields_align_values() {
        assert_eq!(
            fields(&[
                ("id", "1".into()),
                ("cluster", "c".into()),
                ("x", "".into())
            ]),
            "id:      1\ncluster: c\nx:\n"
        );
    }
}
