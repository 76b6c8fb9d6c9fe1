//! Topic filters as MQTT defines them (3.1.1 and 5, section 4.7).

/// Whether `filter` matches `topic`. A filter starting with a wildcard does not match a
/// topic starting with `$` (section 4.7.2): `#` is not a subscription to `$SYS/...`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && starts_with_wildcard(filter) {
        return false;
    }
    levels_match(filter, topic)
}

pub fn starts_with_wildcard(filter: &str) -> bool {
    filter.starts_with('#') || filter.starts_with('+')
}

/// Whether the levels of `filter` match `topic`, leaving the `$` rule aside.
pub fn levels_match(filter: &str, topic: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            // `#` also matches the parent level: `a/#` matches `a`.
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            exact => {
                if topic_levels.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// The filter of a shared subscription (`$share/GROUP/FILTER`, MQTT 5 section 4.8.2)
/// without its prefix; other filters as they are.
pub fn unshared(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_group, filter)| filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_the_specification_says() {
        for (filter, topic, expected) in [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+", "a", false),
            ("+/+", "/a", true),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("/#", "/a", true),
            ("/#", "a", false),
            ("+", "", true),
        ] {
            assert_eq!(matches(filter, topic), expected, "{filter} vs {topic}");
        }
    }

    #[test]
    fn dollar_topics_need_a_filter_that_names_them() {
        assert!(!matches("#", "$SYS/uptime"));
        assert!(!matches("+/uptime", "$SYS/uptime"));
        assert!(matches("$SYS/#", "$SYS/uptime"));
        assert!(matches("$SYS/+", "$SYS/uptime"));
    }

    #[test]
    fn shared_subscriptions_lose_their_group() {
        assert_eq!(unshared("$share/g/a/+"), "a/+");
        assert_eq!(unshared("a/+"), "a/+");
    }
}
