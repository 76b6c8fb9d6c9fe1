//! Finding a field's value in the scenario text, so a validation error points at the
//! value that is wrong rather than at the start of its step or file.

use super::Location;

/// Where the value of `field` is written: the first `field:` key at or after `from`
/// and before `until`, pointing at its value (or at the key when the value starts on a
/// later line). `None` when the field is not written there (a default was used).
pub fn field_value(
    text: &str,
    from: Location,
    until: Option<Location>,
    field: &str,
) -> Option<Location> {
    let start = offset(text, from)?;
    let end = until
        .and_then(|until| offset(text, until))
        .unwrap_or(text.len());
    let region = text.get(start..end)?;
    let key = format!("{field}:");
    let mut searched = 0;
    while let Some(found) = region[searched..].find(&key) {
        let at = searched + found;
        searched = at + key.len();
        // A whole key, not the end of a longer one (`for:` inside `off_for:`).
        let whole = region[..at]
            .chars()
            .next_back()
            .is_none_or(|before| before.is_whitespace() || matches!(before, '{' | ',' | '-'));
        if !whole {
            continue;
        }
        let after = &region[searched..];
        let value = after.len() - after.trim_start_matches([' ', '\t']).len();
        let value_here = !after[value..].starts_with(['\n', '\r', '#']) && value < after.len();
        let target = if value_here { searched + value } else { at };
        return Some(Location::at_offset(text, start + target));
    }
    None
}

/// The byte offset of a 1-based line and (character) column.
fn offset(text: &str, at: Location) -> Option<usize> {
    let line_start = if at.line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(at.line - 2)?.0 + 1
    };
    let column = text[line_start..]
        .char_indices()
        .nth(at.column.saturating_sub(1))
        .map_or(text.len() - line_start, |(index, _)| index);
    Some(line_start + column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Location {
        Location { line, column }
    }

    const TEXT: &str = "name: x\ntimeout: 2h\nsteps:\n  - power_cycle: { board: lamp, off_for: 2h }\n  - wait: { for: 3h }\n  - wait:\n      for:\n        9h\n";

    #[test]
    fn a_field_is_found_at_its_value_within_its_step() {
        assert_eq!(
            field_value(TEXT, at(1, 1), None, "timeout"),
            Some(at(2, 10))
        );
        assert_eq!(
            field_value(TEXT, at(4, 5), Some(at(5, 5)), "off_for"),
            Some(at(4, 42))
        );
        assert_eq!(
            field_value(TEXT, at(4, 5), Some(at(5, 5)), "for"),
            None,
            "`for` is not the end of `off_for`, and the next step is out of reach"
        );
        assert_eq!(field_value(TEXT, at(5, 5), None, "for"), Some(at(5, 18)));
        assert_eq!(
            field_value(TEXT, at(6, 5), None, "for"),
            Some(at(7, 7)),
            "a value on the next line: the key"
        );
    }

    #[test]
    fn places_outside_the_text_find_nothing() {
        assert_eq!(field_value(TEXT, at(99, 1), None, "for"), None);
        assert_eq!(field_value("ä: 1", at(1, 1), None, "ä"), Some(at(1, 4)));
    }
}
