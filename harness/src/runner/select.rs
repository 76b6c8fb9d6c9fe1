//! Which scenarios a run takes: a shard of the suite (`--partition K/N`), those whose
//! name or path contains a text (`--filter`), those with or without a tag.

use crate::scenario::Scenario;

/// Shard K of N (1-based): every scenario, in path order, goes to shard (index mod N) + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Partition {
    type Err = String;

    /// `K/N`, e.g. `2/4`.
    fn from_str(text: &str) -> Result<Partition, String> {
        let (k, n) = text.split_once('/').ok_or("write it as K/N, e.g. 1/4")?;
        let number = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|_| format!("{part:?} is not a number"))
        };
        let (k, n) = (number(k)?, number(n)?);
        if n == 0 || k == 0 || k > n {
            return Err(format!(
                "shard {k} of {n} does not exist: K goes from 1 to N"
            ));
        }
        Ok(Partition { k, n })
    }
}

/// What picks the scenarios of a run; everything is taken when all are empty.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub partition: Option<Partition>,
    /// Part of a scenario's name or path.
    pub filter: Option<String>,
    /// Take only scenarios with one of these tags (all when empty).
    pub tags: Vec<String>,
    /// Leave out scenarios with one of these tags.
    pub skip_tags: Vec<String>,
}

impl Selection {
    /// Why the selection cannot be right for these scenarios, whatever the shard: a
    /// filter or tag that no scenario matches is a typing slip, not an empty suite.
    pub fn check(&self, scenarios: &[Scenario]) -> Result<(), String> {
        if let Some(text) = &self.filter {
            if !scenarios.iter().any(|s| filter_matches(text, s)) {
                return Err(format!(
                    "--filter {text:?} matches no scenario name or path; the scenarios are: {}",
                    quoted(scenarios.iter().map(|s| s.name.as_str()))
                ));
            }
        }
        let mut known: Vec<&str> = scenarios
            .iter()
            .flat_map(|s| s.tags.iter().map(String::as_str))
            .collect();
        known.sort_unstable();
        known.dedup();
        for (flag, tag) in (self.tags.iter().map(|t| ("--tag", t)))
            .chain(self.skip_tags.iter().map(|t| ("--skip-tag", t)))
        {
            if !known.contains(&tag.as_str()) {
                let known = if known.is_empty() {
                    "no scenario has tags (add `tags: [smoke]` to a scenario)".to_string()
                } else {
                    format!("the tags are: {}", quoted(known.iter().copied()))
                };
                return Err(format!("{flag} {tag:?} is on no scenario; {known}"));
            }
        }
        Ok(())
    }

    /// The scenarios this selection takes, in path order.
    pub fn apply(&self, mut scenarios: Vec<Scenario>) -> Vec<Scenario> {
        scenarios.sort_by(|a, b| a.path.cmp(&b.path));
        scenarios
            .into_iter()
            .enumerate()
            .filter(|(index, _)| {
                self.partition
                    .is_none_or(|Partition { k, n }| index % n == k - 1)
            })
            .map(|(_, scenario)| scenario)
            .filter(|scenario| {
                self.filter
                    .as_deref()
                    .is_none_or(|text| filter_matches(text, scenario))
            })
            .filter(|scenario| {
                self.tags.is_empty() || self.tags.iter().any(|tag| scenario.tags.contains(tag))
            })
            .filter(|scenario| !self.skip_tags.iter().any(|tag| scenario.tags.contains(tag)))
            .collect()
    }
}

fn filter_matches(text: &str, scenario: &Scenario) -> bool {
    scenario.name.contains(text) || scenario.path.to_string_lossy().contains(text)
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_k_of_n() {
        assert_eq!("2/4".parse(), Ok(Partition { k: 2, n: 4 }));
        for wrong in ["0/4", "5/4", "1/0", "a/2", "3"] {
            assert!(wrong.parse::<Partition>().is_err(), "{wrong}");
        }
    }
}
