//! `report.json`: the whole [`Report`], for machines.

use super::Report;

/// Pretty-printed JSON with a trailing newline.
pub(super) fn render(report: &Report) -> String {
    // The report holds only strings, numbers, booleans and lists, so serialising cannot
    // fail; should it ever, the file says so instead of panicking.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|e| {
        format!(
            "{{\"error\": {:?}}}",
            format!("cannot serialise the report: {e}")
        )
    });
    text.push('\n');
    text
}
