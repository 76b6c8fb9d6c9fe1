//! The names a draft gives the session's MQTT clients: their client ids, renamed as asked
//! (`--rename OLD=NEW`), a readable name for an id a client library made up, and never
//! a name that carries a secret.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::RegexSet;

/// `--rename OLD=NEW`: the client id OLD is called NEW in the draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub old: String,
    pub new: String,
}

impl std::str::FromStr for Rename {
    type Err = String;

    fn from_str(text: &str) -> Result<Rename, String> {
        match text.split_once('=') {
            Some((old, new)) if !old.is_empty() && !new.trim().is_empty() => Ok(Rename {
                old: old.to_string(),
                new: new.trim().to_string(),
            }),
            _ => Err("write it as OLD=NEW, e.g. phone-SN0042=phone".into()),
        }
    }
}

/// Who a connection belongs to: its client id, or, for an empty one (the broker assigns
/// it), the connection itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Id(String),
    Anonymous { conn: u64 },
}

/// Client ids that client libraries and tools make up when given none: they say nothing
/// about who the client is, and change on every run.
static GENERATED: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        // mosquitto_pub / mosquitto_sub 2.x
        r"^mosq-[A-Za-z0-9]{16}$",
        // mosquitto 1.x: mosqpub|1234-hostname, mosqsub/1234-hostname
        r"^mosq(pub|sub)?[|/][0-9]+-",
        // Eclipse Paho (Java: paho + digits; Python 1.x: paho/ + letters)
        r"^paho[/-]?[A-Za-z0-9]{8,}$",
        // MQTTX, MQTT.js
        r"^(mqttx|mqttjs)_[0-9a-f]{8}$",
        // a UUID, and mosquitto's assigned ids (auto-UUID)
        r"^(auto-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    ])
    .expect("the patterns are valid")
});

/// Whether a client library made `id` up.
pub fn is_generated(id: &str) -> bool {
    id.is_empty() || GENERATED.is_match(id)
}

/// A secret shorter than this is not looked for: it would be found in every word.
pub const SHORTEST_SECRET: usize = 4;

/// Whether `text` contains one of `secrets`.
pub fn has_secret(text: &str, secrets: &[String]) -> bool {
    secrets
        .iter()
        .any(|secret| secret.len() >= SHORTEST_SECRET && text.contains(secret.as_str()))
}

/// Hands out one name per client, in the order they are asked for.
pub(super) struct Names<'s> {
    renames: &'s [Rename],
    secrets: &'s [String],
    given: HashMap<ClientKey, String>,
    taken: HashSet<String>,
    used_renames: HashSet<String>,
    generated: usize,
}

impl<'s> Names<'s> {
    /// `reserved` are names already taken (the board's role).
    pub fn new(reserved: &str, renames: &'s [Rename], secrets: &'s [String]) -> Names<'s> {
        Names {
            renames,
            secrets,
            given: HashMap::new(),
            taken: HashSet::from([reserved.to_string()]),
            used_renames: HashSet::new(),
            generated: 0,
        }
    }

    /// The name of the client with `key`; the same key always gets the same name.
    pub fn name(&mut self, key: &ClientKey) -> String {
        if let Some(name) = self.given.get(key) {
            return name.clone();
        }
        let id = match key {
            ClientKey::Id(id) => id.as_str(),
            ClientKey::Anonymous { .. } => "",
        };
        let wanted = match self.renames.iter().find(|rename| rename.old == id) {
            Some(rename) => {
                self.used_renames.insert(rename.old.clone());
                Some(rename.new.clone())
            }
            None if is_generated(id) || has_secret(id, self.secrets) => None,
            None => Some(id.to_string()),
        };
        let name = match wanted {
            Some(wanted) => self.free(&wanted),
            None => loop {
                self.generated += 1;
                let candidate = format!("client_{}", self.generated);
                if !self.taken.contains(&candidate) {
                    break candidate;
                }
            },
        };
        self.taken.insert(name.clone());
        self.given.insert(key.clone(), name.clone());
        name
    }

    /// `wanted`, or `wanted_2`, `wanted_3`… when it is taken.
    fn free(&self, wanted: &str) -> String {
        if !self.taken.contains(wanted) {
            return wanted.to_string();
        }
        (2..)
            .map(|n| format!("{wanted}_{n}"))
            .find(|candidate| !self.taken.contains(candidate))
            .expect("some suffix is free")
    }

    /// The `--rename` ids that named no client asked for so far.
    pub fn unused_renames(&self) -> Vec<String> {
        self.renames
            .iter()
            .filter(|rename| !self.used_renames.contains(&rename.old))
            .map(|rename| rename.old.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> ClientKey {
        ClientKey::Id(text.into())
    }

    #[test]
    fn ids_that_tools_make_up_are_told_from_chosen_ones() {
        for generated in [
            "",
            "mosq-Ab3dEf6hIj9kLm2n",
            "mosqpub|4242-desk",
            "mosqsub/17-bench",
            "paho1718291234567",
            "mqttx_0a1b2c3d",
            "mqttjs_deadbeef",
            "8c2f6b1e-3d4a-4f5b-9c6d-7e8f9a0b1c2d",
            "auto-8C2F6B1E-3D4A-4F5B-9C6D-7E8F9A0B1C2D",
        ] {
            assert!(is_generated(generated), "{generated:?}");
        }
        for chosen in ["phone", "phone-SN0042", "wall_display", "mosquitto", "paho"] {
            assert!(!is_generated(chosen), "{chosen:?}");
        }
    }

    #[test]
    fn made_up_ids_get_readable_names_in_order_and_keep_them() {
        let mut names = Names::new("lamp", &[], &[]);
        assert_eq!(names.name(&id("mosq-Ab3dEf6hIj9kLm2n")), "client_1");
        assert_eq!(names.name(&ClientKey::Anonymous { conn: 7 }), "client_2");
        assert_eq!(names.name(&id("phone")), "phone");
        assert_eq!(names.name(&id("mosq-Ab3dEf6hIj9kLm2n")), "client_1");
    }

    #[test]
    fn renames_apply_and_names_never_collide() {
        let renames = [
            "phone-SN0042=phone".parse::<Rename>().unwrap(),
            "ghost=nobody".parse().unwrap(),
        ];
        let mut names = Names::new("lamp", &renames, &[]);
        assert_eq!(names.name(&id("phone-SN0042")), "phone");
        assert_eq!(names.name(&id("phone")), "phone_2");
        assert_eq!(names.name(&id("lamp")), "lamp_2");
        assert_eq!(names.unused_renames(), ["ghost"]);
    }

    #[test]
    fn an_id_with_a_secret_in_it_is_not_a_name() {
        let secrets = ["hunter22".to_string(), "ab".to_string()];
        let mut names = Names::new("lamp", &[], &secrets);
        assert_eq!(names.name(&id("token-hunter22")), "client_1");
        // Too short to look for: it would be found everywhere.
        assert_eq!(names.name(&id("tablet")), "tablet");
    }

    #[test]
    fn a_rename_needs_both_sides() {
        assert!("old=".parse::<Rename>().is_err());
        assert!("=new".parse::<Rename>().is_err());
        assert!("nothing".parse::<Rename>().is_err());
        assert_eq!(
            "a=b=c".parse::<Rename>().unwrap(),
            Rename {
                old: "a".into(),
                new: "b=c".into()
            }
        );
    }
}
